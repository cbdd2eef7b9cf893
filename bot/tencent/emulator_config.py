"""The emulator's callback configuration (`v4/room_config/`: `set_callback`,
`update_callback`, `get_callback`, `delete_callback`; one configuration per SDKAppID).

Where the reference is silent the emulator is strict and says so: `set_callback` when a
configuration exists answers 100300 (the code Live's set_callback documents); `get_callback` and
`delete_callback` without one answer 100301 like `update_callback`; `Url` must be http(s) and
`CallbackCommandList` must name at least one known command (the misspelled
`Room.CallbackUpdateRoomInfo` of a doc sample is refused).
"""

from __future__ import annotations

from typing import Any

from bot.tencent.emulator_base import Caller, EmulatorCore, Events
from bot.tencent.emulator_callbacks import CallbackConfiguration, callback_config_of
from bot.tencent.emulator_errors import Refusal


class CallbackConfigCommands(EmulatorCore):
    """The callback-configuration APIs (see the module docstring)."""

    def _set_callback(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        config = callback_config_of(body)
        if self.callback_config is not None:
            raise Refusal(
                100300,
                "callback configuration already exists, use update_callback to change it",
            )
        self.callback_config = config
        return None

    def _update_callback(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        config = callback_config_of(body)
        self._require_callback_config()
        self.callback_config = config
        return None

    def _get_callback(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        config = self._require_callback_config()
        return {"Url": config.url, "CallbackCommandList": list(config.commands)}

    def _delete_callback(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        self._require_callback_config()
        self.callback_config = None
        return None

    def _require_callback_config(self) -> CallbackConfiguration:
        if self.callback_config is None:
            raise Refusal(
                100301,
                "callback configuration does not exist, create it with set_callback first",
            )
        return self.callback_config
