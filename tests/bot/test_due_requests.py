"""Requests recorded to run later (DESIGN §2.10): a scheduled request waits, untouched, until its
time; then exactly one replica's loop takes it (fencing number one higher) and carries it out
through its life, reported through its own delivery; one that fell due while no replica ran is
taken at the next start; a waiting request (awaiting approval) is taken by exactly one click;
Keep/Extend-like changes (`settle_waiting`) apply only while it still waits; a due request with
nothing to run ends cancelled. Both store backends; the loop ticks by hand.

On PostgreSQL "due" is judged on the server's clock (as leases are), on SQLite on the store's
(fake) clock: `due_in` gives a `run_after` that is due (or not) on either."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import pytest

from bot import metrics
from bot.audit import AuditStore, Outcome, RequestRecord, RequestState
from bot.outcomes import Plan
from bot.requests.delivery import Deliveries, Delivery
from bot.requests.due import DueRequests, NothingToRun
from bot.requests.leases import LeaseBook
from bot.requests.life import RequestLife
from bot.requests.loop import RequestLoop
from bot.requests.recorder import AuditRecorder
from bot.requests.runner import Runner
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from testkit.clock import FakeClock
from tests.bot.corekit import plan_for, room_of
from tests.bot.requestkit import RecordingDelivery, Replicas, new_request

REPLY = {"adapter": "test", "channel": "C1", "parent_ts": "1700000000.000100"}
NOW = 1_700_000_000.0


def due_in(store: AuditStore, clock: FakeClock, seconds: float) -> float:
    """A `run_after` `seconds` from now on the clock `store` judges due times by."""
    return (time.time() if store.backend == "postgresql" else clock()) + seconds


class Replica:
    """One replica's store, life, due work and loop, reporting to `delivery`."""

    def __init__(
        self,
        store: AuditStore,
        client: RoomEngineClient,
        clock: Callable[[], float],
        delivery: RecordingDelivery | None = None,
    ) -> None:
        self.store = store
        self.delivery = delivery or RecordingDelivery(reply=dict(REPLY))
        self.book = LeaseBook(store, monotonic=clock)
        recorder = AuditRecorder(store)
        self.life = RequestLife(
            store, Runner(client, recorder, monotonic=clock), recorder, book=self.book
        )
        self.due = DueRequests(store, self.life)
        deliveries = Deliveries()
        deliveries.register("test", self._build)
        self.addresses: list[dict[str, Any]] = []
        self.loop = RequestLoop(store, client, deliveries, self.book, monotonic=clock, due=self.due)

    def _build(self, address: Mapping[str, Any]) -> Delivery:
        self.addresses.append(dict(address))
        return self.delivery


def mute(key: str, room: str = "room-1") -> Plan:
    return replace(plan_for(f"mute-all {room}"), request_key=key)


def updates(emulator: RoomEngineEmulator) -> list[str]:
    return [room_of(r.body) for r in emulator.requests if r.command == "update_room_info"]


# -- the store ------------------------------------------------------------------------------------


async def test_a_scheduled_request_is_taken_only_when_due_and_by_exactly_one_replica(
    cluster: Replicas, clock: FakeClock
) -> None:
    a = await cluster.open("a")
    b = await cluster.open("b")
    assert await a.record_request(new_request("soon", run_after=due_in(a, clock, 600)))
    assert await a.record_request(new_request("now", run_after=due_in(a, clock, -1)))
    assert await a.record_request(
        new_request("asked", waiting=RequestState.AWAITING_APPROVAL, run_after=None)
    )
    # A repeat (same dedupe key) is not recorded.
    assert await a.record_request(new_request("x1", dedupe_key="timer:1", run_after=NOW))
    assert not await b.record_request(new_request("x2", dedupe_key="timer:1", run_after=NOW))
    soon = await a.get_request("soon")
    assert soon is not None
    assert (soon.state, soon.owner, soon.fence) == (RequestState.SCHEDULED, None, 0)

    taken = [t for batch in await asyncio.gather(a.take_due(), b.take_due()) for t in batch]
    keys = sorted(t.request_key for t in taken)
    assert keys == ["now", "x1"] if a.backend == "sqlite" else "now" in keys
    # Whatever the split, nothing is taken twice, and "soon" and "asked" are not taken at all.
    assert len(keys) == len(set(keys))
    assert "soon" not in keys
    assert "asked" not in keys
    now = next(t for t in taken if t.request_key == "now")
    assert (now.record.state, now.record.fence, now.lease.fence) == (RequestState.RECEIVED, 1, 1)
    assert now.record.owner in ("a", "b")
    assert await a.take_due() == []
    assert await b.take_due() == []
    # A taken request is an ordinary held request: its holder can carry it out, fenced.
    holder = a if now.record.owner == "a" else b
    await holder.finish_request(now.lease)
    record = await a.get_request("now")
    assert record is not None
    assert (record.state, record.owner) == (RequestState.REPORTED, None)


async def test_a_waiting_request_is_taken_by_exactly_one_of_many_clicks(
    cluster: Replicas,
) -> None:
    a = await cluster.open("a")
    b = await cluster.open("b")
    assert await a.record_request(
        new_request("asked", waiting=RequestState.AWAITING_APPROVAL, run_after=None)
    )
    waiting = (RequestState.AWAITING_APPROVAL,)
    results = await asyncio.gather(
        *(s.take_waiting("asked", from_states=waiting) for _ in range(5) for s in (a, b))
    )
    [winner] = [r for r in results if r is not None]
    assert (winner.record.state, winner.lease.fence) == (RequestState.RECEIVED, 1)
    # It waits no more: neither a click nor a settle changes it now.
    assert await a.take_waiting("asked", from_states=waiting) is None
    assert await b.settle_waiting("asked", from_states=waiting, state=RequestState.DENIED) is None
    assert await a.take_waiting("nope", from_states=waiting) is None


async def test_settling_a_waiting_request_moves_it_only_while_it_waits(
    cluster: Replicas, clock: FakeClock
) -> None:
    a = await cluster.open("a")
    later = due_in(a, clock, 600)
    assert await a.record_request(new_request("timer", run_after=later))
    scheduled = (RequestState.SCHEDULED,)
    moved = await a.settle_waiting("timer", from_states=scheduled, run_after=later + 1800)
    assert moved is not None
    assert (moved.state, moved.run_after) == (RequestState.SCHEDULED, later + 1800)
    kept = await a.settle_waiting("timer", from_states=scheduled, state=RequestState.CANCELLED)
    assert kept is not None
    assert kept.state is RequestState.CANCELLED
    # Cancelled, it is not scheduled any more: not settled again, never taken.
    assert await a.settle_waiting("timer", from_states=scheduled, run_after=later) is None
    await cluster.advance(3600)
    assert await a.take_due() == []


# -- the loop -------------------------------------------------------------------------------------


async def test_a_scheduled_request_runs_once_at_its_time_on_one_of_two_replicas(
    cluster: Replicas,
    clock: FakeClock,
    client: RoomEngineClient,
    emulator: RoomEngineEmulator,
) -> None:
    replicas_ = [Replica(await cluster.open(n), client, cluster.clock) for n in ("a", "b")]
    first = replicas_[0]
    later = due_in(first.store, clock, 600)
    assert await first.life.schedule(mute("later", "room-2"), first.delivery, run_after=later)
    assert await first.life.schedule(
        mute("timer-1"), first.delivery, run_after=due_in(first.store, clock, -1)
    )
    for _ in range(2):
        await asyncio.gather(*(r.loop.tick() for r in replicas_))
    assert updates(emulator) == ["room-1"]  # once, by one replica; room-2's time has not come
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True
    assert not emulator.rooms["room-2"].get("IsAudioDisabled")
    [runner] = [r for r in replicas_ if r.delivery.kinds()]
    assert runner.addresses == [REPLY]  # reported where the request said
    assert runner.delivery.kinds() == ["start", "finish"]
    [run] = runner.delivery.of("finish")
    assert [(r.room_id, r.ok) for r in run.results] == [("room-1", True)]
    record = await first.store.get_request("timer-1")
    assert record is not None
    assert (record.state, record.owner, record.fence) == (RequestState.REPORTED, None, 1)
    assert [row.outcome for row in await first.store.rows_for_request("timer-1")] == [Outcome.OK]
    assert all(r.book.held == frozenset() for r in replicas_)
    waiting = await first.store.get_request("later")
    assert waiting is not None
    assert (waiting.state, waiting.owner) == (RequestState.SCHEDULED, None)


async def test_a_request_due_while_no_replica_ran_runs_at_the_next_start(
    cluster: Replicas,
    clock: FakeClock,
    client: RoomEngineClient,
    emulator: RoomEngineEmulator,
) -> None:
    gone = Replica(await cluster.open("gone"), client, cluster.clock)
    assert await gone.life.schedule(
        mute("timer-1"), gone.delivery, run_after=due_in(gone.store, clock, -120)
    )
    await gone.store.close()
    fresh = Replica(await cluster.open("fresh"), client, cluster.clock)
    await fresh.loop.tick()  # the first tick at start
    assert updates(emulator) == ["room-1"]
    record = await fresh.store.get_request("timer-1")
    assert record is not None
    assert record.state is RequestState.REPORTED
    # The record keeps when it was due, for the report to say how late it ran.
    assert record.run_after == pytest.approx(due_in(fresh.store, clock, -120), abs=60)


async def test_a_due_request_with_nothing_to_run_ends_cancelled_and_calls_nothing(
    cluster: Replicas,
    clock: FakeClock,
    client: RoomEngineClient,
    emulator: RoomEngineEmulator,
) -> None:
    replica = Replica(await cluster.open("a"), client, cluster.clock)
    built: list[str] = []

    async def nothing(record: RequestRecord) -> Plan:
        built.append(record.request_key)
        raise NothingToRun("every field was changed since")

    replica.due.on_due("revert", nothing)
    assert await replica.store.record_request(
        new_request(
            "revert-1", kind="revert", reply=REPLY, run_after=due_in(replica.store, clock, -1)
        )
    )
    await replica.loop.tick()
    assert built == ["revert-1"]
    assert updates(emulator) == []
    ended = await replica.store.get_request("revert-1")
    assert ended is not None
    assert (ended.state, ended.owner) == (RequestState.CANCELLED, None)
    assert replica.delivery.kinds() == []


async def test_wake_runs_a_round_at_once(
    cluster: Replicas,
    clock: FakeClock,
    client: RoomEngineClient,
    emulator: RoomEngineEmulator,
) -> None:
    replica = Replica(await cluster.open("a"), client, cluster.clock)
    replica.loop.interval_s = 3600.0  # without a wake, the next round is an hour away
    replica.loop.start()
    try:
        await asyncio.sleep(0.3)  # the first round, at start, found nothing
        assert await replica.life.schedule(
            mute("now-1"), replica.delivery, run_after=due_in(replica.store, clock, -1)
        )
        replica.loop.wake()
        for _ in range(100):
            if replica.delivery.kinds() == ["start", "finish"]:
                break
            await asyncio.sleep(0.05)
        assert replica.delivery.kinds() == ["start", "finish"]
        assert updates(emulator) == ["room-1"]
    finally:
        await replica.loop.stop()


async def test_an_idle_tick_is_one_store_transaction(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    replica = Replica(await cluster.open("a"), client, cluster.clock)

    def spent() -> dict[str, float]:
        return {
            op: metrics.value("roombot_store_transactions_total", operation=op)
            for op in metrics.STORE_OPERATIONS
        }

    before = spent()
    await replica.loop.tick()
    after = spent()
    # One look for expired leases and due requests together; nothing else.
    assert {op: n - before[op] for op, n in after.items() if n != before[op]} == {"find_work": 1.0}


async def test_a_loop_started_after_a_round_of_its_own_waits_before_the_next(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    replica = Replica(await cluster.open("a"), client, cluster.clock)
    replica.loop.interval_s = 3600.0

    def looks() -> float:
        return metrics.value("roombot_store_transactions_total", operation="find_work")

    await replica.loop.tick()  # the console's first round, before its prompt
    before = looks()
    replica.loop.start(at_once=False)
    try:
        await asyncio.sleep(0.3)
        assert looks() == before  # no second look straight away
        replica.loop.wake()
        for _ in range(100):
            if looks() > before:
                break
            await asyncio.sleep(0.02)
        assert looks() == before + 1
    finally:
        await replica.loop.stop()
