"""Button clicks (confirm, cancel, undo, retry failed)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.service import RoomService
from handlers.runtime import SlackRuntime


def register(app: AsyncApp, service: RoomService, runtime: SlackRuntime) -> None:
    """Attach the button listeners to `app`."""
    del app, service, runtime
