"""Taking over a stopped replica's request (`take_over(store, reader, TakenRequest)`): each room
whose outcome is unsettled read back from the (emulated) Room Engine, a verdict per room recorded
in the audit trail with the read's RequestId in one fenced transaction, the request marked done,
a report for its reply address with Retry offered for what is not in place; a request stopped
while still `received` sent nothing (every row not attempted, nothing read); the late answer of
the replica that lost the request is refused and the verdict stands. Both store backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.audit import (
    AuditError,
    AuditStore,
    Lease,
    LeaseLost,
    NewEntry,
    Outcome,
    RequestState,
    TakenRequest,
)
from bot.audit.rows import Completion
from bot.models import RoomSnapshot
from bot.requests.plans import plan_to_json
from bot.requests.takeover import VERDICT_DETAILS, take_over
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from tests.bot.corekit import plan_for
from tests.bot.requestkit import APP, KEY, LEASE_S, Replicas, new_request

REPLY = {"adapter": "slack", "channel": "C1", "parent_ts": "1700000000.000100"}
MUTE = {"IsAudioDisabled": True}
LOCKDOWN = {
    "IsAudioDisabled": True,
    "IsVideoDisabled": True,
    "IsMessageDisabled": True,
    "IsScreenSharingDisabled": True,
}
ROOMS = "room-applied room-not-applied room-gone room-done"


@pytest.fixture
async def emulator() -> AsyncIterator[RoomEngineEmulator]:
    emu = RoomEngineEmulator(
        sdkappid=APP,
        secret_key=KEY,
        rooms=[
            {"RoomId": "room-applied", "IsAudioDisabled": True},
            {"RoomId": "room-not-applied", "IsAudioDisabled": False},
            {"RoomId": "room-done", "IsAudioDisabled": True},
            {"RoomId": "room-half", "IsAudioDisabled": True, "IsVideoDisabled": False},
        ],
    )
    await emu.start()
    yield emu
    await emu.stop()


def entry(room: str, patch: dict[str, Any], key: str = "req-1") -> NewEntry:
    return NewEntry(
        request_key=key,
        source="slash",
        user_id="U0ALICE",
        verb="mute-all",
        raw_text=f"mute-all {ROOMS}",
        room_id=room,
        channel_id="C1",
        patch=patch,
    )


async def strand(
    cluster: Replicas, rows: list[NewEntry], *, key: str = "req-1", **request: Any
) -> tuple[list[int], AuditStore, TakenRequest]:
    """A worker records request `key`, writes its pending rows and stops; once its lease ran
    out a survivor takes it over. Returns the row ids, the survivor and what it took."""
    worker = await cluster.open(f"worker-{key}")
    values: dict[str, Any] = {"reply": REPLY, "user_id": "U0ALICE", "raw_text": f"mute-all {ROOMS}"}
    values.update(request)
    lease = await worker.claim_request(new_request(key, **values))
    assert lease is not None
    ids = await worker.begin_request(lease, rows) if rows else []
    await cluster.advance(LEASE_S + 1)
    survivor = await cluster.open(f"survivor-{key}")
    [taken] = await survivor.take_over()
    return ids, survivor, taken


def read_ids(emulator: RoomEngineEmulator, room: str) -> list[str | None]:
    return [
        r.request_id
        for r in emulator.requests
        if r.command == "get_room_info" and r.body.get("RoomId") == room
    ]


async def test_each_room_is_read_back_judged_and_recorded(
    cluster: Replicas, emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    worker = await cluster.open("worker")
    lease = await worker.claim_request(new_request("req-1", reply=REPLY, user_id="U0ALICE"))
    assert lease is not None
    ids = await worker.begin_request(lease, [entry(room, MUTE) for room in ROOMS.split()], REPLY)
    # One row has its call's own outcome (as an older version could record it row by row).
    await worker.complete(ids[3], outcome=Outcome.OK, tencent_request_id="Id-call-O-Seq-1")
    await cluster.advance(LEASE_S + 1)  # the worker stopped: no renewal, no report
    survivor = await cluster.open("survivor")
    [taken] = await survivor.take_over()

    report = await take_over(survivor, client, taken)
    rows = await survivor.rows_for_request("req-1")

    assert report.request_key == "req-1"
    assert report.context == REPLY
    assert report.previous_owner == "worker"
    assert (report.verb, report.user_id, report.channel_id) == ("mute-all", "U0ALICE", "C1")
    assert report.raw_text == "mute-all room-1"
    assert report.audit_problem is None
    assert report.nothing_sent is False
    applied, not_applied, gone, done = report.verdicts
    assert (applied.outcome, applied.found, applied.read_back) == (Outcome.IN_PLACE, MUTE, True)
    assert not_applied.outcome is Outcome.NOT_APPLIED
    assert not_applied.found == {"IsAudioDisabled": False}
    assert (gone.outcome, gone.error_code, gone.found) == (Outcome.UNKNOWN, 100004, None)
    # The row the worker had finished is reported as recorded, not read again.
    assert (done.outcome, done.read_back) == (Outcome.OK, False)
    assert done.request_id == "Id-call-O-Seq-1"
    assert read_ids(emulator, "room-done") == []
    assert report.retry_rooms == ("room-not-applied",)
    assert [report.count(o) for o in (Outcome.IN_PLACE, Outcome.NOT_APPLIED)] == [1, 1]

    # The audit trail says the same, each verdict with the RequestId of its read.
    assert [r.id for r in rows] == ids
    assert [r.outcome for r in rows] == [
        Outcome.IN_PLACE,
        Outcome.NOT_APPLIED,
        Outcome.UNKNOWN,
        Outcome.OK,
    ]
    for row, room in zip(rows[:3], ROOMS.split()[:3], strict=True):
        assert [row.tencent_request_id] == read_ids(emulator, room)
        assert row.detail == VERDICT_DETAILS[row.outcome]
        assert row.finished_at is not None
    assert applied.request_id == rows[0].tencent_request_id
    assert rows[2].error_code == 100004
    # Done (every row has its outcome), still held by the survivor until it is reported.
    record = await survivor.get_request("req-1")
    assert record is not None
    assert (record.state, record.owner) == (RequestState.DONE, "survivor")


async def test_a_partly_applied_change_is_not_in_place(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    [row_id], survivor, taken = await strand(
        cluster, [entry("room-half", LOCKDOWN, "req-2")], key="req-2"
    )
    report = await take_over(survivor, client, taken)
    [verdict] = report.verdicts
    assert verdict.outcome is Outcome.NOT_APPLIED
    assert verdict.found == {
        "IsAudioDisabled": True,
        "IsVideoDisabled": False,
        "IsMessageDisabled": False,
        "IsScreenSharingDisabled": False,
    }
    row = await survivor.get(row_id)
    assert row is not None
    assert row.outcome is Outcome.NOT_APPLIED


async def test_a_failed_read_is_unknown_with_what_went_wrong(
    cluster: Replicas, emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    emulator.script("get_room_info", [100001])
    _, survivor, taken = await strand(cluster, [entry("room-applied", MUTE, "req-3")], key="req-3")
    report = await take_over(survivor, client, taken)
    [verdict] = report.verdicts
    assert (verdict.outcome, verdict.error_code) == (Outcome.UNKNOWN, 100001)
    assert verdict.request_id  # the failed read's RequestId is still kept
    assert report.retry_rooms == ()


async def test_a_request_stopped_while_received_sent_nothing_and_nothing_is_read(
    cluster: Replicas, emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    # Stopped while reading rooms (its rows were written from its plan by the loop).
    plan = plan_for("mute-all room-applied room-not-applied")
    ids, survivor, taken = await strand(
        cluster, [], key=plan.request_key, plan=plan_to_json(plan), verb="mute-all"
    )
    assert taken.record.state is RequestState.RECEIVED
    ids = await survivor.begin_request(
        taken.lease,
        [entry(room, MUTE, plan.request_key) for room in ("room-applied", "room-not-applied")],
    )
    rows = tuple(await survivor.rows_for_request(plan.request_key))
    report = await take_over(survivor, client, TakenRequest(taken.record, taken.lease, rows, None))
    assert report.nothing_sent is True
    assert [v.outcome for v in report.verdicts] == [Outcome.NOT_ATTEMPTED] * 2
    assert report.retry_rooms == ("room-applied", "room-not-applied")
    assert emulator.requests == []  # nothing to read: nothing was sent
    assert report.plan is not None
    assert (report.plan.request_key, report.plan.calls) == (plan.request_key, plan.calls)
    stored = await survivor.rows_for_request(plan.request_key)
    assert [(r.id, r.outcome) for r in stored] == [(i, Outcome.NOT_ATTEMPTED) for i in ids]
    assert {r.detail for r in stored} == {VERDICT_DETAILS[Outcome.NOT_ATTEMPTED]}


async def test_the_late_answer_of_the_replica_that_lost_the_request_is_refused(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    # The "stopped" replica was only paused: its call answers while the survivor reads the room.
    worker = await cluster.open("paused")
    claimed = await worker.claim_request(new_request("req-4", reply=REPLY))
    assert claimed is not None
    lease: Lease = claimed
    [row_id] = await worker.begin_request(lease, [entry("room-not-applied", MUTE, "req-4")])
    await cluster.advance(LEASE_S + 1)
    survivor = await cluster.open("survivor")
    [taken] = await survivor.take_over()
    refused: list[Exception] = []

    class LateAnswer:
        async def get_room_info(self, room_id: str) -> RoomSnapshot:
            snapshot = await client.get_room_info(room_id)
            answer = Completion(outcome=Outcome.OK, tencent_request_id="Id-late")
            try:
                await worker.complete_request(lease, [(row_id, answer)])
            except LeaseLost as exc:
                refused.append(exc)
            return snapshot

        get_room_members = client.get_room_members
        get_banned_members = client.get_banned_members
        get_seat_list = client.get_seat_list

    report = await take_over(survivor, LateAnswer(), taken)
    assert len(refused) == 1
    [verdict] = report.verdicts
    assert (verdict.outcome, verdict.read_back) == (Outcome.NOT_APPLIED, True)
    assert report.audit_problem is None
    row = await survivor.get(row_id)
    assert row is not None
    assert row.outcome is Outcome.NOT_APPLIED
    assert row.tencent_request_id == verdict.request_id != "Id-late"


async def test_a_survivor_that_lost_the_request_itself_records_nothing(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    [row_id], first, taken = await strand(
        cluster, [entry("room-applied", MUTE, "req-5")], key="req-5"
    )
    await cluster.advance(LEASE_S + 1)  # the first survivor was paused in turn
    second = await cluster.open("second")
    [again] = await second.take_over()
    with pytest.raises(LeaseLost):
        await take_over(first, client, taken)
    row = await second.get(row_id)
    assert row is not None
    assert row.outcome is Outcome.PENDING  # the second survivor's to read back
    report = await take_over(second, client, again)
    assert [v.outcome for v in report.verdicts] == [Outcome.IN_PLACE]


class NoCompletions(AuditStore):
    """A store whose request completions fail (the database refuses the write)."""

    async def complete_request(self, *args: Any, **kwargs: Any) -> None:
        raise AuditError("the audit store could not complete a request: disk I/O error")


async def test_verdicts_the_audit_cannot_take_are_still_reported(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    worker = await cluster.open("worker")
    lease = await worker.claim_request(new_request("req-6", reply=REPLY))
    assert lease is not None
    [row_id] = await worker.begin_request(lease, [entry("room-applied", MUTE, "req-6")])
    await cluster.advance(LEASE_S + 1)
    survivor = await cluster.open_as(NoCompletions, "survivor")
    [taken] = await survivor.take_over()
    report = await take_over(survivor, client, taken)
    assert report.audit_problem is not None
    assert "disk I/O error" in report.audit_problem
    assert [v.outcome for v in report.verdicts] == [Outcome.IN_PLACE]
    row = await survivor.get(row_id)
    assert row is not None
    assert row.outcome is Outcome.PENDING


async def test_a_record_without_a_readable_plan_is_reported_from_its_rows(
    cluster: Replicas, client: RoomEngineClient
) -> None:
    # A record from an older version, or one this roombot cannot read: no plan, the rows say it.
    _, survivor, taken = await strand(
        cluster, [entry("room-applied", MUTE, "req-7")], key="req-7", plan={"v": 99}, verb=None
    )
    report = await take_over(survivor, client, taken)
    assert report.plan is None
    assert report.verb == "mute-all"  # from its first row
    assert [v.outcome for v in report.verdicts] == [Outcome.IN_PLACE]
