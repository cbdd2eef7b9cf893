"""Issue 27, item 15: a request is on record from the moment it is received. One interrupted
while it still reads its rooms (the replica killed, the task cancelled) left no audit row at all,
while its message pointed to `history`. Now the claim is the record: the interrupted request is
found, its rows are written from its plan by the replica that takes it over, each "not
attempted", and `history` of its room shows it. Both store backends; the loop ticks by hand."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bot.audit import Outcome, RequestState
from bot.requests.delivery import Deliveries
from bot.requests.leases import LeaseBook
from bot.requests.life import RequestLife
from bot.requests.loop import RequestLoop
from bot.requests.recorder import AuditRecorder
from bot.requests.runner import Runner
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from tests.bot.corekit import plan_for
from tests.bot.requestkit import LEASE_S, RecordingDelivery, Replicas


async def test_a_request_interrupted_while_reading_its_rooms_is_in_the_audit(
    cluster: Replicas, client: RoomEngineClient, emulator: RoomEngineEmulator
) -> None:
    store = await cluster.open("interrupted")
    recorder = AuditRecorder(store)
    book = LeaseBook(store, monotonic=cluster.clock)
    life = RequestLife(store, Runner(client, recorder), recorder, book=book)
    delivery = RecordingDelivery(reply={"adapter": "test", "channel": "C1"})
    plan = replace(plan_for("mute-all room-1 room-2 --reason raid"), request_key="req-read")
    # The rooms never answer the read: the request is stopped while it reads them.
    emulator.script("get_room_info", ["hang", "hang"])
    running = asyncio.ensure_future(life.submit(plan, delivery))
    for _ in range(200):
        if any(r.command == "get_room_info" for r in emulator.requests):
            break
        await asyncio.sleep(0.01)
    running.cancel()  # as a SIGKILL leaves it: nothing more is written
    with pytest.raises(asyncio.CancelledError):
        await running
    assert not [r for r in emulator.requests if r.command == "update_room_info"]

    # On record from the moment it was received, though no row was written yet.
    record = await store.get_request("req-read")
    assert record is not None
    assert record.state is RequestState.RECEIVED
    assert (record.verb, record.reason) == ("mute-all", "raid")

    # Another replica takes it over once its lease has run out, and writes its rows.
    await cluster.advance(LEASE_S + 1)
    survivor = await cluster.open("survivor")
    reports = RecordingDelivery(reply={"adapter": "test"})
    deliveries = Deliveries()
    deliveries.register("test", lambda _address: reports)
    loop = RequestLoop(survivor, client, deliveries, LeaseBook(survivor, monotonic=cluster.clock))
    [report] = await loop.tick()
    assert [v.outcome for v in report.verdicts] == [Outcome.NOT_ATTEMPTED] * 2
    for room in ("room-1", "room-2"):
        [row] = await survivor.query(room=room, limit=10)  # what `history ROOM` reads
        assert (row.request_key, row.outcome, row.reason) == (
            "req-read",
            Outcome.NOT_ATTEMPTED,
            "raid",
        )
    done = await survivor.get_request("req-read")
    assert done is not None
    assert done.state is RequestState.REPORTED
