"""`Call`: every write call a command can make."""

from __future__ import annotations

from typing import TypeAlias

from bot.models.members import MemberCall
from bot.models.rooms import DestroyCall, RoomPatch
from bot.models.seats import LockSeatCall, SeatChange, SeatKickCall

#: Every write call a command can make; each has `.api`, `.room_id` and `.body()`. A
#: `SeatChange` becomes a `LockSeatCall` once its seat list has been read (`bot.seats`).
Call: TypeAlias = RoomPatch | MemberCall | DestroyCall | SeatChange | LockSeatCall | SeatKickCall
