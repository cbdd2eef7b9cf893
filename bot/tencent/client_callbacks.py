"""Room Engine's callback configuration (`v4/room_config/`): one URL and the commands it
receives, per SDKAppID."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from bot.models import CallbackConfig
from bot.models.apis import CONFIG_PATH
from bot.tencent.errors import ApiError
from bot.tencent.transport import ApiResult, RoomEngineTransport, parse_response

#: ErrorCode of the callback-configuration APIs when there is no configuration yet.
NO_CALLBACK_CONFIG: Final = 100301


class _CallbackConfigModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: StrictStr = Field(default="", alias="Url")
    commands: list[StrictStr] = Field(default_factory=list, alias="CallbackCommandList")


class CallbackCalls(RoomEngineTransport):
    """The callback-configuration APIs; retry semantics per method (see `bot.tencent.client`)."""

    async def set_callback(self, url: str, commands: Sequence[str]) -> ApiResult:
        """Create the app's callback configuration. Raises `ApiError` 100300 when one exists.

        Retried only when certainly not applied (see `bot.tencent.client`).
        """
        body = _callback_body(url, commands)
        _, result = await self._call("set_callback", body, idempotent=False, service=CONFIG_PATH)
        return result

    async def update_callback(self, url: str, commands: Sequence[str]) -> ApiResult:
        """Replace the app's callback configuration. Raises `ApiError` 100301 when there is none.

        Idempotent (it sets values), so every transient failure is retried.
        """
        body = _callback_body(url, commands)
        _, result = await self._call("update_callback", body, idempotent=True, service=CONFIG_PATH)
        return result

    async def get_callback(self) -> CallbackConfig | None:
        """The app's callback configuration, or None when there is none.

        "None" is answered as 100301 (as update_callback does) or as a success without a URL:
        Tencent does not document which, so both are read as "no configuration".
        """
        try:
            envelope, result = await self._call(
                "get_callback", {}, idempotent=True, service=CONFIG_PATH
            )
        except ApiError as exc:
            if exc.code == NO_CALLBACK_CONFIG:
                return None
            raise
        if envelope.response is None:
            return None
        config = parse_response(_CallbackConfigModel, envelope, result, "get_callback")
        if not config.url:
            return None
        return CallbackConfig(config.url, tuple(config.commands), result.request_id)

    async def delete_callback(self) -> ApiResult:
        """Delete the app's callback configuration. Raises `ApiError` 100301 when there is none.

        Retried only when certainly not applied (see `bot.tencent.client`).
        """
        _, result = await self._call("delete_callback", {}, idempotent=False, service=CONFIG_PATH)
        return result


def _callback_body(url: str, commands: Sequence[str]) -> dict[str, Any]:
    if not url:
        raise ValueError("the callback URL must not be empty")
    if isinstance(commands, str):
        raise ValueError("commands must be a list of callback commands, not one string")
    return {"Url": url, "CallbackCommandList": list(commands)}
