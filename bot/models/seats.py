"""Seats (`v4/room_engine_http_mic/`): who sits where and what each seat forbids, as
`get_seat_list` reports it, and the calls that change them.

A seat has an index (Tencent's samples count from 0), an occupant or none, and three flags that
`lock_seat` sets: `ForbidTaken` (locked: nobody may take it; locking removes the occupant),
`ForbidVideo` and `ForbidAudio` (the occupant's video or audio is forbidden: the flag belongs to
the user on the seat and is reset when they leave it). `get_seat_list` reads them back as
`IsTakenDisabled`, `IsVideoDisabled` and `IsAudioDisabled`.

The reference does not say what `lock_seat` does with a flag left out of the request, so roombot
never leaves one out: a `SeatChange` (what a command wants: some flags of one seat) becomes a
`LockSeatCall` carrying all three flags only once the seat list has been read
(`bot.seats.resolve`), the flags it does not change copied from that read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from bot.models.limits import account_id_problem, reason_problem, room_id_problem

#: `lock_seat`'s flags, in the reference's order, each with the `get_seat_list` field that reads
#: it back.
SEAT_FLAGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "ForbidTaken": "IsTakenDisabled",
        "ForbidVideo": "IsVideoDisabled",
        "ForbidAudio": "IsAudioDisabled",
    }
)
#: The key under which a seat target's audit patch and previous values carry its index.
SEAT_INDEX: Final = "Index"
#: Largest seat index roombot accepts in a command, before any seat list is read: a bound for
#: the parser only (Tencent documents no maximum; MaxSeatCount is bounded by the app's package).
SEAT_INDEX_MAX: Final = 9_999


@dataclass(frozen=True)
class Seat:
    """One seat as `get_seat_list` reports it. `account` is None when nobody sits there."""

    index: int
    account: str | None = None
    locked: bool = False
    video_forbidden: bool = False
    audio_forbidden: bool = False

    def flags(self) -> dict[str, bool]:
        """The seat's three `lock_seat` flags, by API name, in `SEAT_FLAGS` order."""
        return {
            "ForbidTaken": self.locked,
            "ForbidVideo": self.video_forbidden,
            "ForbidAudio": self.audio_forbidden,
        }


@dataclass(frozen=True)
class SeatList:
    """A room's seats as `get_seat_list` reported them (in index order), with the RequestId."""

    room_id: str
    seats: tuple[Seat, ...]
    request_id: str
    attempts: int = 1
    elapsed_s: float = 0.0

    def seat(self, index: int) -> Seat | None:
        """The seat numbered `index`, or None when the list has no such seat."""
        return next((seat for seat in self.seats if seat.index == index), None)

    def seat_of(self, account: str) -> Seat | None:
        """The seat `account` sits on, or None."""
        return next((seat for seat in self.seats if seat.account == account), None)

    def span(self) -> str:
        """The seat numbers, for messages: "0-7", "0, 2, 5", or "none"."""
        indexes = sorted(seat.index for seat in self.seats)
        if not indexes:
            return "none"
        if indexes == list(range(indexes[0], indexes[-1] + 1)) and len(indexes) > 2:
            return f"{indexes[0]}-{indexes[-1]}"
        return ", ".join(str(index) for index in indexes)


def seat_flags_problem(flags: Mapping[str, Any]) -> str | None:
    """Why `flags` is not a set of `lock_seat` flags (known names, JSON booleans), or None."""
    unknown = [name for name in flags if name not in SEAT_FLAGS]
    if unknown:
        return f"unknown seat flags {unknown}; the flags are {list(SEAT_FLAGS)}"
    if not all(isinstance(value, bool) for value in flags.values()):
        return "seat flags must be true or false"
    return None


def seat_undo_flags(patch: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, bool]:
    """The flags an undo sets back, from an audit row's `patch` (what the change set) and
    `previous` (the flags read before it): those the change really changed."""
    return {
        name: bool(previous[name])
        for name, value in patch.items()
        if name in SEAT_FLAGS and name in previous and previous[name] != value
    }


def is_seat_target(changes: Mapping[str, Any]) -> bool:
    """True when an audit row's patch (or a result's changes) is about a seat."""
    return isinstance(changes.get(SEAT_INDEX), int) and any(name in changes for name in SEAT_FLAGS)


def _seat_problems(room_id: str, index: int) -> list[str | None]:
    return [
        room_id_problem(room_id),
        None if 0 <= index <= SEAT_INDEX_MAX else f"seat index must be 0-{SEAT_INDEX_MAX}",
    ]


class SeatChange(BaseModel):
    """What a command wants of one seat: the `lock_seat` flags it sets (`changes`, one or more).

    Not yet a request: the flags it does not set come from the seat list read just before the
    call (`bot.seats.resolve`). `body()` is therefore partial, what `--dry-run` shows.
    For an undo, `expected` holds the flags roombot set, which the seat must still have (else
    someone changed it since and the undo leaves it alone), and `undo_of` the audit row undone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    room_id: str
    index: int
    changes: dict[str, bool]
    expected: dict[str, bool] | None = None
    undo_of: int | None = None

    @model_validator(mode="after")
    def _check(self) -> SeatChange:
        problems = _seat_problems(self.room_id, self.index)
        problems.append(seat_flags_problem(self.changes) or (None if self.changes else "no flag"))
        if self.expected is not None:
            problems.append(seat_flags_problem(self.expected))
        found = [problem for problem in problems if problem is not None]
        if found:
            raise ValueError("; ".join(found))
        return self

    @property
    def api(self) -> Literal["lock_seat"]:
        """The Room Engine command this change is made with."""
        return "lock_seat"

    def target(self) -> dict[str, Any]:
        """What the audit row's patch records: the index and the flags this change sets."""
        return {SEAT_INDEX: self.index, **self.changes}

    def body(self) -> dict[str, Any]:
        """The request body as far as it is known before the seat list is read: `RoomId`,
        `Index` and the flags this change sets (the others are copied from that read)."""
        return {"RoomId": self.room_id, "Index": self.index, **self.changes}


class LockSeatCall(BaseModel):
    """A `lock_seat` request with all three flags: a `SeatChange` resolved against the seat
    list read first (`previous` holds that read's flags, for the audit trail and Undo)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    change: SeatChange
    flags: dict[str, bool]
    previous: dict[str, bool]

    @model_validator(mode="after")
    def _check(self) -> LockSeatCall:
        for name, flags in (("flags", self.flags), ("previous", self.previous)):
            if set(flags) != set(SEAT_FLAGS) or seat_flags_problem(flags):
                raise ValueError(f"{name} must hold all three seat flags as booleans")
        return self

    @property
    def api(self) -> Literal["lock_seat"]:
        """The Room Engine command this call is made with."""
        return "lock_seat"

    @property
    def room_id(self) -> str:
        """The room of the seat."""
        return self.change.room_id

    @property
    def index(self) -> int:
        """The seat's index."""
        return self.change.index

    def body(self) -> dict[str, Any]:
        """The exact JSON body: `RoomId`, `Index`, then all three flags."""
        return {
            "RoomId": self.room_id,
            "Index": self.index,
            **{name: self.flags[name] for name in SEAT_FLAGS},
        }


class SeatKickCall(BaseModel):
    """A `kick_user_off_seat` request: one account taken off its seat (it stays in the room).

    `data` is the API's mandatory `Data`, the text its clients show the user: roombot sends the
    reason (1-1000 UTF-8 bytes, the limit roombot holds every reason to; Tencent documents none).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    room_id: str
    account: str
    data: str

    @model_validator(mode="after")
    def _check(self) -> SeatKickCall:
        problems = [
            room_id_problem(self.room_id),
            account_id_problem(self.account),
            reason_problem(self.data),
        ]
        found = [problem for problem in problems if problem is not None]
        if found:
            raise ValueError("; ".join(found))
        return self

    @property
    def api(self) -> Literal["kick_user_off_seat"]:
        """The Room Engine command this call is made with."""
        return "kick_user_off_seat"

    def body(self) -> dict[str, Any]:
        """The exact JSON body: `RoomId`, `Member_Account`, `Data`."""
        return {"RoomId": self.room_id, "Member_Account": self.account, "Data": self.data}
