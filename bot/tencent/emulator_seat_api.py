"""The emulator's seat APIs (`v4/room_engine_http_mic/`: `get_seat_list`, `lock_seat`,
`kick_user_off_seat`, `pick_user_on_seat`, `switch_seat`, `move_user_to_seat`), and members
taking and leaving seats as client SDKs would (`take_seat`, `leave_seat`).

Every change posts `Mic.CallbackAfterSeatInfoChanged` with the whole seat list (a call that
changes nothing posts nothing). The rules are the reference's (see `emulator_seats`); where it
is silent the emulator is strict and says so:

* seats are numbered from 0 (the samples' base) to `MaxSeatCount` - 1, and `get_seat_list`
  lists every one of them in index order, an empty seat without `Member_Account` (as in the
  sample). An index out of range is refused with 100002 (no code is documented);
* a room without seats (`IsSeatEnabled` false): `get_seat_list` answers an empty `SeatList`
  (100211 is not among its documented codes), `kick_user_off_seat` answers 100206 (nobody is on
  a seat there), and the others answer 100211;
* `lock_seat` reads a flag left out of the request as false, the reading that hurts most
  (see `emulator_seats.flags_of`);
* `kick_user_off_seat` on an account that is not on a seat, or not in the room, answers 100206
  (the 2026 revision's code; 100005 is not among its documented codes). `Data` is mandatory, a
  string of at most 1000 UTF-8 bytes (no limit documented), and may be empty;
* `pick_user_on_seat` checks in this order: 100005 (not a member), 100203 (already on a seat),
  100205 (no seat is free), 100200 (that seat is locked), 100210 (someone sits there).
  100202 (queued for a seat) is never answered: no REST API queues anyone;
* `switch_seat` (old) moves a user on a seat to an empty, unlocked seat: 100206 when the user is
  on no seat, 100200 for a locked target, 100210 for a taken one;
* `move_user_to_seat` unlocks a locked target (the Chinese text) and, for a taken one, follows
  `Policy`: 0 answers 100210, 1 takes the occupant off, 2 swaps the two;
* moving to the seat one is on succeeds and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.tencent.emulator_base import Caller, EmulatorCore, Events, platform_of
from bot.tencent.emulator_callbacks import seat_info_changed_body
from bot.tencent.emulator_errors import Refusal
from bot.tencent.emulator_rooms import room_id_of
from bot.tencent.emulator_seats import (
    NOT_ON_SEAT,
    SEAT_LOCKED,
    SEAT_TAKEN,
    account_of,
    data_of,
    flags_of,
    index_of,
    policy_of,
)


class SeatCommands(EmulatorCore):
    """The seat APIs, and members taking and leaving seats (see the module docstring)."""

    def take_seat(
        self,
        room_id: str,
        account: str,
        index: int | None = None,
        *,
        platform: str = "Web",
        client_ip: str = "127.0.0.1",
    ) -> int:
        """`account` takes seat `index` (None: the first free one) as a client SDK would, and
        the seat change is posted; returns the index taken.

        `TakeSeatMode` is not enforced: an `ApplyToTake` room's request is taken as approved.
        Raises `Refusal` as `pick_user_on_seat` answers (100004, 100211, 100002, 100005, 100203,
        100205, 100200, 100210).
        """
        caller = Caller(account, client_ip, platform_of(platform))
        seats = self._seats_of(room_id)
        if index is not None:
            index = index_of({"Index": index}, "Index", seats.count)
        if account not in self._members_of(room_id):
            raise Refusal(100005, f"{account!r} is not a member of room {room_id!r}")
        taken = seats.take(index, account)
        self._emit(*self._seat_event(room_id, caller))
        return taken

    def leave_seat(
        self, room_id: str, account: str, *, platform: str = "Web", client_ip: str = "127.0.0.1"
    ) -> None:
        """`account` leaves its seat (its audio/video bans are reset); the change is posted.

        Raises `Refusal` 100004 (no room), 100211 (no seats), 100206 (not on a seat).
        """
        caller = Caller(account, client_ip, platform_of(platform))
        if not self._seats_of(room_id).leave(account):
            raise Refusal(NOT_ON_SEAT, f"{account!r} is not on a seat")
        self._emit(*self._seat_event(room_id, caller))

    def seat_info_changed(
        self,
        room_id: str,
        seats: Sequence[Mapping[str, Any]],
        *,
        operator: str,
        platform: str = "Web",
        client_ip: str = "127.0.0.1",
    ) -> None:
        """Post `Mic.CallbackAfterSeatInfoChanged` with `seats` as given (`Index`,
        `Member_Account`, `IsTakenDisabled`, ...), changing no seat: for testing a receiver with
        any list. Raises `Refusal` 100004 for an unknown room."""
        caller = Caller(operator, client_ip, platform_of(platform))
        self._room(room_id)
        body = seat_info_changed_body(
            operator, room_id, [dict(seat) for seat in seats], self._event_ms()
        )
        self._emit(body, caller)

    # -- the API --------------------------------------------------------------------------------

    def _get_seat_list(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        room = self._room(room_id)
        if not room.get("IsSeatEnabled"):
            return {"SeatList": []}
        return {"SeatList": self._seats_of(room_id).as_api()}

    def _lock_seat(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        seats = self._seats_of(room_id)
        index = index_of(body, "Index", seats.count)
        if seats.lock(index, flags_of(body)):
            events.append(self._seat_event(room_id, caller))
        return None

    def _kick_user_off_seat(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        account = account_of(body)
        data_of(body)
        room = self._room(room_id)
        seats = self._seats_of(room_id) if room.get("IsSeatEnabled") else None
        if seats is None or not seats.leave(account):
            raise Refusal(NOT_ON_SEAT, f"{account!r} is not on a seat in room {room_id!r}")
        events.append(self._seat_event(room_id, caller))
        return None

    def _pick_user_on_seat(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        seats = self._seats_of(room_id)
        index = index_of(body, "Index", seats.count)
        account = account_of(body)
        if account not in self._members_of(room_id):
            raise Refusal(100005, f"{account!r} is not a member of room {room_id!r}")
        seats.take(index, account)
        events.append(self._seat_event(room_id, caller))
        return None

    def _switch_seat(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        seats = self._seats_of(room_id)
        index = index_of(body, "ToIndex", seats.count)
        account = account_of(body)
        source = seats.seat_of(account)
        if source is None:
            raise Refusal(NOT_ON_SEAT, f"{account!r} is not on a seat")
        if source != index and seats.is_locked(index):
            raise Refusal(SEAT_LOCKED, f"seat {index} is locked, try another seat")
        if source != index and seats.is_taken(index):
            raise Refusal(SEAT_TAKEN, f"seat {index} is taken")
        if seats.move(account, index, policy=0):
            events.append(self._seat_event(room_id, caller))
        return None

    def _move_user_to_seat(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        seats = self._seats_of(room_id)
        index = index_of(body, "SeatIndex", seats.count)
        account = account_of(body)
        policy = policy_of(body)
        if seats.move(account, index, policy=policy):
            events.append(self._seat_event(room_id, caller))
        return None
