"""`Call`: every write call a command can make."""

from __future__ import annotations

from typing import TypeAlias

from bot.models.members import MemberCall
from bot.models.rooms import DestroyCall, RoomPatch

#: Every write call a command can make; each has `.api`, `.room_id` and `.body()`.
Call: TypeAlias = RoomPatch | MemberCall | DestroyCall
