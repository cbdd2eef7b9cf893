"""How seats are said, in any medium (each adapter's `Style`, as in `bot.wording`): the `seats`
listing, a room card's seats, and the parts of a dry run that differ for seat verbs."""

from __future__ import annotations

from typing import Final

from bot.commands import Command
from bot.models import Seat
from bot.outcomes import RoomView, SeatsView
from bot.seats import flag_words
from bot.wording import Style, failure_phrase, read_failure_line, request_id_phrase

#: Marks of a seat's flags in the listing.
_LOCKED: Final = "🔒"
_FORBIDDEN: Final = "🚫"

#: Most seats `show` (a room card) lists; the rest are counted (`seats ROOM` lists every one).
CARD_SEATS: Final = 16

#: What a dry run of a `lock_seat` verb says about the flags it cannot show (a core sentence).
LOCK_SEAT_DRY_RUN_NOTE: Final = (
    "Each `lock_seat` also carries the seat's other two flags, copied from the seat list read "
    "just before the call (a dry run reads nothing, so they are not shown)."
)


def seats_lines(style: Style, view: SeatsView) -> list[str]:
    """`seats ROOM`: a head line, one line per seat (index, occupant, what is forbidden), and
    the RequestId of the read."""
    room = style.literal(view.room_id)
    if view.seats is None:
        assert view.failure is not None
        return [read_failure_line(style, view.room_id, view.failure)]
    seats = view.seats.seats
    if not seats:
        return [
            f"{room} has no seats (seats are enabled when a room is created) · "
            f"{request_id_phrase(style, view.seats.request_id)}"
        ]
    taken = sum(1 for seat in seats if seat.account is not None)
    locked = sum(1 for seat in seats if seat.locked)
    counts = f"{taken} taken" + (f", {locked} locked" if locked else "")
    lines = [f"{len(seats)} seat{'s' if len(seats) != 1 else ''} in {room} ({counts}):"]
    lines += [_seat_line(style, seat) for seat in seats]
    lines.append(request_id_phrase(style, view.seats.request_id))
    return lines


def room_seats_line(style: Style, view: RoomView, *, max_listed: int = CARD_SEATS) -> str | None:
    """A room's seats as `show` (a room card) says them, in one line: who sits where and what
    is locked or forbidden (the first `max_listed` seats), or why they could not be read; None
    when the room itself could not be read, `show` did not read its seats, or it has none."""
    if view.snapshot is None:
        return None
    if view.seats_failure is not None:
        return f"Seats could not be read: {failure_phrase(style, view.seats_failure)}"
    if view.seats is None or not view.seats.seats:
        return None
    seats = view.seats.seats
    taken = sum(1 for seat in seats if seat.account is not None)
    locked = sum(1 for seat in seats if seat.locked)
    counts = f"{taken}/{len(seats)} taken" + (f", {locked} locked" if locked else "")
    listed = "; ".join(_seat_line(style, seat) for seat in seats[:max_listed])
    more = len(seats) - max_listed
    if more > 0:
        listed += f"; …and {more} more ({style.literal('seats ' + view.room_id)})"
    return f"Seats ({counts}): {listed}"


def _seat_line(style: Style, seat: Seat) -> str:
    parts = [f"{seat.index}", style.literal(seat.account) if seat.account else "empty"]
    if seat.locked:
        parts.append(f"{_LOCKED} {flag_words('ForbidTaken', True)}")
    if seat.audio_forbidden:
        parts.append(f"{_FORBIDDEN} {flag_words('ForbidAudio', True)}")
    if seat.video_forbidden:
        parts.append(f"{_FORBIDDEN} {flag_words('ForbidVideo', True)}")
    return " · ".join(parts)


def dry_run_targets(command: Command, bodies: int) -> str:
    """What a dry run's bodies are for: "2 seats", "1 account" for the seat verbs (one call
    each), else "3 rooms" as for every other verb."""
    if command.seats:
        noun = "seat"
    elif command.spec.seat_verb and command.accounts:
        noun = "account"
    else:
        noun = "room"
    return f"{bodies} {noun}{'s' if bodies != 1 else ''}"


def dry_run_note(command: Command) -> str | None:
    """The note a dry run adds for a `lock_seat` verb (a core sentence), else None."""
    return LOCK_SEAT_DRY_RUN_NOTE if command.spec.api == "lock_seat" else None
