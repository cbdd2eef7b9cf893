"""Room Engine callbacks against a real `roombot serve --http` process (the "Done when" list):
authentication refusals, an outside change alerted and in `history`, roombot's own change echoed
back and not alerted, a destroy alerted, a burst of 500 member callbacks answered and posting
nothing; and `roombot callbacks install | show | remove` through the real CLI process."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from bot.budget import RateBudget
from bot.callbacks import callback_sign
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from testkit.slack_payloads import form_body, sign, slash_command
from tests.e2e.serve_proc import Served, serve_process
from tests.e2e.stack import ALICE, SDKAPPID, SECRET_KEY, SIGNING_SECRET

TOKEN = "process-callback-token-0123456789"
ALERTS = "C0ALERTS02"
CONSOLE = "ops-console"
UPDATE = "Room.CallbackAfterUpdateRoomInfo"
OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}


def _emulator(**kwargs: Any) -> RoomEngineEmulator:
    return RoomEngineEmulator(
        sdkappid=SDKAPPID,
        secret_key=SECRET_KEY,
        rooms=["room-test", "room-2"],
        other_admins=[CONSOLE],
        **kwargs,
    )


async def _post(bot: Served, query: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{bot.port}/tencent/callback"
    async with bot.session.post(url, params=query, data=body) as response:
        return response.status, await response.json()


def _audit_rows(tmp_path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(tmp_path / "audit.sqlite3") as conn:
        rows = conn.execute("SELECT source, user_id, verb FROM audit_entries ORDER BY id")
        return [tuple(row) for row in rows]


def _as(admin: str, bot: Served) -> RoomEngineClient:
    return RoomEngineClient(
        base_url=bot.emulator.base_url,
        sdkappid=SDKAPPID,
        secret_key=SECRET_KEY,
        admin_id=admin,
        rate_budget=RateBudget(50),
    )


async def test_unauthenticated_callbacks_get_401_and_nothing_is_recorded(tmp_path: Path) -> None:
    body = json.dumps(
        {
            "CallbackCommand": UPDATE,
            "Operator_Account": CONSOLE,
            "RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": "true"},
            "EventTime": 1,
        }
    ).encode()
    now = str(int(time.time()))
    good = {"token": TOKEN, "SdkAppid": str(SDKAPPID), "CallbackCommand": UPDATE}
    refused = {
        "a missing token": {k: v for k, v in good.items() if k != "token"},
        "a wrong token": {**good, "token": "wrong-token-0123456789"},
        "another SdkAppid": {**good, "SdkAppid": str(SDKAPPID + 1)},
        "a stale Sign": {
            **good,
            "RequestTime": str(int(now) - 120),
            "Sign": callback_sign(TOKEN, int(now) - 120),
        },
        "a wrong Sign": {**good, "RequestTime": now, "Sign": callback_sign("other" * 4, now)},
    }
    async with serve_process(
        tmp_path, emulator=_emulator(), ROOMBOT_CALLBACK_TOKEN=TOKEN, ROOMBOT_ALERT_CHANNEL=ALERTS
    ) as bot:
        for what, query in refused.items():
            status, answer = await _post(bot, query, body)
            assert status == 401, what
            assert answer["ErrorInfo"] == "unauthorized", what
        await asyncio.sleep(0.3)
        assert _audit_rows(tmp_path) == []  # nothing recorded
        signed = {**good, "RequestTime": now, "Sign": callback_sign(TOKEN, now)}
        assert await _post(bot, signed, body) == (200, OK)
        code = await bot.stop()
        log = bot.output.log
    assert code == 0
    assert _audit_rows(tmp_path) == [("tencent", CONSOLE, "outside-update")]
    refusals = [line for line in log.splitlines() if "callback refused" in line]
    assert len(refusals) == 5
    assert TOKEN not in log
    assert "Traceback" not in log


async def test_outside_changes_are_alerted_and_roombots_own_are_not(tmp_path: Path) -> None:
    emulator = _emulator(callback_token=TOKEN)  # the emulator signs its callbacks too
    async with serve_process(
        tmp_path, emulator=emulator, ROOMBOT_CALLBACK_TOKEN=TOKEN, ROOMBOT_ALERT_CHANNEL=ALERTS
    ) as bot:
        emulator.callback_url = f"http://127.0.0.1:{bot.port}/tencent/callback?token={TOKEN}"

        # roombot's own change, echoed back: not alerted.
        status, _ = await bot.slash("mute-all room-test")
        assert status == 200
        await bot.slack.wait_for(lambda: len(bot.slack.calls_to("chat.update")) >= 1, timeout=10)
        await emulator.settle_callbacks()
        await asyncio.sleep(0.3)
        assert [c.status for c in emulator.callbacks] == [200]
        assert bot.slack.messages(ALERTS) == []

        # The console unmutes it: alerted, once, naming who and what.
        emulator.outside_update("room-test", CONSOLE, IsAudioDisabled=False)
        await bot.slack.wait_for(lambda: len(bot.slack.messages(ALERTS)) == 1, timeout=10)
        [alert] = bot.slack.messages(ALERTS)
        assert alert["text"].startswith(
            "⚠️ `room-test` was changed outside roombot by `ops-console` via Web: audio unmuted"
        )
        assert alert["blocks"][0]["accessory"]["value"] == "room-test"

        # …and `history` shows it, marked.
        body = form_body(
            slash_command(
                "history room-test", user_id=ALICE, response_url=bot.slack.response_url("h")
            )
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **sign(body, SIGNING_SECRET),
        }
        url = f"http://127.0.0.1:{bot.port}/slack/events"
        async with bot.session.post(url, data=body, headers=headers) as response:
            assert response.status == 200
        await bot.slack.wait_for(lambda: bool(bot.slack.response_posts), timeout=10)
        history = bot.slack.response_posts[-1][1]["text"]
        assert "⚠️ outside roombot · `ops-console` · `outside-update` · audio unmuted" in history

        # The console destroys room-2 through the REST API: alerted.
        async with _as(CONSOLE, bot) as console:
            await console.destroy_room("room-2")
        await bot.slack.wait_for(lambda: len(bot.slack.messages(ALERTS)) == 2, timeout=10)
        gone = bot.slack.messages(ALERTS)[1]["text"]
        assert gone.startswith("⚠️ `room-2` was destroyed outside roombot by `ops-console`")

        # A burst of 500 member callbacks: every one answered 200, nothing posted.
        posts_before = len(bot.slack.calls_to("chat.postMessage"))
        for i in range(250):
            emulator.member_enter("room-test", f"viewer-{i:03d}")
        for i in range(250):
            emulator.member_leave("room-test", f"viewer-{i:03d}")
        await emulator.settle_callbacks(30)
        members = [c for c in emulator.callbacks if "Member" in c.command]
        assert len(members) == 500
        assert {c.status for c in members} == {200}
        await asyncio.sleep(1.5)  # longer than the alert interval: anything would be out
        assert len(bot.slack.calls_to("chat.postMessage")) == posts_before
        code = await bot.stop()
        log = bot.output.log
    assert code == 0
    assert TOKEN not in log
    assert "Traceback" not in log


async def test_the_cli_round_trip_through_the_real_process(tmp_path: Path) -> None:
    async with _emulator() as emulator:
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
            },
            "TENCENT_SDKAPPID": str(SDKAPPID),
            "TENCENT_SECRET_KEY": SECRET_KEY,
            "TENCENT_API_URL": emulator.base_url,
            "ROOMBOT_CALLBACK_TOKEN": TOKEN,
        }

        async def roombot(*args: str) -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "callbacks", *args,
                env=env, cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
            text = out.decode() + err.decode()
            assert TOKEN not in text
            assert proc.returncode is not None
            return proc.returncode, text

        url = "https://roombot.example.com/tencent/callback"
        code, out = await roombot("install", url, "--members")
        assert code == 0, out
        assert out.startswith(f"installed: {url}?token=***\n")
        assert emulator.callback_config is not None
        assert emulator.callback_config.url == f"{url}?token={TOKEN}"
        assert len(emulator.callback_config.commands) == 6
        code, out = await roombot("show")
        assert code == 0
        assert out.splitlines()[0] == f"url: {url}?token=***"
        code, out = await roombot("remove")
        assert (code, out.startswith("removed the callback configuration")) == (0, True)
        assert emulator.callback_config is None
        code, out = await roombot("install", "not a url")
        assert code == 2
        assert out.startswith("roombot callbacks: the URL must start with https://")
