"""`roombot serve --http` as a real process: health check, a signed command, clean SIGTERM,
SIGHUP policy reload, and a missing setting refused at start-up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.tencent.emulator import RoomEngineEmulator
from testkit.slack_api import FakeSlack
from testkit.slack_payloads import form_body, sign, slash_command
from tests.e2e.stack import ALICE, BOT_TOKEN, SDKAPPID, SECRET_KEY, SIGNING_SECRET


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
    }
    return {**base, **extra}


@dataclass
class Served:
    """A `roombot serve --http` process and the fakes it talks to."""

    proc: asyncio.subprocess.Process
    port: int
    slack: FakeSlack
    emulator: RoomEngineEmulator
    session: aiohttp.ClientSession

    async def slash(self, text: str, user: str = ALICE) -> tuple[int, dict[str, Any]]:
        """Send a signed `/room text`; the HTTP status and the ack's JSON body."""
        body = form_body(slash_command(text, user_id=user, response_url=self.slack.response_url()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **sign(body, SIGNING_SECRET),
        }
        url = f"http://127.0.0.1:{self.port}/slack/events"
        async with self.session.post(url, data=body, headers=headers) as response:
            text = await response.text()
            return response.status, (json.loads(text) if text.strip() else {})

    async def stop(self) -> tuple[int, str]:
        """SIGTERM, then the exit status and everything logged."""
        self.proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(self.proc.communicate(), timeout=30)
        assert self.proc.returncode is not None
        return self.proc.returncode, err.decode()


@asynccontextmanager
async def served(
    tmp_path: Path, *, emulator: RoomEngineEmulator | None = None, **env: str
) -> AsyncIterator[Served]:
    """Start the fakes (`emulator`, or one with `room-test`) and `python -m bot serve --http`;
    wait until /healthz answers."""
    emulator = emulator or RoomEngineEmulator(
        sdkappid=SDKAPPID, secret_key=SECRET_KEY, rooms=["room-test"]
    )
    await emulator.start()
    slack = FakeSlack(bot_token=BOT_TOKEN)
    await slack.start()
    port = _free_port()
    settings = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "TENCENT_SDKAPPID": str(SDKAPPID),
        "TENCENT_SECRET_KEY": SECRET_KEY,
        "TENCENT_API_URL": emulator.base_url,
        "ROOMBOT_AUDIT_DB": str(tmp_path / "audit.sqlite3"),
        **env,
    }
    command = ["serve", "--http", "--host", "127.0.0.1", "--port", str(port)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *command,
        env=_env(**settings), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    session = aiohttp.ClientSession()
    try:
        await _wait_healthy(session, f"http://127.0.0.1:{port}/healthz", proc)
        yield Served(proc, port, slack, emulator, session)
    finally:
        await session.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await slack.stop()
        await emulator.stop()


async def _wait_healthy(
    session: aiohttp.ClientSession, url: str, proc: asyncio.subprocess.Process
) -> None:
    for _ in range(200):
        if proc.returncode is not None:
            raise AssertionError(f"roombot exited early with {proc.returncode}")
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("roombot did not become healthy")


async def test_serve_http_process_end_to_end_and_clean_shutdown(tmp_path: Path) -> None:
    async with served(tmp_path, ROOMBOT_ALLOWED_USERS=ALICE) as bot:
        status, ack = await bot.slash("mute-all room-test")
        assert status == 200
        assert ack == {}
        await bot.slack.wait_for(lambda: len(bot.slack.calls_to("chat.update")) >= 1, timeout=10)
        assert bot.emulator.rooms["room-test"]["IsAudioDisabled"] is True
        code, log = await bot.stop()
    assert code == 0, log
    assert SECRET_KEY not in log
    assert SIGNING_SECRET not in log
    assert BOT_TOKEN not in log
    assert "usersig=" not in log.replace("usersig=***", "")


async def test_sighup_reloads_the_policy_and_keeps_it_when_the_file_is_broken(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[roles.ops]\nverbs = ["*"]\nusers = ["U0ALICE01"]\n', encoding="utf-8")

    async def help_lists_lockdown(bot: Served) -> bool:
        before = len(bot.slack.calls)
        body = form_body(
            slash_command("help", user_id=ALICE, response_url=bot.slack.response_url())
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **sign(body, SIGNING_SECRET),
        }
        url = f"http://127.0.0.1:{bot.port}/slack/events"
        async with bot.session.post(url, data=body, headers=headers) as response:
            text = str((await response.json())["text"])
        assert len(bot.slack.calls) >= before
        return "lockdown" in text

    async def wait_until(bot: Served, listed: bool) -> None:
        for _ in range(100):
            if await help_lists_lockdown(bot) is listed:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"help never {'listed' if listed else 'dropped'} lockdown")

    async with served(tmp_path, ROOMBOT_POLICY_FILE=str(policy)) as bot:
        await wait_until(bot, listed=True)
        policy.write_text(
            '[roles.ops]\nverbs = ["show"]\nusers = ["U0ALICE01"]\n', encoding="utf-8"
        )
        bot.proc.send_signal(signal.SIGHUP)
        await wait_until(bot, listed=False)
        policy.write_text("[roles.ops]\nverbs = [\n", encoding="utf-8")  # broken TOML
        bot.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.3)
        assert await help_lists_lockdown(bot) is False  # the last good policy still applies
        code, log = await bot.stop()
    assert code == 0
    assert "policy not reloaded, keeping the current one" in log


async def test_serve_without_settings_names_each_missing_one_on_its_own_line(
    tmp_path: Path,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", "--http",
        env=_env(TENCENT_SDKAPPID="1400000000"), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert lines == [
        f"roombot serve: {name} is required for `roombot serve` in HTTP mode (see .env.example)"
        for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TENCENT_SECRET_KEY")
    ]
