"""`bot.seats` (planning a seat change against the seat list read before it) and the seat
wording, as pure functions."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import parse_command
from bot.console.text import PLAIN
from bot.models import SEAT_FLAGS, LockSeatCall, Seat, SeatChange, SeatList, seat_undo_flags
from bot.outcomes import Actor, Failure, FailureKind, RoomResult, RunResult, SeatsView, Source
from bot.seat_wording import dry_run_targets, seats_lines
from bot.seats import describe_seat_change, resolve
from bot.wording import final_status, request_head, room_line

_PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_flags = st.dictionaries(st.sampled_from(list(SEAT_FLAGS)), st.booleans(), min_size=1)


@st.composite
def _seats(draw: st.DrawFn) -> Seat:
    locked = draw(st.booleans())
    account = None if locked else draw(st.none() | st.sampled_from(["a", "b"]))
    banned = account is not None
    return Seat(
        index=2,
        account=account,
        locked=locked,
        video_forbidden=banned and draw(st.booleans()),
        audio_forbidden=banned and draw(st.booleans()),
    )


def _listing(*seats: Seat) -> SeatList:
    return SeatList("stage", seats, "Id-read")


@_PROPS
@given(_seats(), _flags)
def test_a_resolved_call_sets_what_was_asked_and_keeps_every_other_flag_as_read(
    seat: Seat, changes: dict[str, bool]
) -> None:
    change = SeatChange(room_id="stage", index=2, changes=changes)
    outcome = resolve(change, _listing(Seat(0), seat))
    bans = {name for name in ("ForbidVideo", "ForbidAudio") if changes.get(name)}
    if bans and (seat.account is None or seat.locked):
        assert isinstance(outcome, Failure)
        assert outcome.kind is FailureKind.INVALID
        return
    assert isinstance(outcome, LockSeatCall)
    assert outcome.previous == seat.flags()
    for name in SEAT_FLAGS:
        assert outcome.flags[name] == changes.get(name, seat.flags()[name])
    body = outcome.body()
    assert list(body) == ["RoomId", "Index", "ForbidTaken", "ForbidVideo", "ForbidAudio"]
    # What Undo sets back is exactly what changed, to its value before.
    restore = seat_undo_flags(change.target(), {"Index": 2, **outcome.previous})
    assert restore == {n: seat.flags()[n] for n, v in changes.items() if seat.flags()[n] != v}


@_PROPS
@given(_seats(), _flags, _flags)
def test_an_undo_goes_ahead_only_when_the_seat_still_has_what_roombot_set(
    seat: Seat, changes: dict[str, bool], expected: dict[str, bool]
) -> None:
    change = SeatChange(room_id="stage", index=2, changes=changes, expected=expected)
    outcome = resolve(change, _listing(seat))
    still = all(seat.flags()[name] == value for name, value in expected.items())
    if not still:
        assert isinstance(outcome, Failure)
        assert outcome.kind is FailureKind.CONFLICT
        assert outcome.request_id == "Id-read"
    else:
        assert not (isinstance(outcome, Failure) and outcome.kind is FailureKind.CONFLICT)


def test_a_seat_not_in_the_list_is_refused_naming_the_seats_there_are() -> None:
    change = SeatChange(room_id="stage", index=9, changes={"ForbidTaken": True})
    outcome = resolve(change, _listing(*(Seat(i) for i in range(8))))
    assert isinstance(outcome, Failure)
    assert outcome.message == (
        "not sent: there is no seat 9; the room's seats are 0-7 (8 seats, numbered from 0)"
    )
    assert outcome.hint == "`/room seats stage` lists them"
    none = resolve(change, _listing())
    assert isinstance(none, Failure)
    assert "the room has no seats" in none.message


# -- wording -------------------------------------------------------------------------------------


def test_the_seats_listing_names_each_seat_its_occupant_and_what_it_forbids() -> None:
    view = SeatsView(
        "town-hall",
        _listing(
            Seat(0, "host-1"),
            Seat(1, "staff-2", audio_forbidden=True, video_forbidden=True),
            Seat(2),
            Seat(3, locked=True),
        ),
    )
    assert seats_lines(PLAIN, view) == [
        "4 seats in town-hall (2 taken, 1 locked):",
        "0 · host-1",
        "1 · staff-2 · 🚫 audio forbidden · 🚫 video forbidden",
        "2 · empty",
        "3 · empty · 🔒 locked",
        "RequestId Id-read",
    ]
    empty = seats_lines(PLAIN, SeatsView("room-test", _listing()))
    assert empty == [
        "room-test has no seats (seats are enabled when a room is created) · RequestId Id-read"
    ]


def _run(text: str, *results: RoomResult) -> RunResult:
    return RunResult(
        command=parse_command(text),
        actor=Actor("U0ALICE01", Source.CONSOLE),
        request_key="k",
        results=list(results),
    )


def test_seat_results_are_said_per_seat() -> None:
    changed = RoomResult(
        "stage",
        {"Index": 3, "ForbidTaken": True},
        request_id="Id-1",
        previous={"Index": 3, "ForbidTaken": False, "ForbidVideo": False, "ForbidAudio": False},
    )
    missing = RoomResult(
        "stage",
        {"Index": 9, "ForbidTaken": True},
        failure=Failure(FailureKind.INVALID, "not sent: there is no seat 9", "look"),
    )
    assert room_line(PLAIN, changed, "lock-seat") == "✅ stage — seat 3: locked · RequestId Id-1"
    assert room_line(PLAIN, missing, "lock-seat").startswith("❌ stage · seat 9 — ")
    run = _run("lock-seat stage 3 9", changed, missing)
    assert final_status(run) == "⚠️ partly done: 1/2 seats changed, 1 failed"
    assert request_head(PLAIN, run.command, run.actor, run.kind) == (
        "U0ALICE01 ran /room lock-seat on 1 room: stage (seats 3, 9)"
    )
    kicked = RoomResult("stage", {"Member_Account": "bob"}, request_id="Id-2", account="bob")
    assert room_line(PLAIN, kicked, "kick-seat") == (
        "✅ stage — bob taken off the seat · RequestId Id-2"
    )
    assert final_status(_run("kick-seat stage bob", kicked)) == (
        "✅ done: 1/1 account taken off the seat"
    )


def test_seat_changes_in_words() -> None:
    change: dict[str, Any] = {"Index": 2, "ForbidAudio": False, "ForbidVideo": True}
    assert describe_seat_change(change) == "seat 2: audio allowed, video forbidden"
    assert dry_run_targets(parse_command("lock-seat s 1 2"), 2) == "2 seats"
    assert dry_run_targets(parse_command("kick-seat s a"), 1) == "1 account"
    assert dry_run_targets(parse_command("mute-all r1 r2"), 2) == "2 rooms"
