"""`Runner.run(plan, held=...)` in-process: read before write, audit before and after each call
(in the request's begin and complete transactions, under its lease), no-ops, undo conflicts,
failures with their hints and RequestIds, progress, pausing and concurrency.

Everything real down to the emulator on 127.0.0.1; the `Wire` hook observes or faults single
calls where the emulator cannot (the audit trail at the moment of a call, a timeout, a block).
The fencing of a run (a lease lost mid-way) is in `test_runner_leases.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

from bot.audit import Outcome, RequestState
from bot.models import RoomPatch
from bot.outcomes import FailureKind, Plan, Progress, RunKind, RunResult
from bot.requests.recorder import AuditRecorder
from bot.requests.runner import AUDIT_RETRY_S, MAX_CONCURRENT_CALLS, READ_BEFORE_MAX_ROOMS, Runner
from bot.tencent.errors import hint_for
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import ALICE, BrokenStore, Core, actor, plan_for, room_of


async def carry_out(
    core: Core, plan: Plan, *, allow_unaudited: bool = False, **options: Any
) -> RunResult:
    """`plan` carried out by the core's runner as the request life has it carried out: on
    record, under its lease."""
    runner = core.runner(allow_unaudited=allow_unaudited)
    return await runner.run(plan, held=await core.leased(plan), **options)


def _undo_plan(rooms: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> Plan:
    """An undo plan: room → (values to restore, values roombot set and expects to find)."""
    base = plan_for("unmute-all " + " ".join(rooms), kind=RunKind.UNDO)
    return Plan(
        command=base.command,
        actor=base.actor,
        calls=tuple(RoomPatch.of(room, restore) for room, (restore, _) in rooms.items()),
        raw_text="undo k",
        kind=RunKind.UNDO,
        undo_of={(room, None): 1 for room in rooms},
        expected={room: want for room, (_, want) in rooms.items()},
    )


# -- read before write ----------------------------------------------------------------------------


async def test_small_requests_read_each_room_first_and_know_what_they_replace(core: Core) -> None:
    core.emulator.rooms["room-2"]["IsAudioDisabled"] = True
    run = await carry_out(core, plan_for("mute-all room-test room-2"))

    assert run.read_before is True
    assert sorted(room_of(c.body) for c in core.calls("get_room_info")) == ["room-2", "room-test"]
    first, second = run.results
    assert (first.room_id, second.room_id) == ("room-test", "room-2")  # the order named
    assert first.previous == {"IsAudioDisabled": False}
    assert first.undoable
    assert not first.noop
    assert second.previous == {"IsAudioDisabled": True}
    assert run.undoable


async def test_a_request_of_exactly_the_limit_still_reads_first(make_core: CoreFactory) -> None:
    rooms = [f"r-{i:02d}" for i in range(READ_BEFORE_MAX_ROOMS)]
    core = await make_core(rooms=rooms)
    run = await carry_out(core, plan_for("disable-chat " + " ".join(rooms)))
    assert run.read_before is True
    assert len(core.calls("get_room_info")) == READ_BEFORE_MAX_ROOMS
    assert all(r.previous == {"IsMessageDisabled": False} for r in run.results)


async def test_bigger_requests_skip_the_read_and_offer_no_undo(make_core: CoreFactory) -> None:
    rooms = [f"r-{i:02d}" for i in range(READ_BEFORE_MAX_ROOMS + 1)]
    core = await make_core(rooms=rooms)
    run = await carry_out(core, plan_for("disable-chat " + " ".join(rooms)))

    assert run.read_before is False
    assert core.calls("get_room_info") == []
    assert len(core.calls()) == READ_BEFORE_MAX_ROOMS + 1
    assert all(r.ok and r.previous is None and not r.undoable for r in run.results)
    assert not run.undoable
    assert all(row.previous is None for row in await core.rows())


async def test_an_undo_reads_first_however_many_rooms(make_core: CoreFactory) -> None:
    rooms = [f"r-{i:02d}" for i in range(READ_BEFORE_MAX_ROOMS + 5)]
    core = await make_core(rooms=rooms)
    for room in rooms:
        core.emulator.rooms[room]["IsAudioDisabled"] = True
    plan = _undo_plan({r: ({"IsAudioDisabled": False}, {"IsAudioDisabled": True}) for r in rooms})
    run = await carry_out(core, plan)
    assert run.read_before is True
    assert len(core.calls("get_room_info")) == len(rooms)
    assert all(r.ok for r in run.results)
    assert not run.undoable  # an undo is never itself undone by button


# -- the audit trail around each call -------------------------------------------------------------


async def test_pending_rows_are_written_before_any_call_and_completed_after(core: Core) -> None:
    seen: list[tuple[str, str, dict[str, Outcome], RequestState | None]] = []
    who = actor()
    plan = plan_for("disable-video room-test room-2 room-3 --reason drill", who)

    async def observe(command: str, body: dict[str, Any]) -> None:
        rows = await core.store.query(limit=100)
        record = await core.store.get_request(plan.request_key)
        state = record.state if record else None
        seen.append((command, room_of(body), {r.room_id or "": r.outcome for r in rows}, state))
        core.clock.advance(1.0)  # so a completion is visibly later than its row

    core.wire.hook = observe
    run = await carry_out(core, plan)

    reads = [s for s in seen if s[0] == "get_room_info"]
    updates = [s for s in seen if s[0] == "update_room_info"]
    assert len(reads) == 3
    for _, _, then, state in reads:  # reads come first: the rows hold their values
        assert then == {}
        assert state is RequestState.RECEIVED  # on record already
    assert len(updates) == 3
    for _, room, then, state in updates:
        assert set(then) == {"room-test", "room-2", "room-3"}  # every room's row, before any call
        assert then[room] is Outcome.PENDING  # this room's row is not completed yet
        assert state is RequestState.RUNNING
    record = await core.store.get_request(plan.request_key)
    assert record is not None
    assert record.state is RequestState.DONE  # outcomes recorded; reporting is the life's

    rows = await core.rows()
    assert [r.id for r in rows] == [r.row_id for r in run.results]
    for row, result in zip(rows, run.results, strict=True):
        assert row.outcome is Outcome.OK
        assert row.request_key == run.request_key
        assert row.room_id == result.room_id
        assert row.user_id == who.user_id
        assert row.source == "slash"
        assert row.channel_id == who.channel_id
        assert row.team_id == who.team_id
        assert row.verb == "disable-video"
        assert row.reason == "drill"
        assert row.raw_text == plan.raw_text
        assert row.patch == {"IsVideoDisabled": True}
        assert row.previous == {"IsVideoDisabled": False}
        [call] = core.calls_for(row.room_id or "")
        assert row.tencent_request_id == call.request_id == result.request_id
        assert row.latency_ms is not None
        assert row.finished_at is not None
        assert row.finished_at > row.created_at


async def test_a_room_that_already_had_the_values_is_a_noop(core: Core) -> None:
    core.emulator.rooms["room-test"]["IsAudioDisabled"] = True
    run = await carry_out(core, plan_for("mute-all room-test room-2"))

    noop, changed = run.results
    assert noop.ok
    assert noop.noop
    assert not noop.undoable
    assert noop.previous == noop.changes == {"IsAudioDisabled": True}
    assert len(core.calls_for("room-test")) == 1  # the call is still made, and it succeeded
    assert changed.ok
    assert not changed.noop
    outcomes = {r.room_id: r.outcome for r in await core.rows()}
    assert outcomes == {"room-test": Outcome.NOOP, "room-2": Outcome.OK}


# -- undo conflicts -------------------------------------------------------------------------------


async def test_undo_leaves_a_room_changed_since_alone(core: Core) -> None:
    core.emulator.rooms["room-2"]["IsAudioDisabled"] = True  # as roombot left it
    # room-test: someone unmuted it by hand after roombot muted it
    plan = _undo_plan(
        {
            "room-test": ({"IsAudioDisabled": False}, {"IsAudioDisabled": True}),
            "room-2": ({"IsAudioDisabled": False}, {"IsAudioDisabled": True}),
        }
    )
    run = await carry_out(core, plan)

    conflict, undone = run.results
    assert conflict.failure is not None
    assert conflict.failure.kind is FailureKind.CONFLICT
    assert "changed since" in conflict.failure.message
    assert "IsAudioDisabled is now False (roombot set True)" in conflict.failure.message
    assert "not undone" in conflict.failure.hint
    [read] = core.calls_for("room-test", "get_room_info")
    assert conflict.failure.request_id == read.request_id  # the read that showed the change
    assert core.calls_for("room-test") == []  # no update for the conflicting room
    assert undone.ok
    assert core.emulator.rooms["room-2"]["IsAudioDisabled"] is False
    rows = {r.room_id: r for r in await core.rows()}
    assert rows["room-test"].outcome is Outcome.FAILED
    assert rows["room-test"].detail == "conflict"
    assert rows["room-test"].undo_of == 1
    assert rows["room-2"].outcome is Outcome.OK


async def test_undo_of_a_room_that_cannot_be_read_sends_nothing(core: Core) -> None:
    plan = _undo_plan({"gone-room": ({"IsAudioDisabled": False}, {"IsAudioDisabled": True})})
    run = await carry_out(core, plan)
    [result] = run.results
    assert result.failure is not None
    assert result.failure.code == 100004
    assert core.calls() == []


# -- failures -------------------------------------------------------------------------------------


async def test_an_unknown_room_fails_with_its_code_hint_and_request_id(core: Core) -> None:
    run = await carry_out(core, plan_for("mute-all room-test ghost-room"))

    ok, ghost = run.results
    assert ok.ok
    assert ghost.failure is not None
    assert ghost.failure.kind is FailureKind.API
    assert ghost.failure.code == 100004
    assert ghost.failure.hint == hint_for(100004)
    assert "check the ID" in ghost.failure.hint
    [call] = core.calls_for("ghost-room")
    assert call.error_code == 100004
    assert ghost.failure.request_id == ghost.request_id == call.request_id
    assert run.failed == [ghost]
    assert run.succeeded == [ok]
    row = next(r for r in await core.rows() if r.room_id == "ghost-room")
    assert row.outcome is Outcome.FAILED
    assert row.error_code == 100004
    assert row.tencent_request_id == call.request_id
    assert row.error_info == ghost.failure.message


async def test_an_internal_error_is_retried_and_succeeds(core: Core) -> None:
    core.emulator.script("update_room_info", [100001])
    run = await carry_out(core, plan_for("mute-all room-test"))

    [result] = run.results
    assert result.ok
    assert result.attempts == 2
    first, second = core.calls_for("room-test")
    assert (first.error_code, second.error_code) == (100001, 0)
    assert result.request_id == second.request_id
    [row] = await core.rows()
    assert row.outcome is Outcome.OK
    assert row.tencent_request_id == second.request_id


async def test_an_internal_error_that_persists_fails_with_the_last_request_id(core: Core) -> None:
    core.emulator.script("update_room_info", [100001] * 4)
    run = await carry_out(core, plan_for("mute-all room-test"))

    [result] = run.results
    assert result.failure is not None
    assert result.failure.code == 100001
    assert result.failure.hint == hint_for(100001)
    calls = core.calls_for("room-test")
    assert [c.error_code for c in calls] == [100001] * 4
    assert result.failure.request_id == calls[-1].request_id


async def test_a_timeout_says_the_change_may_have_applied(core: Core) -> None:
    async def time_out(command: str, body: dict[str, Any]) -> None:
        if command == "update_room_info" and room_of(body) == "room-2":
            raise httpx.ReadTimeout("timed out")

    core.wire.hook = time_out
    run = await carry_out(core, plan_for("mute-all room-test room-2"))

    ok, late = run.results
    assert ok.ok
    assert late.failure is not None
    assert late.failure.kind is FailureKind.TIMEOUT
    assert late.failure.message == "Room Engine did not answer in time"
    assert "may or may not have applied" in late.failure.hint
    assert late.failure.request_id is None
    assert late.failure.code is None
    row = next(r for r in await core.rows() if r.room_id == "room-2")
    assert row.outcome is Outcome.FAILED
    assert row.tencent_request_id is None


async def test_a_gateway_error_is_a_transport_failure(core: Core) -> None:
    core.emulator.script("update_room_info", ["502"] * 4)
    run = await carry_out(core, plan_for("mute-all room-test"))

    [result] = run.results
    assert result.failure is not None
    assert result.failure.kind is FailureKind.TRANSPORT
    assert "HTTP 502" in result.failure.message
    assert "HTTP 502" in result.failure.hint
    assert "try again" in result.failure.hint
    assert result.failure.request_id is None
    assert [c.http_status for c in core.calls_for("room-test")] == [502] * 4
    assert core.emulator.rooms["room-test"]["IsAudioDisabled"] is False


async def test_an_unreadable_answer_is_malformed_and_not_retried(core: Core) -> None:
    async def garbage(command: str, body: dict[str, Any]) -> httpx.Response | None:
        if command == "update_room_info":
            return httpx.Response(200, text="<html>captive portal</html>")
        return None

    core.wire.hook = garbage
    run = await carry_out(core, plan_for("mute-all room-test"))
    [result] = run.results
    assert result.failure is not None
    assert result.failure.kind is FailureKind.MALFORMED
    assert core.calls_for("room-test") == []  # answered on the wire, never reached the emulator


async def test_a_bug_in_a_call_gets_a_correlation_id_that_is_logged(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    async def bug(command: str, body: dict[str, Any]) -> None:
        if command == "update_room_info":
            raise RuntimeError("boom")

    core.wire.hook = bug
    with caplog.at_level(logging.ERROR):
        run = await carry_out(core, plan_for("mute-all room-test"))
    [result] = run.results
    assert result.failure is not None
    assert result.failure.kind is FailureKind.INTERNAL
    correlation_id = result.failure.correlation_id
    assert correlation_id
    assert correlation_id in result.failure.hint
    assert any(correlation_id in r.getMessage() for r in caplog.records)
    [row] = await core.rows()
    assert row.outcome is Outcome.FAILED


# -- progress, yielding, concurrency --------------------------------------------------------------


async def test_progress_is_reported_after_each_room_but_the_last(core: Core) -> None:
    # The last room's progress would be overwritten at once by the final status: not sent.
    reports: list[Progress] = []

    async def progress(p: Progress) -> None:
        reports.append(p)

    run = await carry_out(
        core, plan_for("mute-all room-test ghost-1 room-2 ghost-2"), progress=progress
    )
    assert [p.done for p in reports] == [1, 2, 3]
    assert {p.total for p in reports} == {4}
    assert [p.failed for p in reports] == sorted(p.failed for p in reports)
    assert reports[-1].failed in (1, 2)
    assert len(run.failed) == 2


async def test_progress_is_coalesced_to_at_most_one_report_an_interval(core: Core) -> None:
    reports: list[Progress] = []

    async def progress(p: Progress) -> None:
        reports.append(p)

    run = await carry_out(
        core,
        plan_for("mute-all room-test ghost-1 room-2 ghost-2"),
        progress=progress,
        progress_interval=3600,
    )
    assert reports == []  # the whole request took less than one interval
    assert len(run.results) == 4


async def test_a_failing_progress_display_never_breaks_the_run(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(p: Progress) -> None:
        raise RuntimeError("the chat.update failed")

    with caplog.at_level(logging.ERROR, logger="bot.requests.runner"):
        run = await carry_out(core, plan_for("mute-all room-test room-2"), progress=broken)
    assert all(r.ok for r in run.results)
    assert core.emulator.rooms["room-test"]["IsAudioDisabled"] is True
    assert {r.outcome for r in await core.rows()} == {Outcome.OK}
    # Two rooms: one progress report (the last room's is the final status), which failed.
    assert sum("progress callback failed" in r.getMessage() for r in caplog.records) == 1


async def test_no_call_is_made_before_pause_returns(core: Core) -> None:
    gate = asyncio.Event()
    yields = 0

    async def yield_to() -> None:
        nonlocal yields
        yields += 1
        await gate.wait()

    plan = plan_for("mute-all room-test room-2")
    held = await core.leased(plan)
    task = asyncio.create_task(core.runner().run(plan, held=held, pause=yield_to))
    for _ in range(50):
        await asyncio.sleep(0)
    assert yields == 2  # both reads are waiting for the adapter's more urgent work
    assert core.emulator.requests == []
    gate.set()
    run = await task
    assert all(r.ok for r in run.results)
    assert yields == len(core.emulator.requests) == 4  # once before each read and each write


@pytest.mark.parametrize("phase", ["update_room_info", "get_room_info"])
async def test_no_more_than_the_limit_of_rooms_are_in_flight(
    make_core: CoreFactory, phase: str
) -> None:
    rooms = [f"bulk-{i:03d}" for i in range(MAX_CONCURRENT_CALLS + 6)]
    core = await make_core(rooms=rooms)
    release = asyncio.Event()
    full = asyncio.Event()
    in_flight = peak = 0

    async def hold(command: str, body: dict[str, Any]) -> None:
        nonlocal in_flight, peak
        if command != phase:
            return
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == MAX_CONCURRENT_CALLS:
            full.set()
        await release.wait()
        in_flight -= 1

    core.wire.hook = hold
    if phase == "get_room_info":  # only an undo reads this many rooms first
        plan = _undo_plan(
            {r: ({"IsAudioDisabled": True}, {"IsAudioDisabled": False}) for r in rooms}
        )
    else:
        plan = plan_for("disable-chat " + " ".join(rooms))
    task = asyncio.create_task(carry_out(core, plan))
    # A bound, not a pause: a write's audit rows are written on the store's thread first.
    await asyncio.wait_for(full.wait(), timeout=10)
    for _ in range(100):  # every room past the limit could now reach the wire without blocking
        await asyncio.sleep(0)
    assert in_flight == peak == MAX_CONCURRENT_CALLS
    release.set()
    run = await task
    assert peak == MAX_CONCURRENT_CALLS
    assert len(run.results) == len(rooms)
    assert all(r.ok for r in run.results)


async def test_without_an_audit_store_a_run_is_unrecorded_but_complete(core: Core) -> None:
    run = await Runner(core.client, AuditRecorder(None)).run(plan_for("mute-all room-test"))
    [result] = run.results
    assert result.ok
    assert result.row_id is None
    assert run.audit_error is None
    assert await core.rows() == []


async def test_rows_belong_to_a_request_on_record_so_a_run_without_a_lease_writes_none(
    core: Core,
) -> None:
    # The request life runs a plan without `held` only when it has no record (no store, or
    # unaudited changes allowed while the store is down).
    run = await core.runner().run(plan_for("mute-all room-test"))
    assert run.results[0].ok
    assert run.results[0].row_id is None
    assert await core.rows() == []


# -- a broken audit trail -------------------------------------------------------------------------


async def test_when_rows_cannot_be_written_nothing_is_sent(
    make_core: CoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """#12.8: the audit trail is the promise: no row, no change (after retrying the write)."""
    core = await make_core(store_class=BrokenStore)
    assert isinstance(core.store, BrokenStore)
    core.store.fail_begin = True
    with caplog.at_level(logging.ERROR):
        run = await carry_out(core, plan_for("disable-video room-test room-2"))

    assert core.calls() == []
    assert core.emulator.rooms["room-test"]["IsVideoDisabled"] is False
    assert run.refused is not None
    assert "audit trail could not be written" in run.refused
    assert [r.failure.kind if r.failure else None for r in run.results] == [
        FailureKind.NOT_ATTEMPTED,
        FailureKind.NOT_ATTEMPTED,
    ]
    assert sum(core.clock.sleeps) == pytest.approx(AUDIT_RETRY_S)  # retried, within a bound
    failed_writes = [r for r in caplog.records if "AUDIT TRAIL NOT WRITTEN" in r.getMessage()]
    assert len(failed_writes) == 4  # the first try and three retries
    assert await core.rows() == []


async def test_an_operator_may_allow_unaudited_changes_which_are_logged(
    make_core: CoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    core = await make_core(store_class=BrokenStore)
    assert isinstance(core.store, BrokenStore)
    core.store.fail_begin = True
    with caplog.at_level(logging.ERROR):
        run = await carry_out(core, allow_unaudited=True, plan=plan_for("disable-video room-test"))

    [result] = run.results
    assert result.ok
    assert result.row_id is None
    [call] = core.calls_for("room-test")
    assert result.request_id == call.request_id
    assert core.emulator.rooms["room-test"]["IsVideoDisabled"] is True
    assert run.audit_error is not None
    assert "disk I/O error" in run.audit_error
    assert await core.rows() == []
    [line] = [r.getMessage() for r in caplog.records if "UNAUDITED REQUEST" in r.getMessage()]
    logged = json.loads(line.split(" ", 2)[2])
    assert logged["user"] == ALICE
    assert logged["targets"] == [
        {
            "room": "room-test",
            "account": None,
            "ok": True,
            "error_code": None,
            "request_id": call.request_id,
        }
    ]


async def test_when_rows_cannot_be_completed_the_results_are_still_real(
    make_core: CoreFactory,
) -> None:
    core = await make_core(store_class=BrokenStore)
    assert isinstance(core.store, BrokenStore)
    core.store.fail_complete = True
    run = await carry_out(core, plan_for("disable-video room-test room-2"))

    assert all(r.ok and r.request_id for r in run.results)
    assert run.audit_error is not None
    assert "disk I/O error" in run.audit_error
    rows = await core.rows()
    assert [r.outcome for r in rows] == [Outcome.PENDING, Outcome.PENDING]  # begun, not completed
    assert [r.id for r in rows] == [r.row_id for r in run.results]
    record = await core.store.get_request(run.request_key)
    assert record is not None
    assert record.state is RequestState.RUNNING
