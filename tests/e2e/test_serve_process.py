"""`roombot serve --http` as a real process: health check, a signed command, clean SIGTERM,
SIGHUP policy reload, and a missing setting refused at start-up."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp

from testkit.slack_payloads import form_body, sign, slash_command
from tests.e2e.serve_proc import Served, run_serve, serve_process
from tests.e2e.stack import ALICE, BOT_TOKEN, SECRET_KEY, SIGNING_SECRET


async def test_serve_http_process_end_to_end_and_clean_shutdown(tmp_path: Path) -> None:
    async with serve_process(tmp_path) as bot:
        status, ack = await bot.slash_ack("mute-all room-test")
        assert status == 200
        assert ack == {}
        await bot.slack.wait_for(lambda: len(bot.slack.calls_to("chat.update")) >= 1, timeout=10)
        assert bot.emulator.rooms["room-test"]["IsAudioDisabled"] is True
        code = await bot.stop()
        log = bot.output.log
    assert code == 0, log
    everything = "\n".join([*bot.output.stdout, *bot.output.stderr])
    assert everything.count("roombot serving HTTP on") == 1, everything  # not log and stdout
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
        status, ack = await bot.slash_ack("help")
        assert status == 200
        return "lockdown" in str(ack["text"])

    async def wait_until(bot: Served, listed: bool) -> None:
        for _ in range(100):
            if await help_lists_lockdown(bot) is listed:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"help never {'listed' if listed else 'dropped'} lockdown")

    async with serve_process(
        tmp_path, ROOMBOT_POLICY_FILE=str(policy), ROOMBOT_ALLOWED_USERS=""
    ) as bot:
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
        code = await bot.stop()
    assert code == 0
    assert "policy not reloaded, keeping the current one" in bot.output.log


async def test_serve_without_settings_names_each_missing_one_on_its_own_line(
    tmp_path: Path,
) -> None:
    code, _out, err = await run_serve(tmp_path, "--http", env={"TENCENT_SDKAPPID": "1400000000"})
    assert code == 2
    lines = err.strip().splitlines()
    assert lines == [
        f"roombot serve: {name} is required for `roombot serve` in HTTP mode (see .env.example)"
        for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TENCENT_SECRET_KEY")
    ]


async def _fresh_get(bot: Served, path: str) -> tuple[int, str]:
    """GET on a new connection, as a load balancer's or a kubelet's probe makes it."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(bot.base_url + path) as response,
    ):
        return response.status, await response.text()


async def _fresh_slash(bot: Served, text: str) -> tuple[int, str]:
    body = form_body(slash_command(text, user_id=ALICE, response_url=bot.slack.response_url()))
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, SIGNING_SECRET)}
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(bot.base_url + "/slack/events", data=body, headers=headers) as response,
    ):
        return response.status, await response.text()


async def test_after_sigterm_it_keeps_listening_answers_503_ready_and_handles_until_drained(
    tmp_path: Path,
) -> None:
    """Issue 27, item 7: after SIGTERM the port closed at once, so probes and /metrics got
    "connection refused" for as long as the drain took."""
    async with serve_process(tmp_path, rooms=("room-test", "room-2")) as bot:
        assert (await _fresh_get(bot, "/readyz"))[0] == 200
        bot.emulator.latency_s = 2.0  # each Room Engine call takes 2 s: work stays in flight
        status, ack = await bot.slash_ack("mute-all room-test")
        assert (status, ack) == (200, {})
        await bot.slack.wait_for(lambda: bool(bot.emulator.requests), timeout=10)
        bot.proc.send_signal(signal.SIGTERM)
        await bot.slack.wait_for(lambda: "shutting down" in bot.output.log, timeout=5)

        ready, why = await _fresh_get(bot, "/readyz")
        assert ready == 503
        assert json.loads(why)["failing"] == ["process: shutting down"]
        healthy, health = await _fresh_get(bot, "/healthz")
        assert healthy == 200
        assert json.loads(health)["draining"] is True
        scraped, text = await _fresh_get(bot, "/metrics")
        assert scraped == 200
        assert "roombot_work_in_flight" in text
        # A command that arrives while it drains is still handled, not refused at the door.
        status, answer = await _fresh_slash(bot, "unmute-all room-2")
        assert (status, answer) == (200, "")
        assert bot.proc.returncode is None  # still draining: the first command is in flight

        code = await asyncio.wait_for(bot.proc.wait(), timeout=30)
        await bot.stop()
        log = bot.output.log
    assert code == 0, log
    assert bot.emulator.rooms["room-test"]["IsAudioDisabled"] is True
    updated = [r.body for r in bot.emulator.requests if r.command == "update_room_info"]
    assert {"RoomInfo": {"RoomId": "room-2", "IsAudioDisabled": False}} in updated
    assert "still running" not in log  # everything finished within the drain
