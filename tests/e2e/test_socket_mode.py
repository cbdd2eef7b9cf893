"""Socket Mode end to end: roombot's real app behind bolt's AsyncSocketModeHandler, through a
local fake Socket Mode WebSocket: envelope in, ack out, Room Engine called, result threaded."""

from __future__ import annotations

from pathlib import Path

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.config import load_settings
from bot.tencent.emulator import RoomEngineEmulator
from handlers.app import build_bot
from testkit import FakeSlack, FakeSocketMode, close_handler, slash_command
from tests.e2e.stack import ALICE, BOT_TOKEN, GENERAL, MALLORY, SDKAPPID, SECRET_KEY

APP_TOKEN = "xapp-1-A0ROOMBOT1-e2e"


async def test_slash_command_over_socket_mode(tmp_path: Path) -> None:
    async with (
        FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack,
        FakeSocketMode() as socket,
    ):
        slack.attach_socket_mode(socket)
        emulator = RoomEngineEmulator(sdkappid=SDKAPPID, secret_key=SECRET_KEY, rooms=["room-test"])
        await emulator.start()
        settings = load_settings(
            env_file=None,
            slack_bot_token=BOT_TOKEN,
            slack_app_token=APP_TOKEN,
            slack_api_url=slack.api_url,
            tencent_sdkappid=SDKAPPID,
            tencent_secret_key=SECRET_KEY,
            tencent_api_url=emulator.base_url,
            roombot_allowed_users=ALICE,
            roombot_audit_db=tmp_path / "audit.sqlite3",
        )
        bot = await build_bot(settings)
        handler = AsyncSocketModeHandler(bot.app, APP_TOKEN)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        try:
            await socket.wait_connected()
            envelope_id = await socket.send_envelope(
                type="slash_commands",
                payload=slash_command(
                    "mute-all room-test", user_id=ALICE, response_url=slack.response_url()
                ),
            )
            ack = await socket.wait_for_ack(envelope_id)
            assert ack["envelope_id"] == envelope_id
            await bot.runtime.tasks.drain(10)
            [call] = [r for r in emulator.requests if r.command == "update_room_info"]
            assert call.body == {"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": True}}
            [parent] = [m for m in slack.messages(GENERAL) if m["thread_ts"] is None]
            [result] = slack.thread(GENERAL, parent["ts"])
            assert call.request_id in result["text"]

            denied_id = await socket.send_envelope(
                type="slash_commands",
                payload=slash_command(
                    "mute-all room-test", user_id=MALLORY, response_url=slack.response_url()
                ),
            )
            denied = await socket.wait_for_ack(denied_id)
            assert "not allowed" in denied["payload"]["text"]
        finally:
            await close_handler(handler)
            await bot.runtime.tasks.drain(10)
            await bot.aclose()
            await emulator.stop()
