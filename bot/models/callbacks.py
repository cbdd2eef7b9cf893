"""Room Engine callbacks: their command names, the leave types, and the app's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class CallbackCommand(StrEnum):
    """The Room Engine callbacks (reference §5), by their `CallbackCommand` names."""

    CREATE_ROOM = "Room.CallbackAfterCreateRoom"
    DESTROY_ROOM = "Room.CallbackAfterDestroyRoom"
    UPDATE_ROOM_INFO = "Room.CallbackAfterUpdateRoomInfo"
    MEMBER_ENTER = "Room.CallbackAfterMemberEnter"
    MEMBER_LEAVE = "Room.CallbackAfterMemberLeave"
    SEAT_INFO_CHANGED = "Mic.CallbackAfterSeatInfoChanged"


#: Every callback command, in the order of the reference.
CALLBACK_COMMANDS: Final = tuple(command.value for command in CallbackCommand)


class LeaveType(StrEnum):
    """Why members left, as `Room.CallbackAfterMemberLeave` says (`Type`)."""

    LEAVE = "Leave"
    KICKED = "Kicked"
    EXPIRED = "Expired"  # heartbeat lost


@dataclass(frozen=True)
class CallbackConfig:
    """The app's Room Engine callback configuration: the URL and the commands it receives."""

    url: str
    commands: tuple[str, ...]
    request_id: str
