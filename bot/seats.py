"""Seat changes planned against the seat list read just before them, and how they are said.

`lock_seat` sets three flags at once (locked, video forbidden, audio forbidden) and the
reference does not say what Tencent does with one left out, so every call carries all three:
`resolve` takes what a command wants of a seat (`SeatChange`: the flags it sets) and the room's
seat list as `get_seat_list` reported it just before, and gives the `LockSeatCall` to send (the
flags it does not set copied from that read, which is also what the audit trail records as the
previous flags and what Undo restores), or the `Failure` that stops it without a call:

* the room has no such seat (its seat list is the room's `MaxSeatCount` seats);
* the change forbids audio or video on a seat nobody sits on (or a locked one): Tencent accepts
  it and does nothing, since such a ban belongs to the user on the seat, so roombot says so
  instead of reporting a change that did not happen;
* an undo (`SeatChange.expected`) finds the seat changed since roombot changed it: it is left
  alone rather than overwriting someone else's change.

Pure: no I/O. The runner reads each room's seat list once and calls `resolve_all`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from bot.models import SEAT_FLAGS, SEAT_INDEX, Call, LockSeatCall, SeatChange, SeatList
from bot.outcomes import Failure, FailureKind

#: Each flag's words when set (true) and lifted (false).
_FLAG_WORDS: Final = {
    "ForbidTaken": ("locked", "unlocked"),
    "ForbidVideo": ("video forbidden", "video allowed"),
    "ForbidAudio": ("audio forbidden", "audio allowed"),
}
# The bans that belong to the user on the seat (they do nothing on an empty seat).
_USER_BANS: Final = ("ForbidVideo", "ForbidAudio")


def resolve(change: SeatChange, seats: SeatList) -> LockSeatCall | Failure:
    """The `lock_seat` call that makes `change` on the seat as `seats` (read just before) shows
    it, or why it is not sent (see the module docstring)."""
    seat = seats.seat(change.index)
    if seat is None:
        return _no_such_seat(change, seats)
    current = seat.flags()
    if change.expected is not None:
        differing = {k: current[k] for k, v in change.expected.items() if current[k] != v}
        if differing:
            return Failure(
                kind=FailureKind.CONFLICT,
                message=f"seat {change.index} changed since: "
                + ", ".join(
                    f"now {flag_words(name, value)} (roombot had it "
                    f"{flag_words(name, change.expected[name])})"
                    for name, value in differing.items()
                ),
                hint="not undone, so someone else's change is not overwritten",
                request_id=seats.request_id,
            )
    bans = [name for name in _USER_BANS if change.changes.get(name)]
    if bans and (seat.account is None or seat.locked):
        what = " and ".join("video" if name == "ForbidVideo" else "audio" for name in bans)
        return Failure(
            kind=FailureKind.INVALID,
            message=f"not sent: seat {change.index} is {'locked' if seat.locked else 'empty'}, "
            f"and forbidding {what} applies to whoever sits on a seat (Tencent accepts it on "
            "an empty seat and does nothing)",
            hint=f"`/room seats {seats.room_id}` shows who sits where",
            request_id=seats.request_id,
        )
    return LockSeatCall(change=change, flags={**current, **change.changes}, previous=current)


def resolve_all(
    calls: tuple[Call, ...], lists: Mapping[str, SeatList | Failure]
) -> tuple[tuple[Call, ...], dict[int, Failure]]:
    """`calls` with each `SeatChange` resolved against its room's seat list in `lists` (read
    just before; a `Failure` when it could not be), and the failure of each that could not be
    resolved, by its index in `calls`. Other calls pass through unchanged."""
    resolved: list[Call] = list(calls)
    failures: dict[int, Failure] = {}
    for index, call in enumerate(calls):
        if not isinstance(call, SeatChange):
            continue
        seats = lists[call.room_id]
        outcome = seats if isinstance(seats, Failure) else resolve(call, seats)
        if isinstance(outcome, Failure):
            failures[index] = outcome
        else:
            resolved[index] = outcome
    return tuple(resolved), failures


def unread_seats(failure: Failure) -> Failure:
    """What a seat change reports when its room's seat list could not be read: Tencent's answer
    as it is (100004: no such room), anything else as "not sent" (nothing was changed)."""
    if failure.kind is FailureKind.API or failure.kind is FailureKind.NOT_ATTEMPTED:
        return failure
    return Failure(
        kind=FailureKind.NOT_ATTEMPTED,
        message=f"not sent: the seat list could not be read first ({failure.message})",
        hint="nothing was changed; try again",
        request_id=failure.request_id,
    )


def previous_of(call: LockSeatCall) -> dict[str, Any]:
    """What the audit row records as the seat's previous values: its index and all three flags
    as read before the call."""
    return {SEAT_INDEX: call.index, **call.previous}


def flag_words(name: str, value: bool) -> str:
    """One flag in words: `ForbidTaken` true → "locked", `ForbidAudio` false → "audio allowed"."""
    on, off = _FLAG_WORDS[name]
    return on if value else off


def describe_seat_change(changes: Mapping[str, Any]) -> str:
    """A seat target in words, e.g. {"Index": 3, "ForbidTaken": true} → "seat 3: locked"."""
    return describe_seats_change([changes.get(SEAT_INDEX)], changes)


def describe_seats_change(indexes: Sequence[object], changes: Mapping[str, Any]) -> str:
    """Seats and the flags set on them in words: "seats 3, 4: locked"."""
    words = ", ".join(
        flag_words(name, bool(value)) for name, value in changes.items() if name in SEAT_FLAGS
    )
    noun = "seat" if len(indexes) == 1 else "seats"
    return f"{noun} {', '.join(str(index) for index in indexes)}: {words}"


def _no_such_seat(change: SeatChange, seats: SeatList) -> Failure:
    if not seats.seats:
        return Failure(
            kind=FailureKind.INVALID,
            message=f"not sent: the room has no seats, so there is no seat {change.index}",
            hint="seats are enabled when a room is created (`IsSeatEnabled`)",
            request_id=seats.request_id,
        )
    return Failure(
        kind=FailureKind.INVALID,
        message=f"not sent: there is no seat {change.index}; the room's seats are "
        f"{seats.span()} ({len(seats.seats)} seats, numbered from 0)",
        hint=f"`/room seats {seats.room_id}` lists them",
        request_id=seats.request_id,
    )
