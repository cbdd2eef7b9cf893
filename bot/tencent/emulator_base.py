"""What every API family of the emulator shares: its rooms and their members, the callback
configuration, who made a call, and posting the callbacks a change causes.

`EmulatorCore` holds that state; each API family (`emulator_rooms`, `emulator_member_api`,
`emulator_seat_api`, `emulator_config`) is a subclass adding its commands, and `RoomEngineEmulator`
combines them with the HTTP server (`bot.tencent.emulator`). A command handler takes the request
body, the `Caller` and a list of `Events` to which it appends the callbacks it causes: the server
posts them after the API answer has gone out, as Room Engine does."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from bot.tencent.emulator_callbacks import (
    PLATFORMS,
    CallbackConfiguration,
    CallbackSender,
    SentCallback,
    seat_info_changed_body,
)
from bot.tencent.emulator_errors import Refusal
from bot.tencent.emulator_members import RoomMembers
from bot.tencent.emulator_seats import NO_SEATS, RoomSeats


@dataclass(frozen=True)
class Caller:
    """Who made an API call (or a change from outside it), for the callbacks it causes."""

    operator: str
    client_ip: str
    platform: str


#: Callbacks a command causes, each with who caused it; posted after the answer.
Events: TypeAlias = list[tuple[dict[str, Any], Caller]]
#: One command: the request body, the caller, the events to append to → `Response` or None.
Handler: TypeAlias = Callable[[dict[str, Any], Caller, Events], dict[str, Any] | None]


def platform_of(value: str) -> str:
    """`value` if it is an `OptPlatform` Room Engine sends, else `ValueError`."""
    if value not in PLATFORMS:
        raise ValueError(f"platform must be one of {sorted(PLATFORMS)}, not {value!r}")
    return value


class EmulatorCore:
    """The state the emulator's API families share (see the module docstring).

    `admin_id` and each of `other_admins` are App administrators. `callback_url` receives every
    callback while no configuration was made through `v4/room_config/`; `callback_token` adds
    `Sign` and `RequestTime` to each callback URL. With `callback_bools_as_strings`,
    UpdateRoomInfo callbacks carry their booleans as the strings "true"/"false". `seat_limit`
    stands for the app's package: the most seats (`MaxSeatCount`) a room may have.
    """

    def __init__(
        self,
        *,
        sdkappid: int,
        admin_id: str,
        other_admins: Iterable[str],
        callback_url: str | None,
        callback_token: str | None,
        callback_timeout_s: float,
        callback_bools_as_strings: bool,
        clock: Callable[[], float],
        max_recorded: int,
        seat_limit: int,
    ) -> None:
        if seat_limit < 1:
            raise ValueError("seat_limit must be at least 1")
        self.sdkappid = sdkappid
        self.admin_id = admin_id
        #: Further App administrators (see the class docstring).
        self.other_admins = tuple(dict.fromkeys(a for a in other_admins if a != admin_id))
        self.callback_url = callback_url
        #: Whether callback URLs carry `Sign` and `RequestTime` (a token was given).
        self.callback_signed = bool(callback_token)
        self.callback_bools_as_strings = callback_bools_as_strings
        self._clock = clock
        self.rooms: dict[str, dict[str, Any]] = {}
        #: Members and bans of each room, by RoomId.
        self.members: dict[str, RoomMembers] = {}
        #: Seats of each room that has them (`IsSeatEnabled`), by RoomId.
        self.seats: dict[str, RoomSeats] = {}
        self.seat_limit = seat_limit
        #: The configuration made through `v4/room_config/`, if any.
        self.callback_config: CallbackConfiguration | None = None
        self._callbacks = CallbackSender(
            sdkappid=sdkappid,
            token=callback_token,
            clock=clock,
            timeout_s=callback_timeout_s,
            max_recorded=max_recorded,
        )

    # -- callbacks ------------------------------------------------------------------------------

    @property
    def callbacks(self) -> list[SentCallback]:
        """Every callback delivered or given up on so far, oldest first."""
        return self._callbacks.sent

    @property
    def callbacks_dropped(self) -> int:
        """Callbacks dropped because too many were already waiting."""
        return self._callbacks.dropped

    async def settle_callbacks(self, timeout_s: float = 10.0) -> None:
        """Wait until every callback queued so far has been posted or given up on.

        Raises `TimeoutError` after `timeout_s`. Needs a started emulator.
        """
        await self._callbacks.settle(timeout_s)

    def callback_target(self, command: str) -> str | None:
        """Where a `command` callback would go now: the configured URL if the configuration
        lists it, `callback_url` when nothing is configured, else nowhere (None)."""
        config = self.callback_config
        if config is not None:
            return config.url if command in config.commands else None
        return self.callback_url

    def _emit(self, body: dict[str, Any], caller: Caller) -> None:
        target = self.callback_target(str(body["CallbackCommand"]))
        if target is not None:
            self._callbacks.post(target, body, client_ip=caller.client_ip, platform=caller.platform)

    def _event_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- lookups --------------------------------------------------------------------------------

    def _room(self, room_id: str) -> dict[str, Any]:
        room = self.rooms.get(room_id)
        if room is None:
            raise Refusal(100004, f"room {room_id!r} does not exist")
        return room

    def _members_of(self, room_id: str) -> RoomMembers:
        # A room a test put into `rooms` by hand gets an empty member list on first use.
        members = self.members.get(room_id)
        if members is None:
            members = RoomMembers(owner=self.rooms[room_id]["Owner_Account"])
            self.members[room_id] = members
        return members

    def _seats_of(self, room_id: str) -> RoomSeats:
        """The room's seats; `Refusal` 100211 when it has none (`IsSeatEnabled` false)."""
        room = self._room(room_id)
        seats = self.seats.get(room_id)
        if seats is None:
            if not room.get("IsSeatEnabled"):
                raise Refusal(NO_SEATS, f"room {room_id!r} does not support seats")
            # A room a test put into `rooms` by hand gets empty seats on first use.
            seats = RoomSeats(int(room.get("MaxSeatCount") or self.seat_limit))
            self.seats[room_id] = seats
        return seats

    def _seat_event(self, room_id: str, caller: Caller) -> tuple[dict[str, Any], Caller]:
        """`Mic.CallbackAfterSeatInfoChanged` for the room as it is now.

        Its `SeatList` holds every seat: the reference does not say whether Tencent sends all
        seats or only the changed ones, and the whole list lets a receiver miss nothing.
        """
        seats = self.seats[room_id].as_api()
        return seat_info_changed_body(caller.operator, room_id, seats, self._event_ms()), caller

    def _vacate(self, room_id: str, accounts: Iterable[str], caller: Caller) -> Events:
        """Members leaving the room leave their seats too: the seat callback, if any did."""
        seats = self.seats.get(room_id)
        if seats is None:
            return []
        left = [account for account in accounts if seats.leave(account)]
        return [self._seat_event(room_id, caller)] if left else []
