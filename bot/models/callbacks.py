"""Room Engine callbacks: their command names, the leave types, and the app's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class CallbackCommand(StrEnum):
    """The Room Engine callbacks (reference §5), by their `CallbackCommand` names, and
    `Alert.RequestOverLimit`: Tencent documents it as a Chat webhook (an API passed 80% of its
    limit; on by default once a callback URL is set) and does not say whether Room Engine sends
    it, so roombot takes it but never asks for it (`roombot callbacks install` lists only the
    Room Engine ones)."""

    CREATE_ROOM = "Room.CallbackAfterCreateRoom"
    DESTROY_ROOM = "Room.CallbackAfterDestroyRoom"
    UPDATE_ROOM_INFO = "Room.CallbackAfterUpdateRoomInfo"
    MEMBER_ENTER = "Room.CallbackAfterMemberEnter"
    MEMBER_LEAVE = "Room.CallbackAfterMemberLeave"
    SEAT_INFO_CHANGED = "Mic.CallbackAfterSeatInfoChanged"
    REQUEST_OVER_LIMIT = "Alert.RequestOverLimit"


#: Every Room Engine callback command, in the order of the reference: what an app's callback
#: configuration may list (`Alert.RequestOverLimit` is not one of them).
CALLBACK_COMMANDS: Final = tuple(
    c.value for c in CallbackCommand if c is not CallbackCommand.REQUEST_OVER_LIMIT
)


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
