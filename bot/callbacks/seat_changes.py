"""Seat callbacks against what roombot last saw: the seat lists it remembers per room, what
changed since (`seat_events`), and which of roombot's own requests explain a change
(`explained`). Pure, apart from the bounded memory; see `bot.callbacks` for the rules.

What roombot knows of a room's seats is what the last seat callback *this process* received
said (`SeatMemory`): an in-memory list per room, for at most `SEAT_ROOMS_KEPT` rooms (the least
recently reported forgotten first). The first seat callback of a room it does not remember is
only a baseline: nothing is recorded or alerted for it, since nothing says what changed. This
keeps plain sit/leave traffic free of any database work (it is only counted), at a price: a
replica that did not see a room's previous seat callback (just started, or the callbacks spread
over several replicas) cannot say what the next one changed. Tencent does not say whether a
`SeatList` holds every seat or only the changed ones, so a reported list is merged into the
remembered one: seats it names replace theirs, and a member it shows on a seat is no longer on
any other.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from bot.audit import AuditEntry
from bot.callbacks.requests import UNKNOWN_OPERATOR
from bot.models import (
    SEAT_INDEX,
    Seat,
    SeatEvent,
    SeatEventKind,
    is_seat_target,
)

#: Rooms whose last reported seats one process remembers.
SEAT_ROOMS_KEPT: Final = 10_000
#: The key of those rows' patch and previous values: the seats involved, as Room Engine lists
#: them (`Index`, `Member_Account`, `IsTakenDisabled`, `IsVideoDisabled`, `IsAudioDisabled`).
SEATS_KEY: Final = "Seats"

Seats = Mapping[int, Seat]

# The bans that belong to the member on a seat: their events when set and when lifted.
_USER_FLAGS: Final = (
    ("audio_forbidden", SeatEventKind.AUDIO_FORBIDDEN, SeatEventKind.AUDIO_ALLOWED),
    ("video_forbidden", SeatEventKind.VIDEO_FORBIDDEN, SeatEventKind.VIDEO_ALLOWED),
)
# The `lock_seat` flag (and its value) that makes each flag event.
_FLAG_OF: Final = {
    SeatEventKind.LOCKED: ("ForbidTaken", True),
    SeatEventKind.UNLOCKED: ("ForbidTaken", False),
    SeatEventKind.AUDIO_FORBIDDEN: ("ForbidAudio", True),
    SeatEventKind.AUDIO_ALLOWED: ("ForbidAudio", False),
    SeatEventKind.VIDEO_FORBIDDEN: ("ForbidVideo", True),
    SeatEventKind.VIDEO_ALLOWED: ("ForbidVideo", False),
}


class SeatMemory:
    """The seats the last seat callback of each room reported (see the module docstring)."""

    def __init__(self, max_rooms: int = SEAT_ROOMS_KEPT) -> None:
        self._rooms: OrderedDict[str, dict[int, Seat]] = OrderedDict()
        self._max = max_rooms

    def update(self, room_id: str, reported: Sequence[Seat]) -> tuple[Seats | None, Seats]:
        """Merge `reported` into what is remembered of `room_id`: (the seats before, or None
        when the room was not remembered, and the seats now). A list with no readable seat
        teaches nothing: a room not remembered stays so."""
        before = self._rooms.get(room_id)
        after = merge(before or {}, reported)
        if before is None and not after:
            return None, after
        self._rooms[room_id] = after
        self._rooms.move_to_end(room_id)
        while len(self._rooms) > self._max:
            self._rooms.popitem(last=False)
        return before, after

    def get(self, room_id: str) -> Seats | None:
        """The seats remembered of `room_id`, or None."""
        return self._rooms.get(room_id)

    def __len__(self) -> int:
        return len(self._rooms)


def merge(before: Seats, reported: Sequence[Seat]) -> dict[int, Seat]:
    """`before` with the seats of `reported` in their places, and every member `reported`
    shows on a seat taken off the other seats (a list of changed seats only would not say that
    they left them)."""
    after = dict(before)
    named = {seat.index for seat in reported}
    seated = {seat.account for seat in reported if seat.account is not None}
    for index, seat in before.items():
        if index not in named and seat.account in seated:
            after[index] = replace(seat, account=None)
    for seat in reported:
        after[seat.index] = seat
    return after


def seat_events(before: Seats, after: Seats, operator: str | None) -> list[SeatEvent]:
    """What happened between `before` and `after`, by seat index then kind.

    `operator` is who the callback says did it (None when it does not say). A member gone from
    a seat that is now locked was removed by the lock; one gone otherwise was removed when the
    operator is someone else, else left by themselves (traffic). Arriving on a seat or moving
    between seats is traffic unless the operator is someone else. Audio and video bans belong
    to the member on the seat, so they are compared per member (a member who left lost theirs:
    no event); locks per seat. A seat `before` did not have, and whoever sits on it, is only
    learnt.
    """
    events: list[SeatEvent] = []
    was = _positions(before)
    now = _positions(after)
    for account in sorted(set(was) | set(now)):
        old, new = was.get(account), now.get(account)
        if old == new or (new is not None and new not in before):
            continue
        someone_else = operator is not None and operator != account
        if old is None:
            assert new is not None
            kind = SeatEventKind.PUT if someone_else else SeatEventKind.TOOK
            events.append(SeatEvent(kind, new, account))
        elif new is None:
            locked_now = after[old].locked and not before[old].locked if old in after else False
            if locked_now or someone_else:
                events.append(SeatEvent(SeatEventKind.REMOVED, old, account))
            else:
                events.append(SeatEvent(SeatEventKind.LEFT, old, account))
        else:
            kind = SeatEventKind.MOVED if someone_else else SeatEventKind.SWITCHED
            events.append(SeatEvent(kind, new, account, from_index=old))
        if old is not None and new is not None:
            events += _user_flags(before[old], after[new], account)
    for account, index in now.items():
        if was.get(account) == index:
            events += _user_flags(before[index], after[index], account)
    for index, seat in after.items():
        known = before.get(index)
        if known is not None and known.locked != seat.locked:
            kind = SeatEventKind.LOCKED if seat.locked else SeatEventKind.UNLOCKED
            events.append(SeatEvent(kind, index, seat.account or known.account))
    order = list(SeatEventKind)
    return sorted(events, key=lambda e: (e.index, order.index(e.kind), e.account or ""))


def _positions(seats: Seats) -> dict[str, int]:
    return {seat.account: index for index, seat in seats.items() if seat.account is not None}


def _user_flags(before: Seat, after: Seat, account: str) -> list[SeatEvent]:
    found = []
    for attr, forbidden, allowed in _USER_FLAGS:
        if getattr(before, attr) != getattr(after, attr):
            kind = forbidden if getattr(after, attr) else allowed
            found.append(SeatEvent(kind, after.index, account))
    return found


def involved(events: Iterable[SeatEvent]) -> list[int]:
    """The seat indexes `events` concern (a move's two), in order."""
    indexes = set()
    for event in events:
        indexes.add(event.index)
        if event.from_index is not None:
            indexes.add(event.from_index)
    return sorted(indexes)


def seats_value(seats: Seats, indexes: Iterable[int]) -> list[dict[str, Any]]:
    """The seats at `indexes` as an audit row stores them (Room Engine's names)."""
    return [seat_dict(seats[i]) for i in indexes if i in seats]


def seat_dict(seat: Seat) -> dict[str, Any]:
    """One seat as `get_seat_list` lists it (an empty seat's `Member_Account` is null)."""
    return {
        "Index": seat.index,
        "Member_Account": seat.account,
        "IsTakenDisabled": seat.locked,
        "IsVideoDisabled": seat.video_forbidden,
        "IsAudioDisabled": seat.audio_forbidden,
    }


def seats_of(value: Any) -> dict[int, Seat]:
    """The seats an audit row stored (`seats_value`), by index; what is not one is left out."""
    found: dict[int, Seat] = {}
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("Index"), int):
            continue
        account = item.get("Member_Account")
        found[item["Index"]] = Seat(
            item["Index"],
            account if isinstance(account, str) else None,
            item.get("IsTakenDisabled") is True,
            item.get("IsVideoDisabled") is True,
            item.get("IsAudioDisabled") is True,
        )
    return found


def row_events(row: AuditEntry) -> list[SeatEvent]:
    """The seat events an `OUTSIDE_SEATS` row records (worked out again from its seats)."""
    before = seats_of((row.previous or {}).get(SEATS_KEY))
    after = seats_of((row.patch or {}).get(SEATS_KEY))
    operator = row.user_id if row.user_id and row.user_id != UNKNOWN_OPERATOR else None
    return [e for e in seat_events(before, after, operator) if not e.traffic]


def explained(event: SeatEvent, row: AuditEntry) -> bool:
    """True when `row`, one of roombot's own seat requests, made `event`: a `lock_seat` on
    that seat setting that flag (a lock also removes whoever sat there), or a `kick-seat` of
    that member."""
    patch = row.patch or {}
    if event.kind is SeatEventKind.REMOVED and row.verb == "kick-seat":
        return patch.get("Member_Account") == event.account
    if not is_seat_target(patch) or patch.get(SEAT_INDEX) != event.index:
        return False
    if event.kind is SeatEventKind.REMOVED:
        return patch.get("ForbidTaken") is True
    flag = _FLAG_OF.get(event.kind)
    return flag is not None and patch.get(flag[0]) is flag[1]
