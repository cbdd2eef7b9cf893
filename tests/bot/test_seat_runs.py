"""The seat verbs through the core (service, runner, audit) against the emulator: each
`lock_seat` carries all three flags as read just before, Undo sets back the flags read before,
locking removes the occupant, `kick-seat` of someone not on a seat says so (100206), and the
validation, policy, confirmation, dry run and progress every write verb has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from bot.audit import Outcome
from bot.models import LockSeatCall, SeatChange, SeatKickCall
from bot.outcomes import (
    Approved,
    DryRun,
    FailureKind,
    NeedsConfirmation,
    Plan,
    Progress,
    Rejected,
    RunKind,
    RunResult,
)
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import ALICE, Core, actor

#: A room with seats: the host has video forbidden, a speaker audio; seat 2 is free, 3 locked.
STAGE: Mapping[str, Any] = {
    "RoomId": "stage",
    "Owner_Account": "host",
    "IsSeatEnabled": True,
    "MaxSeatCount": 4,
    "MemberList": ["host", "speaker", "guest", "late"],
    "SeatList": [
        {"Index": 0, "Member_Account": "host", "IsVideoDisabled": True},
        {"Index": 1, "Member_Account": "speaker", "IsAudioDisabled": True},
        {"Index": 3, "IsTakenDisabled": True},
    ],
}
SEAT_MODERATORS = """
[roles.seat-watchers]
verbs = ["seats", "lock-seat"]
users = ["U0WATCH01"]
"""


@pytest.fixture
async def core(make_core: CoreFactory) -> Core:
    return await make_core(rooms=["room-test", STAGE])


def seat(core: Core, index: int) -> dict[str, Any]:
    """Seat `index` of `stage` as `get_seat_list` would list it now."""
    listed: dict[str, Any] = core.emulator.seats["stage"].as_api()[index]
    return listed


async def run(core: Core, text: str, who: str = ALICE, **options: Any) -> RunResult:
    prepared = await core.service.prepare(text, actor(who))
    assert isinstance(prepared, Approved), prepared
    return await core.service.execute(prepared, **options)


def lock_bodies(core: Core) -> list[dict[str, Any]]:
    return [r.body for r in core.calls("lock_seat")]


# -- every lock_seat carries the three flags as read --------------------------------------------


async def test_the_flags_a_verb_does_not_change_are_sent_as_read_and_kept(core: Core) -> None:
    # The emulator reads a left-out flag as false: sending only ForbidAudio would lift the
    # host's video ban.
    result = await run(core, "mute-seat stage 0")
    assert lock_bodies(core) == [
        {
            "RoomId": "stage",
            "Index": 0,
            "ForbidTaken": False,
            "ForbidVideo": True,
            "ForbidAudio": True,
        }
    ]
    assert seat(core, 0) == {
        "Index": 0,
        "Member_Account": "host",
        "IsTakenDisabled": False,
        "IsVideoDisabled": True,
        "IsAudioDisabled": True,
    }
    (done,) = result.results
    assert done.ok
    assert done.changed
    assert done.changes == {"Index": 0, "ForbidAudio": True}
    (row,) = await core.rows()
    assert row.patch == {"Index": 0, "ForbidAudio": True}
    assert row.previous == {
        "Index": 0,
        "ForbidTaken": False,
        "ForbidVideo": True,
        "ForbidAudio": False,
    }
    assert row.outcome is Outcome.OK


async def test_video_flag_with_video_option(core: Core) -> None:
    await run(core, "unmute-seat stage 0 --video")
    assert lock_bodies(core) == [
        {
            "RoomId": "stage",
            "Index": 0,
            "ForbidTaken": False,
            "ForbidVideo": False,
            "ForbidAudio": False,
        }
    ]
    assert seat(core, 0)["IsVideoDisabled"] is False


async def test_the_seat_list_is_read_once_per_room_before_the_writes(core: Core) -> None:
    result = await run(core, "lock-seat stage 0 1 2")
    assert len(core.calls("get_seat_list")) == 1
    assert [r.body["Index"] for r in core.calls("lock_seat")] == [0, 1, 2]
    assert [r.ok for r in result.results] == [True, True, True]


async def test_a_seat_already_so_is_reported_as_a_no_op(core: Core) -> None:
    result = await run(core, "lock-seat stage 3")
    (done,) = result.results
    assert done.noop
    assert not result.undoable


# -- locking removes the occupant ---------------------------------------------------------------


async def test_locking_an_occupied_seat_takes_the_occupant_off(core: Core) -> None:
    result = await run(core, 'lock-seat stage 1 --reason "heckling"')
    assert seat(core, 1) == {
        "Index": 1,
        "IsTakenDisabled": True,
        "IsVideoDisabled": False,
        "IsAudioDisabled": False,
    }
    assert "speaker" in core.emulator.members["stage"]  # off the seat, still in the room
    assert result.undoable
    (row,) = await core.rows()
    assert row.reason == "heckling"


# -- undo ---------------------------------------------------------------------------------------


async def test_undo_of_a_lock_restores_the_seat(core: Core) -> None:
    key = (await run(core, "lock-seat stage 2")).request_key
    (original,) = await core.rows()
    plan = await core.service.plan_undo(key, actor())
    assert isinstance(plan, Plan)
    assert plan.kind is RunKind.UNDO
    (change,) = plan.calls
    assert change == SeatChange(
        room_id="stage",
        index=2,
        changes={"ForbidTaken": False},
        expected={"ForbidTaken": True},
        undo_of=original.id,
    )
    undone = await core.service.run(plan)
    assert [r.ok for r in undone.results] == [True]
    assert seat(core, 2) == {
        "Index": 2,
        "IsTakenDisabled": False,
        "IsVideoDisabled": False,
        "IsAudioDisabled": False,
    }
    undo_row = (await core.rows())[-1]
    assert (undo_row.verb, undo_row.undo_of, undo_row.outcome) == ("undo", original.id, Outcome.OK)
    assert undo_row.patch == {"Index": 2, "ForbidTaken": False}


async def test_undo_sets_back_only_what_the_verb_changed_and_keeps_later_changes(
    core: Core,
) -> None:
    key = (await run(core, "unmute-seat stage 1")).request_key
    # Meanwhile someone forbids the speaker's video (another admin, outside roombot).
    core.emulator.seats["stage"].lock(
        1, {"ForbidTaken": False, "ForbidVideo": True, "ForbidAudio": False}
    )
    plan = await core.service.plan_undo(key, actor())
    assert isinstance(plan, Plan)
    await core.service.run(plan)
    assert lock_bodies(core)[-1] == {
        "RoomId": "stage",
        "Index": 1,
        "ForbidTaken": False,
        "ForbidVideo": True,
        "ForbidAudio": True,
    }
    assert seat(core, 1)["IsAudioDisabled"] is True  # back as read before the unmute
    assert seat(core, 1)["IsVideoDisabled"] is True  # the later change survives


async def test_undo_leaves_a_seat_changed_since_alone(core: Core) -> None:
    key = (await run(core, "mute-seat stage 0")).request_key
    core.emulator.leave_seat("stage", "host")  # the ban ends with the seat
    plan = await core.service.plan_undo(key, actor())
    assert isinstance(plan, Plan)
    before = len(core.calls("lock_seat"))
    undone = await core.service.run(plan)
    (result,) = undone.results
    assert result.failure is not None
    assert result.failure.kind is FailureKind.CONFLICT
    assert "seat 0 changed since" in result.failure.message
    assert "audio allowed" in result.failure.message
    assert len(core.calls("lock_seat")) == before  # nothing sent


async def test_undo_needs_permission_for_the_inverse_verb(make_core: CoreFactory) -> None:
    core = await make_core(rooms=[STAGE], policy_toml=SEAT_MODERATORS)
    key = (await run(core, "lock-seat stage 2", who="U0WATCH01")).request_key
    refused = await core.service.plan_undo(key, actor("U0WATCH01"))
    assert isinstance(refused, Rejected)
    assert refused.denied
    assert "`unlock-seat`" in refused.message
    assert isinstance(await core.service.plan_undo(key, actor(ALICE)), Plan)


async def test_kick_seat_is_not_undoable(core: Core) -> None:
    result = await run(core, "kick-seat stage speaker")
    assert not result.undoable
    refused = await core.service.plan_undo(result.request_key, actor())
    assert isinstance(refused, Rejected)


# -- kick-seat ----------------------------------------------------------------------------------


async def test_kick_seat_takes_a_speaker_off_and_sends_the_reason_as_data(core: Core) -> None:
    result = await run(core, 'kick-seat stage speaker --reason "time over"')
    assert [r.ok for r in result.results] == [True]
    assert [r.body for r in core.calls("kick_user_off_seat")] == [
        {"RoomId": "stage", "Member_Account": "speaker", "Data": "time over"}
    ]
    assert "Member_Account" not in seat(core, 1)
    (row,) = await core.rows()
    assert (row.patch, row.reason) == ({"Member_Account": "speaker"}, "time over")


async def test_kick_seat_without_a_reason_sends_who_asked(core: Core) -> None:
    await run(core, "kick-seat stage host")
    (call,) = core.calls("kick_user_off_seat")
    assert call.body["Data"] == f"by {ALICE} via roombot"


async def test_kick_seat_of_someone_not_on_a_seat_is_100206_with_a_clear_hint(core: Core) -> None:
    result = await run(core, "kick-seat stage guest speaker")
    by_account = {r.account: r for r in result.results}
    assert by_account["speaker"].ok
    failure = by_account["guest"].failure
    assert failure is not None
    assert failure.code == 100206
    assert "not on a seat" in failure.hint
    assert "`/room seats ROOM`" in failure.hint
    assert failure.request_id is not None
    rows = {r.patch["Member_Account"]: r for r in await core.rows() if r.patch}
    assert (rows["guest"].outcome, rows["guest"].error_code) == (Outcome.FAILED, 100206)


# -- validation before any call -----------------------------------------------------------------


async def test_a_seat_the_room_does_not_have_fails_without_a_call(core: Core) -> None:
    result = await run(core, "lock-seat stage 2 9")
    by_seat = {r.changes["Index"]: r for r in result.results}
    assert by_seat[2].ok
    failure = by_seat[9].failure
    assert failure is not None
    assert failure.kind is FailureKind.INVALID
    assert "there is no seat 9" in failure.message
    assert "0-3" in failure.message
    assert [r.body["Index"] for r in core.calls("lock_seat")] == [2]
    row = next(r for r in await core.rows() if r.patch and r.patch["Index"] == 9)
    assert row.outcome is Outcome.FAILED


async def test_a_ban_on_an_empty_seat_is_not_sent(core: Core) -> None:
    result = await run(core, "mute-seat stage 2")
    (outcome,) = result.results
    assert outcome.failure is not None
    assert "seat 2 is empty" in outcome.failure.message
    assert core.calls("lock_seat") == []


async def test_a_room_without_seats_fails_without_a_call(core: Core) -> None:
    result = await run(core, "unlock-seat room-test 0")
    (outcome,) = result.results
    assert outcome.failure is not None
    assert "has no seats" in outcome.failure.message
    assert core.calls("lock_seat") == []


async def test_a_seat_list_that_cannot_be_read_stops_the_writes(core: Core) -> None:
    async def down(command: str, body: dict[str, Any]) -> httpx.Response | None:
        if command == "get_seat_list":
            raise httpx.ConnectError("refused")
        return None

    core.wire.hook = down
    result = await run(core, "lock-seat stage 0")
    (outcome,) = result.results
    assert outcome.failure is not None
    assert outcome.failure.kind is FailureKind.NOT_ATTEMPTED
    assert "seat list could not be read" in outcome.failure.message
    assert core.calls("lock_seat") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lock-seat stage one", "must be a whole number"),
        ("lock-seat stage -1", "must be a whole number"),
        ("lock-seat stage", "needs at least one seat index"),
        ("mute-all stage --video", "`--video` does not apply"),
        ("kick-seat stage <@U012ABC>", "that is a Slack user"),
    ],
)
async def test_bad_input_is_refused_before_any_call(core: Core, text: str, message: str) -> None:
    prepared = await core.service.prepare(text, actor())
    assert isinstance(prepared, Rejected)
    assert message in prepared.message
    assert core.emulator.requests == []


# -- the rest every write verb has --------------------------------------------------------------


async def test_a_dry_run_shows_the_partial_body_and_says_where_the_other_flags_come_from(
    core: Core,
) -> None:
    prepared = await core.service.prepare("mute-seat stage 0 1 --video --dry-run", actor())
    assert isinstance(prepared, DryRun)
    assert prepared.bodies == (
        {"RoomId": "stage", "Index": 0, "ForbidVideo": True},
        {"RoomId": "stage", "Index": 1, "ForbidVideo": True},
    )
    assert prepared.note is not None
    assert "seat list read just before the call" in prepared.note
    kick = await core.service.prepare("kick-seat stage host --dry-run", actor())
    assert isinstance(kick, DryRun)
    assert kick.bodies == (
        {"RoomId": "stage", "Member_Account": "host", "Data": f"by {ALICE} via roombot"},
    )
    assert kick.note is None
    assert core.emulator.requests == []


async def test_more_seats_than_the_threshold_ask_first(make_core: CoreFactory) -> None:
    core = await make_core(rooms=[STAGE], confirm_above=2)
    needs = await core.service.prepare("lock-seat stage 0 1 2", actor())
    assert isinstance(needs, NeedsConfirmation)
    assert needs.reason == "it changes 3 seats (more than 2)"
    assert isinstance(await core.service.prepare("lock-seat stage 0 1", actor()), Approved)
    kicks = await core.service.prepare("kick-seat stage host speaker guest", actor())
    assert isinstance(kicks, NeedsConfirmation)
    assert "3 accounts off seats" in kicks.reason


async def test_policy_is_per_verb(make_core: CoreFactory) -> None:
    core = await make_core(rooms=[STAGE], policy_toml=SEAT_MODERATORS)
    assert isinstance(await core.service.prepare("seats stage", actor("U0WATCH01")), Approved)
    assert isinstance(await core.service.prepare("lock-seat stage 2", actor("U0WATCH01")), Approved)
    refused = await core.service.prepare("kick-seat stage host", actor("U0WATCH01"))
    assert isinstance(refused, Rejected)
    assert refused.denied


async def test_progress_is_reported_for_each_seat(core: Core) -> None:
    seen: list[Progress] = []

    async def progress(p: Progress) -> None:
        seen.append(p)

    await run(core, "lock-seat stage 0 1 2 7", progress=progress)
    # The last seat's progress is the final status, which the run's report gives.
    assert [(p.done, p.total) for p in seen] == [(1, 4), (2, 4), (3, 4)]
    assert seen[-1].failed == 1  # seat 7 does not exist


async def test_retry_sends_the_failed_seats_again_with_fresh_flags(core: Core) -> None:
    async def once(command: str, body: dict[str, Any]) -> httpx.Response | None:
        if command == "lock_seat" and body["Index"] == 1:
            core.wire.hook = None
            # 100006 (no permission): Retry is offered for it, unlike a permanent 100004.
            return httpx.Response(
                200,
                json={
                    "ActionStatus": "FAIL",
                    "ErrorCode": 100006,
                    "ErrorInfo": "x",
                    "RequestId": "r",
                },
            )
        return None

    core.wire.hook = once
    result = await run(core, "mute-seat stage 0 1")
    assert [r.ok for r in result.results] == [True, False]
    plan = await core.service.plan_retry(result.request_key, actor())
    assert isinstance(plan, Plan)
    assert plan.calls == (SeatChange(room_id="stage", index=1, changes={"ForbidAudio": True}),)
    again = await core.service.run(plan)
    assert [r.ok for r in again.results] == [True]
    assert seat(core, 1)["IsAudioDisabled"] is True


async def test_the_seats_read_lists_the_seats(core: Core) -> None:
    prepared = await core.service.prepare("seats stage", actor())
    assert isinstance(prepared, Approved)
    view = await core.service.seats(prepared)
    assert view.seats is not None
    assert [(s.index, s.account) for s in view.seats.seats] == [
        (0, "host"),
        (1, "speaker"),
        (2, None),
        (3, None),
    ]
    missing = await core.service.prepare("seats nowhere", actor())
    assert isinstance(missing, Approved)
    failed = await core.service.seats(missing)
    assert failed.failure is not None
    assert failed.failure.code == 100004


def test_a_lock_seat_call_cannot_be_built_without_all_three_flags() -> None:
    change = SeatChange(room_id="stage", index=0, changes={"ForbidTaken": True})
    with pytest.raises(ValueError, match="all three seat flags"):
        LockSeatCall(change=change, flags={"ForbidTaken": True}, previous={"ForbidTaken": False})
    with pytest.raises(ValueError, match="cannot be empty"):
        SeatKickCall(room_id="stage", account="host", data="  ")
