"""GroupDirectory: TTL cache, one fetch for concurrent lookups, fail-closed, failures not kept."""

from __future__ import annotations

import asyncio

import pytest

from bot.policy import GroupDirectory, GroupLookupError
from tests.bot.policy.fakes import FakeClock, FakeGroups

ONCALL = "S0ONCALL"
MODS = "S0MODS"


def _directory(
    fake: FakeGroups, clock: FakeClock, *, ttl_s: float = 300.0, failure_ttl_s: float = 5.0
) -> GroupDirectory:
    return GroupDirectory(fake, ttl_s=ttl_s, failure_ttl_s=failure_ttl_s, clock=clock)


async def test_members_are_fetched_once_and_cached_until_the_ttl_expires() -> None:
    fake, clock = FakeGroups({ONCALL: ["U0ALICE", "U0BOB"]}), FakeClock()
    groups = _directory(fake, clock, ttl_s=300)

    assert await groups.members(ONCALL) == {"U0ALICE", "U0BOB"}
    fake.groups[ONCALL] = ["U0CAROL"]  # membership changes in Slack
    clock.advance(299)
    assert await groups.members(ONCALL) == {"U0ALICE", "U0BOB"}  # still the cached answer
    assert groups.cached(ONCALL) == frozenset({"U0ALICE", "U0BOB"})
    assert fake.calls == [ONCALL]

    clock.advance(1)  # TTL reached
    assert groups.cached(ONCALL) is None
    assert await groups.members(ONCALL) == {"U0CAROL"}
    assert fake.calls == [ONCALL, ONCALL]


async def test_default_ttl_is_five_minutes() -> None:
    fake, clock = FakeGroups({ONCALL: ["U0ALICE"]}), FakeClock()
    groups = GroupDirectory(fake, clock=clock)
    await groups.members(ONCALL)
    clock.advance(299.9)
    await groups.members(ONCALL)
    assert len(fake.calls) == 1
    clock.advance(0.1)
    await groups.members(ONCALL)
    assert len(fake.calls) == 2


async def test_concurrent_lookups_of_one_group_share_a_single_fetch() -> None:
    fake, clock = FakeGroups({ONCALL: ["U0ALICE"], MODS: ["U0BOB"]}), FakeClock()
    groups = _directory(fake, clock)
    fake.hold()
    lookups = [asyncio.create_task(groups.members(ONCALL)) for _ in range(25)]
    other = asyncio.create_task(groups.members(MODS))
    await fake.started.wait()
    for _ in range(5):  # let every lookup reach the point where it waits on the fetch
        await asyncio.sleep(0)
    fake.release()

    results = await asyncio.gather(*lookups)
    assert all(result == {"U0ALICE"} for result in results)
    assert await other == {"U0BOB"}
    assert sorted(fake.calls) == [MODS, ONCALL]  # one fetch per group, not 25


async def test_concurrent_lookups_share_one_failure_too() -> None:
    fake, clock = FakeGroups({ONCALL: ["U0ALICE"]}), FakeClock()
    fake.fail[ONCALL] = RuntimeError("ratelimited")
    groups = _directory(fake, clock)
    fake.hold()
    lookups = [asyncio.create_task(groups.members(ONCALL)) for _ in range(10)]
    await fake.started.wait()
    fake.release()

    results = await asyncio.gather(*lookups, return_exceptions=True)
    assert all(isinstance(r, GroupLookupError) for r in results)
    assert fake.calls == [ONCALL]


async def test_a_failed_fetch_raises_naming_the_group_and_the_error() -> None:
    fake, clock = FakeGroups(), FakeClock()
    fake.fail[ONCALL] = RuntimeError("plan_upgrade_required")
    groups = _directory(fake, clock)

    with pytest.raises(GroupLookupError) as caught:
        await groups.members(ONCALL)
    assert str(caught.value) == (
        "could not check membership of user group S0ONCALL: plan_upgrade_required"
    )
    assert caught.value.group_id == ONCALL
    assert caught.value.detail == "plan_upgrade_required"


async def test_a_failure_is_remembered_briefly_then_retried() -> None:
    fake, clock = FakeGroups({ONCALL: ["U0ALICE"]}), FakeClock()
    fake.fail[ONCALL] = RuntimeError("ratelimited")
    groups = _directory(fake, clock, ttl_s=300, failure_ttl_s=5)

    with pytest.raises(GroupLookupError, match="ratelimited"):
        await groups.members(ONCALL)
    del fake.fail[ONCALL]  # Slack recovers
    clock.advance(4)
    with pytest.raises(GroupLookupError, match="ratelimited"):
        await groups.members(ONCALL)  # within failure_ttl_s: no new Slack call
    assert fake.calls == [ONCALL]

    clock.advance(1)  # far short of the 300 s TTL: failures are not kept that long
    assert await groups.members(ONCALL) == {"U0ALICE"}
    assert fake.calls == [ONCALL, ONCALL]


async def test_failures_can_be_left_uncached() -> None:
    fake, clock = FakeGroups({ONCALL: ["U0ALICE"]}), FakeClock()
    fake.fail[ONCALL] = RuntimeError("timeout")
    groups = _directory(fake, clock, failure_ttl_s=0)
    with pytest.raises(GroupLookupError):
        await groups.members(ONCALL)
    del fake.fail[ONCALL]
    assert await groups.members(ONCALL) == {"U0ALICE"}  # same instant, retried at once
    assert fake.calls == [ONCALL, ONCALL]


async def test_a_failed_refresh_drops_the_stale_member_list() -> None:
    fake, clock = FakeGroups({ONCALL: ["U0ALICE"]}), FakeClock()
    groups = _directory(fake, clock, ttl_s=300, failure_ttl_s=5)
    assert await groups.members(ONCALL) == {"U0ALICE"}

    clock.advance(300)
    fake.fail[ONCALL] = RuntimeError("internal_error")
    with pytest.raises(GroupLookupError):
        await groups.members(ONCALL)
    # Fail-closed: the old answer is not resurrected while Slack is failing.
    assert groups.cached(ONCALL) is None
    with pytest.raises(GroupLookupError):
        await groups.members(ONCALL)


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    fake, clock = FakeGroups({ONCALL: ["U0ALICE"]}), FakeClock()
    groups = _directory(fake, clock)
    fake.hold()
    impatient = asyncio.create_task(groups.members(ONCALL))
    patient = asyncio.create_task(groups.members(ONCALL))
    await fake.started.wait()
    impatient.cancel()
    await asyncio.sleep(0)
    fake.release()

    assert await patient == {"U0ALICE"}
    assert impatient.cancelled()
    assert fake.calls == [ONCALL]


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (
            RuntimeError("The request to the Slack API failed.\nThe server responded with: x"),
            "The request to the Slack API failed. The server responded with: x",
        ),
        (TimeoutError(), "TimeoutError"),
        (RuntimeError("x" * 500), "x" * 199 + "…"),
    ],
)
async def test_error_details_become_one_short_line(error: Exception, detail: str) -> None:
    fake, clock = FakeGroups(), FakeClock()
    fake.fail[ONCALL] = error
    with pytest.raises(GroupLookupError) as caught:
        await _directory(fake, clock).members(ONCALL)
    assert caught.value.detail == detail
    assert "\n" not in str(caught.value)


async def test_a_fetcher_returning_a_bare_string_is_a_failure_not_a_member_list() -> None:
    fake, clock = FakeGroups({ONCALL: "U0ALICE"}), FakeClock()
    with pytest.raises(GroupLookupError, match="not a list of user IDs"):
        await _directory(fake, clock).members(ONCALL)


@pytest.mark.parametrize(("ttl_s", "failure_ttl_s"), [(0, 0), (-1, 0), (10, 11), (10, -1)])
def test_nonsense_ttls_are_rejected(ttl_s: float, failure_ttl_s: float) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        GroupDirectory(FakeGroups(), ttl_s=ttl_s, failure_ttl_s=failure_ttl_s)
