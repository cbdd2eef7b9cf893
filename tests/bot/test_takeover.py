"""Taking over a stopped replica's request: each room read back from the (emulated) Room Engine,
a verdict per room recorded in the audit trail with the read's RequestId, a report for the
thread, Retry offered for what is not in place; on both store backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bot.takeover import VERDICT_DETAILS, TakeoverReport, report_stranded, sweep, take_over

from bot.audit import AuditStore, NewEntry, Outcome, StrandedRequest, open_store
from bot.budget import RateBudget
from bot.models import RoomSnapshot
from bot.tencent.client import RetryPolicy, RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator

APP = 1400000000
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
LEASE_S = 0.3
CONTEXT = {"channel": "C1", "thread_ts": "1700000000.000100"}
MUTE = {"IsAudioDisabled": True}
LOCKDOWN = {
    "IsAudioDisabled": True,
    "IsVideoDisabled": True,
    "IsMessageDisabled": True,
    "IsScreenSharingDisabled": True,
}


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


@pytest.fixture
async def client(emulator: RoomEngineEmulator) -> AsyncIterator[RoomEngineClient]:
    async with RoomEngineClient(
        base_url=emulator.base_url,
        sdkappid=APP,
        secret_key=KEY,
        admin_id="administrator",
        rate_budget=RateBudget(200),
        retry=RetryPolicy(max_attempts=1),
    ) as c:
        yield c


def entry(room: str, patch: dict[str, Any], key: str = "req-1") -> NewEntry:
    return NewEntry(
        request_key=key,
        source="slash",
        user_id="U0ALICE",
        verb="mute-all",
        raw_text="/room mute-all room-applied room-not-applied room-gone room-done",
        room_id=room,
        channel_id="C1",
        patch=patch,
    )


async def strand(target: str | Path) -> tuple[list[int], AuditStore]:
    """A worker takes the lease, writes its pending rows, records one outcome, and stops.
    Returns the row ids and a survivor, opened after it, once the worker's lease has expired.
    (SQLite: opening the survivor already recovers the request, see `claim`.)"""
    worker = await open_store(target, owner="worker", lease_s=LEASE_S)
    await worker.take_lease("req-1", CONTEXT)
    ids = await worker.begin(
        [
            entry("room-applied", MUTE),
            entry("room-not-applied", MUTE),
            entry("room-gone", MUTE),
            entry("room-done", MUTE),
        ]
    )
    await worker.complete(ids[3], outcome=Outcome.OK, tencent_request_id="Id-call-O-Seq-1")
    await worker.close()  # stops: no release, no more heartbeats
    survivor = await open_store(target, owner="survivor", lease_s=LEASE_S)
    await asyncio.sleep(LEASE_S + 0.1)
    return ids, survivor


async def claim(survivor: AuditStore) -> StrandedRequest:
    """The stranded request as the survivor gets it: from a PostgreSQL lease that expired, or
    (one process per SQLite file) from the recovery when it opened."""
    if survivor.recovered:
        [stranded] = survivor.recovered
        return stranded
    [stranded] = await survivor.claim_expired_leases()
    return stranded


def read_ids(emulator: RoomEngineEmulator, room: str) -> list[str | None]:
    return [
        r.request_id
        for r in emulator.requests
        if r.command == "get_room_info" and r.body.get("RoomId") == room
    ]


@pytest.mark.slow
async def test_each_room_is_read_back_judged_and_recorded(
    target: str | Path, emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    ids, survivor = await strand(target)
    async with survivor:
        report = await take_over(survivor, client, await claim(survivor))
        rows = await survivor.rows_for_request("req-1")

    assert report.request_key == "req-1"
    assert report.context == CONTEXT
    assert report.previous_owner == "worker"
    assert (report.verb, report.user_id) == ("mute-all", "U0ALICE")
    assert report.audit_problem is None
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
    for row, room in zip(rows[:3], ("room-applied", "room-not-applied", "room-gone"), strict=True):
        assert [row.tencent_request_id] == read_ids(emulator, room)
        assert row.detail == VERDICT_DETAILS[row.outcome]
        assert row.finished_at is not None
    assert applied.request_id == rows[0].tencent_request_id
    assert rows[2].error_code == 100004


async def test_a_partly_applied_change_is_not_in_place(
    target: str | Path, client: RoomEngineClient
) -> None:
    async with await open_store(target) as store:
        [row_id] = await store.begin([entry("room-half", LOCKDOWN, key="req-2")])
        stranded = StrandedRequest(
            request_key="req-2",
            previous_owner="gone",
            context={},
            rows=tuple(await store.rows_for_request("req-2")),
        )
        report = await take_over(store, client, stranded)
        row = await store.get(row_id)
    [verdict] = report.verdicts
    assert verdict.outcome is Outcome.NOT_APPLIED
    assert verdict.found == {
        "IsAudioDisabled": True,
        "IsVideoDisabled": False,
        "IsMessageDisabled": False,
        "IsScreenSharingDisabled": False,
    }
    assert row is not None
    assert row.outcome is Outcome.NOT_APPLIED


async def test_a_failed_read_is_unknown_with_what_went_wrong(
    target: str | Path, emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    emulator.script("get_room_info", [100001])
    async with await open_store(target) as store:
        await store.begin([entry("room-applied", MUTE, key="req-3")])
        rows = tuple(await store.rows_for_request("req-3"))
        report = await take_over(store, client, StrandedRequest("req-3", None, {}, rows))
    [verdict] = report.verdicts
    assert (verdict.outcome, verdict.error_code) == (Outcome.UNKNOWN, 100001)
    assert verdict.request_id  # the failed read's RequestId is still kept
    assert report.retry_rooms == ()


async def test_the_calls_own_answer_arriving_meanwhile_wins(
    target: str | Path, client: RoomEngineClient
) -> None:
    # The "stopped" replica was only slow: its call answers while the survivor reads the room.
    async with await open_store(target) as store:
        [row_id] = await store.begin([entry("room-not-applied", MUTE, key="req-4")])
        rows = tuple(await store.rows_for_request("req-4"))

        class LateAnswer:
            async def get_room_info(self, room_id: str) -> RoomSnapshot:
                snapshot = await client.get_room_info(room_id)
                await store.complete(row_id, outcome=Outcome.FAILED, error_code=100001)
                return snapshot

            get_room_members = client.get_room_members
            get_banned_members = client.get_banned_members

        report = await take_over(store, LateAnswer(), StrandedRequest("req-4", "w", {}, rows))
        row = await store.get(row_id)
    [verdict] = report.verdicts
    assert (verdict.outcome, verdict.read_back, verdict.error_code) == (
        Outcome.FAILED,
        False,
        100001,
    )
    assert report.audit_problem is None
    assert row is not None
    assert row.outcome is Outcome.FAILED


@pytest.mark.slow
async def test_sweep_delivers_then_releases_and_retries_a_failed_delivery(
    target: str | Path, client: RoomEngineClient
) -> None:
    _, survivor = await strand(target)
    delivered: list[TakeoverReport] = []
    attempts = 0

    async def flaky_deliver(report: TakeoverReport) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("Slack is down")
        delivered.append(report)

    async with survivor:
        # First round: delivery fails, so the lease is kept (and expires again).
        [first] = await sweep(survivor, client, flaky_deliver)
        assert first.retry_rooms == ("room-not-applied",)
        assert (await survivor.get_lease("req-1")) is not None
        assert await sweep(survivor, client, flaky_deliver) == []  # still alive: not again yet
        await asyncio.sleep(LEASE_S + 0.1)
        # Second round: read again (the verdicts are re-checked), delivered, released.
        [second] = await sweep(survivor, client, flaky_deliver)
        assert delivered == [second]
        assert [v.outcome for v in second.verdicts] == [v.outcome for v in first.verdicts]
        assert await survivor.get_lease("req-1") is None
        await asyncio.sleep(LEASE_S + 0.1)
        assert await sweep(survivor, client, flaky_deliver) == []


async def test_an_undeliverable_report_is_given_up_after_enough_takeovers(
    target: str | Path, client: RoomEngineClient
) -> None:
    async with await open_store(target, owner="s") as store:
        await store.take_lease("req-5", CONTEXT)
        rows = tuple(await store.rows_for_request("req-5"))

        async def never(report: TakeoverReport) -> None:
            raise RuntimeError("channel archived")

        stranded = StrandedRequest("req-5", "w", CONTEXT, rows, takeovers=5)
        await report_stranded(store, client, stranded, never, max_takeovers=5)
        assert await store.get_lease("req-5") is None


async def test_sqlite_start_up_recovery_can_be_taken_over_too(
    tmp_path: Path, client: RoomEngineClient
) -> None:
    path = tmp_path / "audit.sqlite3"
    async with await open_store(path, owner="stopped") as stopped:
        await stopped.take_lease("req-1", CONTEXT)
        await stopped.begin([entry("room-applied", MUTE), entry("room-not-applied", MUTE)])
    delivered: list[TakeoverReport] = []

    async def deliver(report: TakeoverReport) -> None:
        delivered.append(report)

    async with await open_store(path, owner="next") as store:
        [stranded] = store.recovered
        assert [r.outcome for r in stranded.rows] == [Outcome.UNKNOWN] * 2
        report = await report_stranded(store, client, stranded, deliver)
        rows = await store.rows_for_request("req-1")
        assert await store.get_lease("req-1") is None
    assert delivered == [report]
    assert report.context == CONTEXT
    assert [v.outcome for v in report.verdicts] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]
    assert [r.outcome for r in rows] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]
