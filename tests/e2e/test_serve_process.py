"""`roombot serve --http` as a real process: health check, a signed command, clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from bot.tencent.emulator import RoomEngineEmulator
from tests.e2e.stack import ALICE, BOT_TOKEN, SDKAPPID, SECRET_KEY, SIGNING_SECRET
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import form_body, sign, slash_command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
    }
    return {**base, **extra}


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
    emulator = RoomEngineEmulator(sdkappid=SDKAPPID, secret_key=SECRET_KEY, rooms=["room-test"])
    await emulator.start()
    slack = FakeSlack(bot_token=BOT_TOKEN)
    await slack.start()
    port = _free_port()
    env = _env(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        TENCENT_SDKAPPID=str(SDKAPPID),
        TENCENT_SECRET_KEY=SECRET_KEY,
        TENCENT_API_URL=emulator.base_url,
        ROOMBOT_ALLOWED_USERS=ALICE,
        ROOMBOT_AUDIT_DB=str(tmp_path / "audit.sqlite3"),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "serve",
        "--http",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_healthy(session, f"http://127.0.0.1:{port}/healthz", proc)
            body = form_body(
                slash_command(
                    "mute-all room-test", user_id=ALICE, response_url=slack.response_url()
                )
            )
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                **sign(body, SIGNING_SECRET),
            }
            async with session.post(
                f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers
            ) as r:
                assert r.status == 200
            await slack.wait_for(lambda: len(slack.calls_to("chat.update")) >= 1, timeout=10)
        assert emulator.rooms["room-test"]["IsAudioDisabled"] is True
        proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 0, err.decode()
        assert SECRET_KEY not in err.decode()
        assert SIGNING_SECRET not in err.decode()
        assert "usersig=" not in err.decode().replace("usersig=***", "")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await slack.stop()
        await emulator.stop()


async def test_serve_without_bot_token_fails_with_one_line(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "serve",
        "--http",
        env=_env(TENCENT_SDKAPPID="1400000000"),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert lines == [
        "roombot serve: SLACK_BOT_TOKEN is required for `roombot serve` (see .env.example)"
    ]


async def test_sighup_reloads_the_policy_and_keeps_it_when_the_file_is_broken(
    tmp_path: Path,
) -> None:
    emulator = RoomEngineEmulator(sdkappid=SDKAPPID, secret_key=SECRET_KEY, rooms=["room-test"])
    await emulator.start()
    slack = FakeSlack(bot_token=BOT_TOKEN)
    await slack.start()
    policy = tmp_path / "policy.toml"
    policy.write_text('[roles.ops]\nverbs = ["*"]\nusers = ["U0ALICE01"]\n', encoding="utf-8")
    port = _free_port()
    env = _env(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        TENCENT_SDKAPPID=str(SDKAPPID),
        TENCENT_SECRET_KEY=SECRET_KEY,
        TENCENT_API_URL=emulator.base_url,
        ROOMBOT_POLICY_FILE=str(policy),
        ROOMBOT_AUDIT_DB=str(tmp_path / "audit.sqlite3"),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "serve",
        "--http",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    async def help_text(session: aiohttp.ClientSession) -> str:
        body = form_body(slash_command("help", user_id=ALICE, response_url=slack.response_url()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **sign(body, SIGNING_SECRET),
        }
        async with session.post(
            f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers
        ) as r:
            return str((await r.json())["text"])

    async def wait_for_help(session: aiohttp.ClientSession, present: bool) -> None:
        for _ in range(100):
            if ("lockdown" in await help_text(session)) is present:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"help never {'listed' if present else 'dropped'} lockdown")

    try:
        async with aiohttp.ClientSession() as session:
            await _wait_healthy(session, f"http://127.0.0.1:{port}/healthz", proc)
            await wait_for_help(session, present=True)
            policy.write_text(
                '[roles.ops]\nverbs = ["show"]\nusers = ["U0ALICE01"]\n', encoding="utf-8"
            )
            proc.send_signal(signal.SIGHUP)
            await wait_for_help(session, present=False)
            policy.write_text("[roles.ops]\nverbs = [\n", encoding="utf-8")  # broken TOML
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.3)
            assert "show" in await help_text(session)  # the last good policy still applies
        proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 0
        assert "policy not reloaded, keeping the current one" in err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await slack.stop()
        await emulator.stop()
