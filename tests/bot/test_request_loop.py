"""`RequestLoop`, a replica's one loop over due work: a stopped replica's request is reported once,
by one of the survivors racing for it, through the delivery its reply address names; a report
that cannot be delivered is tried again, waiting longer each time, while this replica keeps the
lease, and given up after enough takeovers; a replica that lost such a request to another one
delivers nothing more; a request this replica still carries out is renewed, never taken over; a
restart reports its predecessor's request in the first tick; a request stopped while still
`received` gets its rows from its plan and is reported not attempted; a replica takes only what
it can deliver. Both store backends, fake time (ticks by hand)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.audit import AuditError, AuditStore, Outcome, RequestState, open_store
from bot.requests.delivery import Deliveries, Delivery
from bot.requests.leases import LeaseBook
from bot.requests.loop import RequestLoop
from bot.requests.plans import plan_to_json
from bot.requests.takeover import VERDICT_DETAILS, TakeoverReport
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from tests.bot.corekit import plan_for
from tests.bot.requestkit import (
    APP,
    KEY,
    LEASE_S,
    RecordingDelivery,
    Replicas,
    entry,
    new_request,
    predecessor,
)

REPLY = {"adapter": "test", "channel": "C1", "parent_ts": "1700000000.000100"}


@pytest.fixture
async def emulator() -> AsyncIterator[RoomEngineEmulator]:
    emu = RoomEngineEmulator(
        sdkappid=APP,
        secret_key=KEY,
        rooms=[{"RoomId": "room-done", "IsAudioDisabled": True}, "room-not-done"],
    )
    await emu.start()
    yield emu
    await emu.stop()


class Survivor:
    """A replica's store, its leases and its loop, delivering to `delivery` (and recording
    the addresses it was asked to deliver to)."""

    def __init__(
        self,
        store: AuditStore,
        client: RoomEngineClient,
        clock: Callable[[], float],
        delivery: RecordingDelivery | None = None,
        **options: Any,
    ) -> None:
        self.store = store
        self.delivery = delivery or RecordingDelivery()
        self.addresses: list[dict[str, Any]] = []
        self.book = LeaseBook(store, monotonic=clock)
        deliveries = Deliveries()
        deliveries.register("test", self._build)
        self.loop = RequestLoop(store, client, deliveries, self.book, monotonic=clock, **options)

    def _build(self, address: Mapping[str, Any]) -> Delivery:
        self.addresses.append(dict(address))
        return self.delivery

    @property
    def reports(self) -> list[TakeoverReport]:
        reports: list[TakeoverReport] = self.delivery.of("takeover")
        return reports


async def stop_mid_request(store: AuditStore, key: str = "req-1") -> list[int]:
    """A replica records a request, writes its pending rows and stops without a word."""
    lease = await store.claim_request(new_request(key, reply=REPLY))
    assert lease is not None
    return await store.begin_request(lease, [entry("room-done", key), entry("room-not-done", key)])


async def test_two_survivors_report_a_stopped_request_once(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    ids = await stop_mid_request(await cluster.open("worker"))
    await cluster.advance(LEASE_S + 1)
    survivors = [
        Survivor(await cluster.open(f"survivor-{i}"), client, cluster.clock) for i in range(2)
    ]
    for _ in range(3):  # racing, then again: it is never reported twice
        await asyncio.gather(*(s.loop.tick() for s in survivors))
        await cluster.advance(LEASE_S / 4)
    [report] = [r for s in survivors for r in s.reports]
    [winner] = [s for s in survivors if s.reports]
    assert winner.addresses == [REPLY]  # delivered where the request said
    assert report.context == REPLY
    assert report.previous_owner == "worker"
    assert [v.outcome for v in report.verdicts] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]
    rows = await winner.store.rows_for_request("req-1")
    assert [(r.id, r.outcome) for r in rows] == list(
        zip(ids, [Outcome.IN_PLACE, Outcome.NOT_APPLIED], strict=True)
    )
    record = await winner.store.get_request("req-1")
    assert record is not None
    assert (record.state, record.owner) == (RequestState.REPORTED, None)
    assert winner.book.held == frozenset()
    assert all(s.loop.undelivered == frozenset() for s in survivors)


async def test_an_undelivered_report_is_retried_while_this_replica_keeps_the_lease(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    await stop_mid_request(await cluster.open("worker"))
    await cluster.advance(LEASE_S + 1)
    me = Survivor(
        await cluster.open("survivor"), client, cluster.clock, RecordingDelivery(fail_takeovers=4)
    )
    other = await cluster.open("other")

    assert await me.loop.tick() == []  # Slack is down
    assert me.loop.undelivered == {"req-1"}
    assert len(me.reports) == 1
    # Retried after 2, 4, 8 and 16 ticks, while each tick renews the lease: nobody else takes
    # the request, however long Slack stays down (twice the lease, here).
    waited = 0.0
    while len(me.reports) < 5:
        await cluster.advance(me.loop.interval_s)
        waited += me.loop.interval_s
        delivered = await me.loop.tick()
        assert await other.take_over() == []
        assert waited <= 2 * LEASE_S
    assert waited == me.loop.interval_s * (2 + 4 + 8 + 16)
    assert [r.request_key for r in delivered] == ["req-1"]
    assert me.loop.undelivered == frozenset()
    assert me.book.held == frozenset()
    record = await me.store.get_request("req-1")
    assert record is not None
    assert (record.state, record.owner, record.takeovers) == (RequestState.REPORTED, None, 1)
    # Each attempt read the rooms again (a verdict is a reading): the same verdicts.
    assert {tuple(v.outcome for v in r.verdicts) for r in me.reports} == {
        (Outcome.IN_PLACE, Outcome.NOT_APPLIED)
    }
    rows = await me.store.rows_for_request("req-1")
    assert [r.outcome for r in rows] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]


async def test_an_undeliverable_report_is_given_up_after_enough_takeovers(
    cluster: Replicas, client: RoomEngineClient, caplog: pytest.LogCaptureFixture
) -> None:
    await stop_mid_request(await cluster.open("worker"))
    await cluster.advance(LEASE_S + 1)
    # A first survivor took it over and stopped in turn before delivering anything.
    first = await cluster.open("first")
    assert len(await first.take_over(adapters=("test",))) == 1
    await cluster.advance(LEASE_S + 1)
    never = RecordingDelivery(fail_takeovers=1_000)
    me = Survivor(await cluster.open("me"), client, cluster.clock, never, max_takeovers=3)
    with caplog.at_level(logging.ERROR, logger="bot.requests.loop"):
        assert await me.loop.tick() == []  # takeover 2: tried again later
        await cluster.advance(me.loop.interval_s * 2)
        [report] = await me.loop.tick()  # takeover 2, attempt 2: 3 in all, given up
    assert len(me.reports) == 2
    assert report.request_key == "req-1"
    assert "could not be delivered after 3 attempts; giving up" in caplog.text
    assert me.loop.undelivered == frozenset()
    record = await me.store.get_request("req-1")
    assert record is not None
    assert (record.state, record.owner) == (RequestState.REPORTED, None)
    rows = await me.store.rows_for_request("req-1")  # the audit trail keeps the verdicts
    assert [r.outcome for r in rows] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]


async def test_a_replica_that_lost_an_undelivered_report_delivers_nothing_more(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    await stop_mid_request(await cluster.open("worker"))
    await cluster.advance(LEASE_S + 1)
    paused = Survivor(
        await cluster.open("paused"), client, cluster.clock, RecordingDelivery(fail_takeovers=1)
    )
    assert await paused.loop.tick() == []
    await cluster.advance(LEASE_S + 1)  # paused past its lease: no renewal
    other = Survivor(await cluster.open("other"), client, cluster.clock)
    [report] = await other.loop.tick()
    assert report.previous_owner == "paused"
    await cluster.advance(LEASE_S)
    assert await paused.loop.tick() == []  # it wakes up: the request is not its own any more
    assert len(paused.reports) == 1  # only the failed attempt
    assert paused.loop.undelivered == frozenset()
    assert paused.book.held == frozenset()
    assert len(other.reports) == 1


async def test_a_request_this_replica_still_carries_out_is_renewed_not_taken_over(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    me = Survivor(await cluster.open("me"), client, cluster.clock)
    lease = await me.store.claim_request(new_request("req-1", reply=REPLY))
    assert lease is not None
    held = me.book.hold(lease)  # as the request life does while it runs
    await me.store.begin_request(lease, [entry("room-done")])
    await cluster.advance(LEASE_S + 1)  # a heartbeat that missed its beats
    assert await me.loop.tick() == []
    assert me.reports == []
    assert not held.lost
    assert held.remaining() == LEASE_S  # renewed: it is this replica's again
    [row] = await me.store.rows_for_request("req-1")
    assert row.outcome is Outcome.PENDING  # its own outcome is still to come
    other = await cluster.open("other")
    assert await other.take_over() == []


async def test_a_restart_reports_its_predecessors_request_in_the_first_tick(
    tmp_path: Path, client: RoomEngineClient
) -> None:
    path = tmp_path / "audit.sqlite3"
    async with await open_store(path, owner=predecessor()) as before:
        await stop_mid_request(before)
    async with await open_store(path) as store:
        assert store.recovered == 1
        me = Survivor(store, client, time.monotonic)
        [report] = await me.loop.tick()
        assert me.reports == [report]
        assert report.previous_owner == predecessor()
        assert [v.outcome for v in report.verdicts] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]
        assert await me.loop.tick() == []  # reported once
        record = await store.get_request("req-1")
        assert record is not None
        assert record.state is RequestState.REPORTED


@pytest.mark.parametrize(
    ("text", "patches"),
    [
        ("mute-all room-done room-not-done", [("room-done", None), ("room-not-done", None)]),
        ("kick room-done alice bob", [("room-done", "alice"), ("room-done", "bob")]),
    ],
)
async def test_a_request_stopped_while_received_is_reported_not_attempted_from_its_plan(
    cluster: Replicas,
    client: RoomEngineClient,
    emulator: RoomEngineEmulator,
    text: str,
    patches: list[tuple[str, str | None]],
) -> None:
    plan = plan_for(text)
    worker = await cluster.open("worker")
    await worker.claim_request(
        new_request(plan.request_key, reply=REPLY, plan=plan_to_json(plan), verb=plan.command.verb)
    )  # and stopped while reading its rooms or posting its parent
    await cluster.advance(LEASE_S + 1)
    me = Survivor(await cluster.open("me"), client, cluster.clock)
    [report] = await me.loop.tick()
    assert report.nothing_sent is True
    assert [v.outcome for v in report.verdicts] == [Outcome.NOT_ATTEMPTED] * 2
    assert [(v.room_id, v.wanted.get("Member_Account")) for v in report.verdicts] == patches
    assert report.plan is not None
    assert report.plan.calls == plan.calls
    assert emulator.requests == []  # nothing sent, so nothing to read back
    rows = await me.store.rows_for_request(plan.request_key)
    assert [(r.room_id, r.outcome, r.verb) for r in rows] == [
        (room, Outcome.NOT_ATTEMPTED, plan.command.verb) for room, _ in patches
    ]
    assert {r.detail for r in rows} == {VERDICT_DETAILS[Outcome.NOT_ATTEMPTED]}
    assert {r.user_id for r in rows} == {plan.actor.user_id}  # Retry is theirs to click
    record = await me.store.get_request(plan.request_key)
    assert record is not None
    assert record.state is RequestState.REPORTED


async def test_a_received_request_whose_plan_cannot_be_read_is_still_reported(
    cluster: Replicas, client: RoomEngineClient, caplog: pytest.LogCaptureFixture
) -> None:
    worker = await cluster.open("worker")
    await worker.claim_request(new_request("req-1", reply=REPLY, plan={"v": 99}))
    await cluster.advance(LEASE_S + 1)
    me = Survivor(await cluster.open("me"), client, cluster.clock)
    with caplog.at_level(logging.WARNING, logger="bot.requests.loop"):
        [report] = await me.loop.tick()
    assert "no plan this roombot can read" in caplog.text
    assert (report.nothing_sent, report.verdicts, report.plan) == (True, (), None)


async def test_a_replica_takes_only_what_it_can_deliver(
    cluster: Replicas, client: RoomEngineClient, caplog: pytest.LogCaptureFixture
) -> None:
    worker = await cluster.open("worker")
    for key, reply in (("from-test", REPLY), ("from-elsewhere", {"adapter": "slack"})):
        await worker.claim_request(new_request(key, reply=reply))
    await worker.claim_request(new_request("from-console", reply={"adapter": "console"}))
    await cluster.advance(LEASE_S + 1)
    me = Survivor(await cluster.open("me"), client, cluster.clock)
    with caplog.at_level(logging.WARNING, logger="bot.requests.delivery"):
        reports = await me.loop.tick()
    # Its own adapter's through that delivery; a console session's by logging (nothing here
    # can post it, and it must not stay silent); another adapter's is left to its replicas.
    assert sorted(r.request_key for r in reports) == ["from-console", "from-test"]
    assert [r.request_key for r in me.reports] == ["from-test"]
    assert "request from-console was taken over" in caplog.text
    record = await me.store.get_request("from-elsewhere")
    assert record is not None
    assert (record.owner, record.state) == ("worker", RequestState.RECEIVED)


async def test_the_loop_runs_in_the_background_until_stopped(
    target: str | Path, client: RoomEngineClient
) -> None:
    async with (
        await open_store(target, owner="worker") as worker,
        await open_store(target, owner="survivor") as store,
    ):
        lease = await worker.claim_request(new_request("req-1", reply=REPLY))
        assert lease is not None
        await worker.begin_request(lease, [entry("room-done")])
        await worker.abandon_request(lease)  # an unexpected error: handed back at once
        me = Survivor(store, client, time.monotonic, interval_s=0.01)
        me.loop.start()
        me.loop.start()  # idempotent
        try:
            assert me.loop.running
            for _ in range(500):
                if me.reports:
                    break
                await asyncio.sleep(0.01)
            [report] = me.reports
            assert report.previous_owner is None
        finally:
            await me.loop.stop()
        assert not me.loop.running
        await me.loop.stop()  # idempotent


async def test_a_tick_that_cannot_look_for_work_says_so(
    tmp_path: Path, client: RoomEngineClient
) -> None:
    store = await open_store(tmp_path / "audit.sqlite3", owner="me")
    await store.close()
    me = Survivor(store, client, time.monotonic)
    with pytest.raises(AuditError, match="closed"):
        await me.loop.tick()
    with pytest.raises(ValueError, match="interval_s"):
        RequestLoop(store, client, Deliveries(), me.book, interval_s=0)


class FlakyBegin(AuditStore):
    """A store whose next `fail_begins` request beginnings fail (a database hiccup)."""

    fail_begins = 0

    async def begin_request(self, *args: Any, **kwargs: Any) -> list[int]:
        if self.fail_begins:
            self.fail_begins -= 1
            raise AuditError("the audit store could not start a request: database is locked")
        return await super().begin_request(*args, **kwargs)


async def test_rows_from_the_plan_are_written_at_a_later_tick_when_the_first_write_fails(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    plan = plan_for("mute-all room-done room-not-done")
    worker = await cluster.open("worker")
    await worker.claim_request(new_request(plan.request_key, reply=REPLY, plan=plan_to_json(plan)))
    await cluster.advance(LEASE_S + 1)
    store = await cluster.open_as(FlakyBegin, "me")
    store.fail_begins = 1
    me = Survivor(store, client, cluster.clock)
    assert await me.loop.tick() == []  # tried again at the next tick
    assert me.loop.undelivered == {plan.request_key}
    await cluster.advance(me.loop.interval_s)
    [report] = await me.loop.tick()
    assert [v.outcome for v in report.verdicts] == [Outcome.NOT_ATTEMPTED] * 2
    rows = await store.rows_for_request(plan.request_key)
    assert [(r.room_id, r.outcome) for r in rows] == [
        ("room-done", Outcome.NOT_ATTEMPTED),
        ("room-not-done", Outcome.NOT_ATTEMPTED),
    ]
