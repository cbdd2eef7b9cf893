"""Every write run is leased: the runner holds the request's lease, with the adapter's context,
before its first row is written and until every row is completed; an adapter's hold around the
run keeps it until the outcome is delivered; a cancelled run keeps it for a survivor; a lease
that cannot be written refuses the request. Also: the rate budget that grants nothing, Retry of
what a survivor found not applied, and the client built with the store's budget."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from bot.leases import LeaseKeeper
from bot.recorder import AuditRecorder
from bot.runner import Runner

from bot.audit import AuditError, NewEntry, Outcome
from bot.budget import RateBudgetUnavailable
from bot.config import load_settings
from bot.failures import describe_failure
from bot.outcomes import Approved, FailureKind, Plan, RunKind
from bot.tencent.client import RoomEngineClient
from testkit.clock import FakeClock
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import ALICE, SDKAPPID, SECRET_KEY, BrokenStore, Core, actor, plan_for

CONTEXT = {"adapter": "test", "channel": "C0GENERAL1", "thread_ts": "1700000000.000100"}


def leased_runner(core: Core, *, allow_unaudited: bool = False) -> tuple[Runner, LeaseKeeper]:
    keeper = LeaseKeeper(core.store)
    runner = Runner(
        core.client,
        AuditRecorder(core.store),
        leases=keeper,
        allow_unaudited=allow_unaudited,
        sleep=core.clock.sleep,
    )
    return runner, keeper


async def test_the_lease_covers_the_rows_from_before_the_first_until_the_last_is_completed(
    core: Core,
) -> None:
    runner, keeper = leased_runner(core)
    plan = plan_for("mute-all room-test room-2")
    seen: list[tuple[Any, list[Outcome]]] = []

    async def look(command: str, body: dict[str, Any]) -> httpx.Response | None:
        if command in ("get_room_info", "update_room_info"):
            lease = await core.store.get_lease(plan.request_key)
            rows = await core.store.rows_for_request(plan.request_key)
            seen.append((lease, [r.outcome for r in rows]))
        return None

    core.wire.hook = look
    run = await runner.run(plan, context=CONTEXT)

    assert run.request_key == plan.request_key
    assert seen  # looked at every call
    for lease, _outcomes in seen:
        assert lease is not None
        assert (lease.owner, lease.context) == ("test-replica", CONTEXT)
    # The writes happened with their rows pending.
    assert [Outcome.PENDING] in [o[:1] for _, o in seen]
    assert await core.store.get_lease(plan.request_key) is None
    rows = await core.store.rows_for_request(plan.request_key)
    assert [r.outcome for r in rows] == [Outcome.OK, Outcome.OK]
    assert not keeper.holds(plan.request_key)
    await keeper.aclose()


async def test_an_adapter_hold_keeps_the_lease_until_its_outcome_is_delivered(core: Core) -> None:
    plan = core.service.plan(await _approved(core, "mute-all room-test"))
    async with core.service.hold(plan, CONTEXT):
        await core.service.relocate(plan, {**CONTEXT, "parent_ts": "1700000000.000200"})
        run = await core.service.run(plan)
        lease = await core.store.get_lease(plan.request_key)
        assert lease is not None  # the run is done, the outcome not yet delivered
        assert lease.context == {**CONTEXT, "parent_ts": "1700000000.000200"}
    assert run.results[0].ok
    assert await core.store.get_lease(plan.request_key) is None


async def test_a_run_cancelled_by_shutdown_keeps_its_lease_and_pending_rows(core: Core) -> None:
    runner, keeper = leased_runner(core)
    plan = plan_for("mute-all room-test")
    calling = asyncio.Event()

    async def hang(command: str, body: dict[str, Any]) -> httpx.Response | None:
        if command == "update_room_info":
            calling.set()
            await asyncio.sleep(60)
        return None

    core.wire.hook = hang
    task = asyncio.create_task(runner.run(plan, context=CONTEXT))
    await calling.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    lease = await core.store.get_lease(plan.request_key)
    assert lease is not None
    assert lease.context == CONTEXT  # it expires once the process stops; a survivor reports
    [row] = await core.store.rows_for_request(plan.request_key)
    assert row.outcome is Outcome.PENDING
    await keeper.aclose()


class NoLeases(BrokenStore):
    """A store that takes no lease (its database refuses the write)."""

    async def take_lease(self, request_key: str, context: Any) -> Any:
        raise AuditError("the audit store could not take a lease: disk I/O error")


async def test_a_lease_that_cannot_be_written_refuses_the_request(
    make_core: CoreFactory,
) -> None:
    core = await make_core(store_class=NoLeases)
    runner, keeper = leased_runner(core)
    run = await runner.run(plan_for("mute-all room-test"), context=CONTEXT)
    assert run.refused is not None
    assert "audit trail could not be written" in run.refused
    assert core.calls() == []
    assert core.calls("get_room_info") == []
    [result] = run.results
    assert result.failure is not None
    assert result.failure.kind is FailureKind.NOT_ATTEMPTED
    assert "could not take a lease" in result.failure.message

    # Allowed to go unaudited, it goes ahead without a lease.
    runner, _ = leased_runner(core, allow_unaudited=True)
    run = await runner.run(plan_for("mute-all room-test"), context=CONTEXT)
    assert run.refused is None
    assert run.results[0].ok
    await keeper.aclose()


class SlowNoLeases(BrokenStore):
    """A store whose lease write fails after `wait_s` of the core's clock: a pool that waits out
    its connection timeout against a database that is gone."""

    clock = FakeClock()
    wait_s = 0.0
    attempts = 0

    async def take_lease(self, request_key: str, context: Any) -> Any:
        type(self).attempts += 1
        self.clock.advance(self.wait_s)
        raise AuditError("the audit store could not take a lease: couldn't get a connection")


@pytest.mark.parametrize(("wait_s", "attempts"), [(0.0, 4), (3.0, 1), (0.6, 3)])
async def test_a_failing_audit_write_is_retried_only_within_the_retry_allowance(
    make_core: CoreFactory, wait_s: float, attempts: int
) -> None:
    # Fast failures get every retry; a write that itself took longer than AUDIT_RETRY_S is
    # not tried again, so a person waits about one pool timeout for the refusal, not four.
    SlowNoLeases.wait_s, SlowNoLeases.attempts = wait_s, 0
    core = await make_core(store_class=SlowNoLeases)
    SlowNoLeases.clock = core.clock
    keeper = LeaseKeeper(core.store)
    runner = Runner(
        core.client,
        AuditRecorder(core.store),
        leases=keeper,
        sleep=core.clock.sleep,
        monotonic=core.clock,
    )
    run = await runner.run(plan_for("mute-all room-test"), context=CONTEXT)
    assert run.refused is not None
    assert SlowNoLeases.attempts == attempts
    assert core.calls() == []
    await keeper.aclose()


class Unavailable:
    """A rate budget whose database grants nothing."""

    async def acquire(self) -> None:
        raise RateBudgetUnavailable("no slot granted within 10 s: connection refused")

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        yield


async def test_a_budget_that_grants_nothing_sends_nothing_and_says_why(core: Core) -> None:
    failure = describe_failure(RateBudgetUnavailable("no slot"))
    assert failure.kind is FailureKind.NOT_ATTEMPTED
    assert failure.correlation_id is None  # expected, not a bug
    assert "rate budget" in failure.message
    assert "`roombot check`" in failure.hint

    async with RoomEngineClient(
        base_url=core.emulator.base_url,
        sdkappid=SDKAPPID,
        secret_key=SECRET_KEY,
        admin_id="administrator",
        rate_budget=Unavailable(),
    ) as client:
        runner = Runner(client, AuditRecorder(core.store), sleep=core.clock.sleep)
        run = await runner.run(plan_for("mute-all room-test room-2 room-3 " + "--reason x"))
    assert core.emulator.requests == []
    assert all(r.failure and r.failure.kind is FailureKind.NOT_ATTEMPTED for r in run.results)
    rows = await core.store.rows_for_request(run.request_key)
    assert {r.outcome for r in rows} == {Outcome.NOT_ATTEMPTED}


class Counting:
    """A budget that counts the call slots it grants."""

    def __init__(self) -> None:
        self.slots = 0

    async def acquire(self) -> None:
        self.slots += 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        yield


async def test_a_client_from_settings_paces_its_calls_with_the_budget_it_is_given(
    core: Core,
) -> None:
    settings = load_settings(
        env_file=None,
        tencent_sdkappid=SDKAPPID,
        tencent_secret_key=SECRET_KEY,
        tencent_api_url=core.emulator.base_url,
    )
    budget = Counting()
    async with RoomEngineClient.from_settings(settings, rate_budget=budget) as client:
        await client.get_room_info("room-test")
        await client.get_room_info("room-2")
    assert budget.slots == 2


async def test_retry_runs_again_what_a_survivor_found_not_applied(core: Core) -> None:
    def row(room: str, outcome: Outcome) -> NewEntry:
        return NewEntry(
            request_key="req-1",
            source="slash",
            user_id=ALICE,
            verb="mute-all",
            raw_text="mute-all room-test room-2 room-3",
            room_id=room,
            channel_id="C0GENERAL1",
            patch={"IsAudioDisabled": True},
            outcome=outcome,
        )

    await core.store.record(
        [
            row("room-test", Outcome.IN_PLACE),
            row("room-2", Outcome.NOT_APPLIED),
            row("room-3", Outcome.UNKNOWN),
        ]
    )
    plan = await core.service.plan_retry("req-1", actor())
    assert isinstance(plan, Plan)
    assert plan.kind is RunKind.RETRY
    run = await core.service.run(plan)
    assert sorted(r.room_id for r in run.results) == ["room-2", "room-3"]
    assert all(r.ok for r in run.results)
    assert core.emulator.rooms["room-2"]["IsAudioDisabled"] is True


async def _approved(core: Core, text: str) -> Approved:
    answer = await core.service.prepare(text, actor())
    assert isinstance(answer, Approved)
    return answer
