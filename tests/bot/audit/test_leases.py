"""Leases on requests being carried out: taken, renewed by a heartbeat, released; an expired one
goes to exactly one survivor, with its rows and delivery context; a live one is never touched,
not even by a replica starting up. Both backends (real clock, short leases)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from bot.audit.heartbeat import LeaseHeartbeat

from bot.audit import (
    RECOVERED_DETAIL,
    AuditError,
    AuditStore,
    NewEntry,
    Outcome,
    StrandedRequest,
    open_store,
)
from bot.audit.store import UNLEASED_GRACE_S

LEASE_S = 0.5
CONTEXT = {"channel": "C1", "thread_ts": "1700000000.000100", "response_url": None}


def entry(room: str, key: str = "req-1", **overrides: Any) -> NewEntry:
    values: dict[str, Any] = {
        "request_key": key,
        "source": "slash",
        "user_id": "U111",
        "verb": "mute-all",
        "raw_text": f"/room mute-all {room}",
        "room_id": room,
        "channel_id": "C1",
        "patch": {"IsAudioDisabled": True},
    }
    values.update(overrides)
    return NewEntry(**values)


async def open_replica(target: str | Path, name: str) -> AuditStore:
    return await open_store(target, owner=name, lease_s=LEASE_S)


async def test_a_lease_holds_its_context_until_released(target: str | Path) -> None:
    async with await open_replica(target, "replica-a") as store:
        before = time.time()
        lease = await store.take_lease("req-1", CONTEXT)
        assert lease.owner == "replica-a" == store.owner
        assert lease.context == CONTEXT
        assert lease.takeovers == 0
        assert before - 5 <= lease.taken_at <= time.time() + 5  # the database's clock on PG
        assert lease.expires_at == pytest.approx(lease.taken_at + LEASE_S, abs=0.05)
        assert await store.get_lease("req-1") == lease
        assert await store.release_lease("req-1") is True
        assert await store.release_lease("req-1") is False
        assert await store.get_lease("req-1") is None
        with pytest.raises(ValueError, match="request key"):
            await store.take_lease("", CONTEXT)
        with pytest.raises(AuditError, match="context"):
            await store.take_lease("req-2", {"when": object()})


async def test_the_holder_may_update_its_lease_but_nobody_else_may_take_it(
    target: str | Path,
) -> None:
    async with await open_replica(target, "a") as a, await open_replica(target, "b") as b:
        first = await a.take_lease("req-1", {"channel": "C1"})
        again = await a.take_lease("req-1", {"channel": "C1", "thread_ts": "1.2"})
        assert again.context == {"channel": "C1", "thread_ts": "1.2"}
        assert again.taken_at == first.taken_at
        assert again.expires_at >= first.expires_at
        with pytest.raises(AuditError, match="leased by another replica"):
            await b.take_lease("req-1", {"channel": "C9"})
        assert await b.release_lease("req-1") is False  # not b's to release
        lease = await a.get_lease("req-1")
        assert lease is not None
        assert (lease.owner, lease.context["thread_ts"]) == ("a", "1.2")


@pytest.mark.slow
async def test_renewal_keeps_a_lease_alive_and_expiry_hands_it_to_one_survivor(
    target: str | Path,
) -> None:
    async with (
        await open_replica(target, "worker") as worker,
        await open_replica(target, "survivor-1") as one,
        await open_replica(target, "survivor-2") as two,
    ):
        await worker.take_lease("req-1", CONTEXT)
        ids = await worker.begin([entry("room-1"), entry("room-2")])
        # Renewed every LEASE_S / 4 for three lease lengths: never expired, never claimed.
        deadline = time.monotonic() + 3 * LEASE_S
        while time.monotonic() < deadline:
            assert await worker.renew_leases() == frozenset({"req-1"})
            claims = await asyncio.gather(one.claim_expired_leases(), two.claim_expired_leases())
            assert list(claims) == [[], []]
            await asyncio.sleep(LEASE_S / 4)
        # The worker stops (no more heartbeats): after a lease length, exactly one survivor
        # gets the request, with its rows and where to report.
        await asyncio.sleep(LEASE_S + 0.1)
        got_one, got_two = await asyncio.gather(
            one.claim_expired_leases(), two.claim_expired_leases()
        )
        assert sorted([len(got_one), len(got_two)]) == [0, 1]
        [stranded] = got_one or got_two
        winner = one if got_one else two
        assert stranded.request_key == "req-1"
        assert stranded.previous_owner == "worker"
        assert stranded.context == CONTEXT
        assert stranded.takeovers == 1
        assert [r.id for r in stranded.rows] == ids
        assert [r.outcome for r in stranded.unsettled_rows] == [Outcome.PENDING] * 2
        # It is the winner's lease now: the stopped worker's heartbeat no longer holds it...
        assert await worker.renew_leases() == frozenset()
        assert await worker.release_lease("req-1") is False
        lease = await winner.get_lease("req-1")
        assert lease is not None
        assert lease.owner == winner.owner
        # ... and nobody else can claim it while the winner's lease lives.
        assert await one.claim_expired_leases() == []
        assert await two.claim_expired_leases() == []
        assert await winner.release_lease("req-1") is True


@pytest.mark.slow
async def test_two_survivors_split_many_expired_leases_without_overlap(
    target: str | Path,
) -> None:
    async with (
        await open_replica(target, "worker") as worker,
        await open_replica(target, "s1") as s1,
        await open_replica(target, "s2") as s2,
    ):
        keys = [f"req-{i}" for i in range(30)]
        for key in keys:
            await worker.take_lease(key, {"key": key})
        await asyncio.sleep(LEASE_S + 0.1)

        async def drain(store: AuditStore) -> list[StrandedRequest]:
            got: list[StrandedRequest] = []
            while batch := await store.claim_expired_leases(limit=3):
                got += batch
            return got

        first, second = await asyncio.gather(drain(s1), drain(s2))
    claimed = [s.request_key for s in first + second]
    assert sorted(claimed) == sorted(keys)  # each exactly once
    assert all(s.context == {"key": s.request_key} for s in first + second)


@pytest.mark.slow
async def test_a_taken_over_lease_can_expire_again_for_the_next_survivor(
    target: str | Path,
) -> None:
    async with (
        await open_replica(target, "worker") as worker,
        await open_replica(target, "s1") as s1,
        await open_replica(target, "s2") as s2,
    ):
        await worker.take_lease("req-1", CONTEXT)
        await asyncio.sleep(LEASE_S + 0.1)
        [first] = await s1.claim_expired_leases()
        assert first.takeovers == 1
        # s1 stops before reporting: s2 gets the request once s1's lease runs out too.
        await asyncio.sleep(LEASE_S + 0.1)
        [second] = await s2.claim_expired_leases()
        assert (second.previous_owner, second.takeovers) == ("s1", 2)
        assert second.context == CONTEXT


async def test_claim_limit_must_be_positive(target: str | Path) -> None:
    async with await open_replica(target, "a") as store:
        with pytest.raises(ValueError, match="limit"):
            await store.claim_expired_leases(limit=0)


# -- start-up -----------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_replica_starting_up_never_touches_live_work(pg_url: str) -> None:
    async with await open_store(pg_url, owner="running", lease_s=30) as running:
        await running.take_lease("req-1", CONTEXT)
        ids = await running.begin([entry("room-1"), entry("room-2")])
        async with await open_store(pg_url, owner="starting", lease_s=30) as starting:
            assert starting.recovered_unknown == 0
            assert starting.recovered == ()
            assert await starting.claim_expired_leases() == []
            rows = await starting.rows_for_request("req-1")
            assert [r.outcome for r in rows] == [Outcome.PENDING] * 2
        # The running replica finishes as if nothing happened.
        await running.complete_many([(i, {"outcome": Outcome.OK}) for i in ids])
        assert await running.release_lease("req-1") is True


async def test_sqlite_recovers_at_start_up_and_hands_over_the_contexts(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    async with await open_store(path, owner="stopped") as stopped:
        await stopped.take_lease("req-1", CONTEXT)
        ids = await stopped.begin([entry("room-1"), entry("room-2")])
        await stopped.complete(ids[0], outcome=Outcome.OK)
        await stopped.take_lease("req-2", {"channel": "C2"})  # leased, no row written yet
        await stopped.begin([entry("room-3", key="req-old")])  # a row without a lease
    async with await open_store(path, owner="next") as store:
        assert store.recovered_unknown == 2
        by_key = {s.request_key: s for s in store.recovered}
        assert list(by_key) == ["req-1", "req-old", "req-2"]
        one = by_key["req-1"]
        assert (one.previous_owner, one.context, one.takeovers) == ("stopped", CONTEXT, 1)
        assert [r.outcome for r in one.rows] == [Outcome.OK, Outcome.UNKNOWN]
        assert one.rows[1].detail == RECOVERED_DETAIL
        assert [r.id for r in one.unsettled_rows] == [ids[1]]
        assert by_key["req-2"].rows == ()
        assert (by_key["req-old"].previous_owner, by_key["req-old"].context) == (None, {})
        # The leases are the new store's until it has told the threads.
        assert await store.renew_leases() == frozenset({"req-1", "req-2"})
        assert await store.release_lease("req-1") is True
    # Reported and released: the next start has nothing more to say about req-1.
    async with await open_store(path, owner="after") as again:
        assert [s.request_key for s in again.recovered] == ["req-2"]


# -- late truth ---------------------------------------------------------------------------------


async def test_the_calls_own_outcome_replaces_a_survivors_verdict(target: str | Path) -> None:
    async with await open_store(target) as store:
        ids = await store.begin([entry("room-1"), entry("room-2"), entry("room-3")])
        await store.complete_many(
            [
                (
                    ids[0],
                    {"outcome": Outcome.IN_PLACE, "detail": "read back", "tencent_request_id": "r"},
                ),
                (ids[1], {"outcome": Outcome.NOT_APPLIED, "detail": "read back"}),
                (ids[2], {"outcome": Outcome.OK}),
            ]
        )
        # The replica thought stopped was only slow: its answers still land...
        await store.complete(ids[0], outcome=Outcome.OK, tencent_request_id="Id-real")
        await store.complete(ids[1], outcome=Outcome.FAILED, error_code=100004)
        # ... but a verdict never overwrites a call's own outcome.
        with pytest.raises(AuditError, match=str(ids[2])):
            await store.complete(ids[2], outcome=Outcome.NOT_APPLIED)
        rows = await store.rows_for_request("req-1")
    assert [r.outcome for r in rows] == [Outcome.OK, Outcome.FAILED, Outcome.OK]
    assert rows[0].tencent_request_id == "Id-real"
    assert rows[0].detail is None  # the provisional note went with the verdict


# -- the heartbeat ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_heartbeat_keeps_leases_alive_until_stopped(target: str | Path) -> None:
    async with (
        await open_replica(target, "worker") as worker,
        await open_replica(target, "survivor") as survivor,
    ):
        await worker.take_lease("req-1", CONTEXT)
        await worker.take_lease("req-2", CONTEXT)
        async with LeaseHeartbeat(worker) as heartbeat:
            assert heartbeat.interval == pytest.approx(LEASE_S / 3)
            for _ in range(6):
                await asyncio.sleep(LEASE_S / 2)
                assert await survivor.claim_expired_leases() == []
            assert heartbeat.held == frozenset({"req-1", "req-2"})
            assert heartbeat.failures == 0
            await worker.release_lease("req-2")
            await asyncio.sleep(LEASE_S / 2)
            assert heartbeat.held == frozenset({"req-1"})
        await asyncio.sleep(LEASE_S + 0.1)
        assert [s.request_key for s in await survivor.claim_expired_leases()] == ["req-1"]


async def test_a_failing_heartbeat_keeps_beating(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "audit.sqlite3", lease_s=0.3)
    await store.close()  # every renewal now fails
    async with LeaseHeartbeat(store, interval=0.02) as heartbeat:
        await asyncio.sleep(0.15)
    assert heartbeat.failures >= 3
    with pytest.raises(ValueError, match="interval"):
        LeaseHeartbeat(store, interval=0)


# -- rows nobody leased -------------------------------------------------------------------------


async def test_pending_rows_without_a_lease_are_found_once_they_are_old(
    target: str | Path,
) -> None:
    # A code path that wrote pending rows but forgot take_lease: after UNLEASED_GRACE_S they
    # are taken over like an expired lease, so even they are never left silent.
    now = [1_700_000_000.0]
    async with (
        await open_store(target, owner="w", clock=lambda: now[0], lease_s=3600) as worker,
        await open_store(target, owner="s1", clock=lambda: now[0]) as s1,
        await open_store(target, owner="s2", clock=lambda: now[0]) as s2,
    ):
        ids = await worker.begin([entry("room-1", key="forgot"), entry("room-2", key="forgot")])
        await worker.take_lease("leased", CONTEXT)
        await worker.begin([entry("room-3", key="leased")])
        now[0] += UNLEASED_GRACE_S - 1
        assert await s1.claim_expired_leases() == []
        now[0] += 2
        got = await asyncio.gather(s1.claim_expired_leases(), s2.claim_expired_leases())
        [stranded] = got[0] or got[1]
        assert sorted(map(len, got)) == [0, 1]
        assert (stranded.request_key, stranded.previous_owner, stranded.context) == (
            "forgot",
            None,
            {},
        )
        assert [r.id for r in stranded.rows] == ids
        # The leased request is still the worker's: its lease is alive.
        assert await worker.renew_leases() == frozenset({"leased"})
