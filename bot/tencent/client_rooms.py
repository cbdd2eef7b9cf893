"""Room Engine's room APIs (`v4/room_engine_http_srv/`): update, read, create, destroy."""

from __future__ import annotations

from typing import Any, Final

from pydantic import ValidationError

from bot.models import RoomInfo, RoomPatch, RoomSnapshot
from bot.tencent.errors import MalformedResponse
from bot.tencent.transport import Abort, ApiResult, RoomEngineTransport

#: The only RoomType Room Engine's create_room accepts today.
CONFERENCE: Final = "Conference"


class RoomCalls(RoomEngineTransport):
    """The room APIs; retry semantics per method (see `bot.tencent.client`)."""

    async def update_room_info(self, patch: RoomPatch, *, abort: Abort | None = None) -> ApiResult:
        """Change exactly the fields `patch` names. Idempotent, so every failure kind is retried."""
        _, result = await self._call("update_room_info", patch.body(), idempotent=True, abort=abort)
        return result

    async def get_room_info(self, room_id: str, *, abort: Abort | None = None) -> RoomSnapshot:
        """The room's current settings. Raises `ApiError` 100004 when it does not exist."""
        envelope, result = await self._call(
            "get_room_info", {"RoomId": room_id}, idempotent=True, abort=abort
        )
        data = (envelope.response or {}).get("RoomInfo")
        try:
            room = RoomInfo.model_validate(data)
        except ValidationError:
            raise MalformedResponse(
                "get_room_info: the answer has no valid Response.RoomInfo",
                request_id=result.request_id,
                attempts=result.attempts,
            ) from None
        return RoomSnapshot(room, result.request_id, result.attempts, result.elapsed_s)

    async def create_room(self, room_id: str, **fields: Any) -> ApiResult:
        """Create a Conference room; `fields` are extra `RoomInfo` fields by API name.

        Not idempotent, so only failures that certainly left the room uncreated are retried.
        """
        info = {"RoomId": room_id, "RoomType": CONFERENCE, **fields}
        _, result = await self._call("create_room", {"RoomInfo": info}, idempotent=False)
        return result

    async def destroy_room(self, room_id: str, *, abort: Abort | None = None) -> ApiResult:
        """Destroy a room. Raises `ApiError` 100004 when it does not exist.

        Not retried after a failure whose effect is unknown (a repeat would answer 100004).
        """
        _, result = await self._call(
            "destroy_room", {"RoomId": room_id}, idempotent=False, abort=abort
        )
        return result
