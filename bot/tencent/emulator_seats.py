"""Who sits on which seat of an emulated room, and what each seat forbids: the state behind the
seat APIs, and the validation of their requests.

`RoomSeats` holds one room's seats (indexes 0 to `MaxSeatCount` - 1). It knows nothing of HTTP
or callbacks; each change says whether anything changed, so the caller knows whether to post
`Mic.CallbackAfterSeatInfoChanged`. The rules are the reference's (§1.4):

* locking a seat removes whoever sits on it first, then locks it;
* the audio and video bans belong to the user on the seat: they move with the user to another
  seat and are reset when the user leaves the seat;
* banning audio or video on an empty or locked seat succeeds and has no effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bot.models import SEAT_FLAGS, reason_problem
from bot.tencent.emulator_errors import Refusal, invalid

#: ErrorCodes of the seat APIs (reference §0).
SEAT_LOCKED: Final = 100200
ALREADY_ON_SEAT: Final = 100203
SEATS_FULL: Final = 100205
NOT_ON_SEAT: Final = 100206
SEAT_TAKEN: Final = 100210
NO_SEATS: Final = 100211


@dataclass
class _Seat:
    occupant: str | None = None
    locked: bool = False
    video_forbidden: bool = False
    audio_forbidden: bool = False

    def vacate(self) -> None:
        # The bans belong to the user, not the seat: they go with them.
        self.occupant = None
        self.video_forbidden = self.audio_forbidden = False


@dataclass
class RoomSeats:
    """One room's seats, by index (0 to `count` - 1)."""

    count: int
    _seats: list[_Seat] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("a room cannot have a negative number of seats")
        self._seats = [_Seat() for _ in range(self.count)]

    def seat_of(self, account: str) -> int | None:
        """The index of the seat `account` sits on, or None."""
        return next((i for i, seat in enumerate(self._seats) if seat.occupant == account), None)

    def as_api(self) -> list[dict[str, Any]]:
        """Every seat as `get_seat_list` lists it, in index order (`Member_Account` left out for
        an empty seat, as in Tencent's sample)."""
        listed = []
        for index, seat in enumerate(self._seats):
            item: dict[str, Any] = {"Index": index}
            if seat.occupant is not None:
                item["Member_Account"] = seat.occupant
            item.update(
                IsTakenDisabled=seat.locked,
                IsVideoDisabled=seat.video_forbidden,
                IsAudioDisabled=seat.audio_forbidden,
            )
            listed.append(item)
        return listed

    def take(self, index: int | None, account: str) -> int:
        """Seat `account` on seat `index` (None: the first free one); returns the index.

        Raises `Refusal`: 100203 when it already sits on a seat, 100205 when no seat is free,
        100200 when that seat is locked, 100210 when someone sits there.
        """
        if self.seat_of(account) is not None:
            raise Refusal(
                ALREADY_ON_SEAT, f"{account!r} is already on seat {self.seat_of(account)}"
            )
        free = [i for i, seat in enumerate(self._seats) if not seat.locked and not seat.occupant]
        if not free:
            raise Refusal(SEATS_FULL, "all seats are taken or locked")
        if index is None:
            index = free[0]
        seat = self._seats[index]
        if seat.locked:
            raise Refusal(SEAT_LOCKED, f"seat {index} is locked, try another seat")
        if seat.occupant is not None:
            raise Refusal(SEAT_TAKEN, f"seat {index} is taken by {seat.occupant!r}")
        seat.occupant = account
        return index

    def leave(self, account: str) -> bool:
        """`account` leaves its seat (its bans are reset); False when it sat on none."""
        index = self.seat_of(account)
        if index is None:
            return False
        self._seats[index].vacate()
        return True

    def lock(self, index: int, flags: Mapping[str, bool]) -> bool:
        """`lock_seat` on seat `index` with `flags` (all three); True when anything changed.

        A lock removes the occupant first; the audio/video bans then apply only to an occupied,
        unlocked seat (otherwise they succeed with no effect).
        """
        seat = self._seats[index]
        before = (seat.occupant, seat.locked, seat.video_forbidden, seat.audio_forbidden)
        if flags["ForbidTaken"]:
            seat.vacate()
        seat.locked = flags["ForbidTaken"]
        if seat.occupant is not None and not seat.locked:
            seat.video_forbidden = flags["ForbidVideo"]
            seat.audio_forbidden = flags["ForbidAudio"]
        return before != (seat.occupant, seat.locked, seat.video_forbidden, seat.audio_forbidden)

    def move(self, account: str, to_index: int, *, policy: int) -> bool:
        """Move `account` (on a seat) to seat `to_index`, its bans going with it.

        `policy` says what happens when someone sits there: 0 refuse (100210), 1 take them off
        (their bans reset), 2 swap the two. A locked target is unlocked (`move_user_to_seat`);
        `switch_seat` passes policy 0 and refuses a locked seat itself. Raises `Refusal` 100206
        when `account` is on no seat. True when anything changed.
        """
        source = self.seat_of(account)
        if source is None:
            raise Refusal(NOT_ON_SEAT, f"{account!r} is not on a seat")
        if source == to_index:
            return False
        moving, target = self._seats[source], self._seats[to_index]
        other = (target.occupant, target.video_forbidden, target.audio_forbidden)
        if target.occupant is not None and policy == 0:
            raise Refusal(SEAT_TAKEN, f"seat {to_index} is taken by {target.occupant!r}")
        target.locked = False
        target.occupant = moving.occupant
        target.video_forbidden, target.audio_forbidden = (
            moving.video_forbidden,
            moving.audio_forbidden,
        )
        moving.vacate()
        if policy == 2 and other[0] is not None:
            moving.occupant, moving.video_forbidden, moving.audio_forbidden = other
        return True

    def is_locked(self, index: int) -> bool:
        """Whether seat `index` is locked."""
        return self._seats[index].locked

    def is_taken(self, index: int) -> bool:
        """Whether someone sits on seat `index`."""
        return self._seats[index].occupant is not None

    def seed(self, seats: Iterable[Mapping[str, Any]], members: Iterable[str]) -> None:
        """Set seats from `get_seat_list`-style objects (`Index`, `Member_Account`,
        `IsTakenDisabled`, `IsVideoDisabled`, `IsAudioDisabled`), for demos and tests.

        Raises `ValueError` for a seat the rules forbid: an index out of range, an occupant who
        is not among `members` or sits twice, a locked seat with an occupant, or a ban on an
        empty seat.
        """
        known = set(members)
        for item in seats:
            data = dict(item)
            index = data.pop("Index", None)
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.count:
                raise ValueError(f"a seeded seat needs an Index from 0 to {self.count - 1}: {item}")
            account = data.pop("Member_Account", None)
            locked = bool(data.pop("IsTakenDisabled", False))
            video = bool(data.pop("IsVideoDisabled", False))
            audio = bool(data.pop("IsAudioDisabled", False))
            if data:
                raise ValueError(f"unknown seat fields {sorted(data)} for seat {index}")
            if account is not None and (account not in known or self.seat_of(account) is not None):
                raise ValueError(f"seat {index}: {account!r} is not a member, or already seated")
            if account is not None and locked:
                raise ValueError(f"seat {index} cannot be locked with someone on it")
            if account is None and (video or audio):
                raise ValueError(f"seat {index} is empty: bans belong to the user on a seat")
            self._seats[index] = _Seat(account, locked, video, audio)


# -- request validation -----------------------------------------------------------------------


def index_of(body: Mapping[str, Any], name: str, count: int) -> int:
    """Seat index `name` of `body`: an integer from 0 to `count` - 1 (100002 otherwise: the
    reference documents no code for an index out of range)."""
    index = body.get(name)
    if index is None:
        raise invalid(name, "is required")
    if isinstance(index, bool) or not isinstance(index, int):
        raise invalid(name, "must be an integer")
    if not 0 <= index < count:
        raise invalid(name, f"seat {index} does not exist; the room has seats 0 to {count - 1}")
    return index


def account_of(body: Mapping[str, Any]) -> str:
    """`Member_Account`: required, a non-empty string (100002 otherwise)."""
    account = body.get("Member_Account")
    if account is None:
        raise invalid("Member_Account", "is required")
    if not isinstance(account, str) or not account:
        raise invalid("Member_Account", "must be a non-empty string")
    return account


def flags_of(body: Mapping[str, Any]) -> dict[str, bool]:
    """`lock_seat`'s three flags. Each is optional; one left out is read as false.

    What Tencent does with a left-out flag is not documented: the emulator takes the reading
    that hurts most (the ban or lock is lifted), so a client that leaves one out is caught.
    """
    flags = {}
    for name in SEAT_FLAGS:
        value = body.get(name, False)
        if not isinstance(value, bool):
            raise invalid(name, "must be a JSON boolean (true or false)")
        flags[name] = value
    return flags


def data_of(body: Mapping[str, Any]) -> str:
    """`kick_user_off_seat`'s `Data`: mandatory, a string of at most 1000 UTF-8 bytes.

    Tencent documents no length limit; the emulator holds it to the `Reason` limit. An empty
    string is accepted (the field is mandatory, its content is the app's own).
    """
    data = body.get("Data")
    if data is None:
        raise invalid("Data", "is required")
    if not isinstance(data, str):
        raise invalid("Data", "must be a string")
    problem = reason_problem(data) if data else None
    if problem:
        raise invalid("Data", problem.replace("reason", "Data"))
    return data


def policy_of(body: Mapping[str, Any]) -> int:
    """`move_user_to_seat`'s `Policy`: 0 (cancel), 1 (force), 2 (swap); 100002 otherwise."""
    policy = body.get("Policy")
    if isinstance(policy, bool) or policy not in (0, 1, 2):
        raise invalid("Policy", "must be 0 (cancel), 1 (force the move) or 2 (swap)")
    assert isinstance(policy, int)
    return policy
