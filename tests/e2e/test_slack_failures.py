"""When Slack fails, the truth still reaches the requester — against a real `roombot serve`.

Issue #12: a timeout or dropped connection after the rooms changed (3), a slow user-group lookup
before the ack (4), a huge Retry-After (6), a replayed signed command (12), and response URLs
that are not Slack's (13).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from testkit.slack_payloads import GENERAL, form_body, sign, slash_command
from tests.e2e.serve_proc import Served, serve_process
from tests.e2e.stack import ALICE, SIGNING_SECRET


async def _slash(
    bot: Served,
    text: str,
    *,
    key: str = "r1",
    response_url: str | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, Any], float, bytes]:
    """Send a signed `/room text`: status, ack JSON, seconds to the ack, and the body sent."""
    if body is None:
        url = response_url if response_url is not None else bot.slack.response_url(key)
        body = form_body(slash_command(text, user_id=ALICE, response_url=url))
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, SIGNING_SECRET)}
    started = time.monotonic()
    async with bot.session.post(
        f"http://127.0.0.1:{bot.port}/slack/events", data=body, headers=headers
    ) as response:
        text_body = await response.text()
        elapsed = time.monotonic() - started
        return response.status, (json.loads(text_body) if text_body.strip() else {}), elapsed, body


def _posts(bot: Served, key: str) -> list[dict[str, Any]]:
    return [body for k, body in bot.slack.response_posts if k == key]


def _parents(bot: Served) -> list[dict[str, Any]]:
    return [m for m in bot.slack.messages(GENERAL) if m["thread_ts"] is None]


async def test_a_dropped_thread_reply_still_delivers_the_result_and_logs_it(
    tmp_path: Path,
) -> None:
    """#12.3: the thread reply's connection drops after the rooms changed."""
    async with serve_process(tmp_path) as bot:
        # The parent posts; the thread reply (and slack_sdk's one retry of it) never answers.
        bot.slack.disconnect("chat.postMessage", skip=1, times=2, applied=False)
        status, _ack, _elapsed, _body = await _slash(bot, "mute-all room-test", key="r1")
        assert status == 200
        await bot.slack.wait_for(lambda: len(_posts(bot, "r1")) >= 2, timeout=15)
        assert bot.emulator.rooms["room-test"]["IsAudioDisabled"] is True
        [call] = [r for r in bot.emulator.requests if r.command == "update_room_info"]
        result, hint = _posts(bot, "r1")
        assert result["response_type"] == "in_channel"
        assert "✅ `room-test` — audio muted" in result["text"]
        assert call.request_id is not None
        assert call.request_id in result["text"]
        assert "Something went wrong" not in result["text"]
        assert hint["response_type"] == "ephemeral"
        assert "Slack did not answer" in hint["text"]
        [parent] = _parents(bot)
        assert parent["text"].splitlines()[-1] == "✅ done: 1/1 room changed"  # not "working"
        code = await bot.stop()
        log = bot.output.log
    assert code == 0
    finished = [line for line in log.splitlines() if "request finished" in line]
    assert any(call.request_id in line for line in finished)


async def test_a_parent_that_cannot_be_updated_is_retried_then_the_requester_is_told(
    tmp_path: Path,
) -> None:
    """#12.3: the final status edit keeps failing; the result is in the thread, and the
    requester learns the parent may be stale."""
    async with serve_process(tmp_path) as bot:
        bot.slack.disconnect("chat.update", times=20, applied=False)
        status, _ack, _elapsed, _body = await _slash(bot, "mute-all room-test", key="r2")
        assert status == 200
        await bot.slack.wait_for(lambda: len(_posts(bot, "r2")) >= 1, timeout=15)
        [parent] = _parents(bot)
        [reply] = bot.slack.thread(GENERAL, parent["ts"])
        assert "✅ `room-test` — audio muted" in reply["text"]
        [note] = _posts(bot, "r2")
        assert "could not be updated" in note["text"]
        assert len(bot.slack.calls_to("chat.update")) >= 3  # the first try and its retries


async def test_a_huge_retry_after_is_not_waited_out(tmp_path: Path) -> None:
    """#12.6: Slack says "Retry-After: 3600" for the channel; the request goes ahead at once,
    audited, and the result comes back another way, saying why."""
    async with serve_process(tmp_path) as bot:
        bot.slack.rate_limit("chat.postMessage", retry_after=3600, times=10)
        started = time.monotonic()
        status, _ack, _elapsed, _body = await _slash(bot, "mute-all room-test", key="r3")
        assert status == 200
        await bot.slack.wait_for(lambda: len(_posts(bot, "r3")) >= 2, timeout=15)
        assert time.monotonic() - started < 10
        assert bot.emulator.rooms["room-test"]["IsAudioDisabled"] is True
        result, hint = _posts(bot, "r3")
        assert "✅ `room-test` — audio muted" in result["text"]
        assert "rate-limiting" in hint["text"]
        code = await bot.stop()
    assert code == 0


async def test_a_slow_user_group_lookup_is_acknowledged_in_time_and_runs_once(
    tmp_path: Path,
) -> None:
    """#12.4: the policy needs `usergroups.users.list`, which takes 4 s; Slack still gets its
    ack within 3 s, and the command runs exactly once when the answer comes."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[roles.oncall]\nverbs = ["*"]\nusergroups = ["S0ONCALL"]\n', encoding="utf-8"
    )
    async with serve_process(
        tmp_path, ROOMBOT_POLICY_FILE=str(policy), ROOMBOT_ALLOWED_USERS=""
    ) as bot:
        bot.slack.usergroups["S0ONCALL"] = [ALICE]
        bot.slack.delay("usergroups.users.list", 4.0)
        status, ack, elapsed, _body = await _slash(bot, "mute-all room-test", key="r4")
        assert status == 200
        assert elapsed < 2.9
        assert "answer will follow" in ack["text"]
        await bot.slack.wait_for(lambda: len(bot.slack.calls_to("chat.update")) >= 1, timeout=15)
        await asyncio.sleep(0.5)
        updates = [r for r in bot.emulator.requests if r.command == "update_room_info"]
        assert len(updates) == 1
        assert bot.emulator.rooms["room-test"]["IsAudioDisabled"] is True


async def test_a_replayed_slash_command_acts_once(tmp_path: Path) -> None:
    """#12.12: the same signed body, timestamp and signature sent again within 5 minutes."""
    async with serve_process(tmp_path) as bot:
        status, _ack, _elapsed, body = await _slash(bot, "disable-chat room-test", key="r5")
        assert status == 200
        await bot.slack.wait_for(lambda: len(bot.slack.calls_to("chat.update")) >= 1, timeout=10)
        replayed, _ack, _elapsed, _same = await _slash(bot, "", body=body)
        assert replayed == 200
        await asyncio.sleep(1.0)
        updates = [r for r in bot.emulator.requests if r.command == "update_room_info"]
        assert len(updates) == 1
        assert len(_parents(bot)) == 1


async def test_response_urls_that_are_not_slacks_are_never_posted_to(tmp_path: Path) -> None:
    """#12.13: a response_url elsewhere, one that redirects, and malformed ones. The bot cannot
    post in the channel, so each result would go to its response_url."""
    received: list[str] = []

    async def record(request: web.Request) -> web.Response:
        received.append(await request.text())
        return web.Response(text="ok")

    evil = web.Application()
    evil.router.add_post("/{tail:.*}", record)
    runner = web.AppRunner(evil)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    evil_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with serve_process(tmp_path) as bot:
            bot.slack.private_channel(GENERAL, error="not_in_channel")
            elsewhere = f"http://127.0.0.1:{evil_port}/hook"
            bot.slack.redirect_response_url("bounce", elsewhere)
            for url in (
                elsewhere,
                bot.slack.response_url("bounce"),
                "//127.0.0.1/x",
                "https://" + "h" * 300 + "/x",
                "http://[::1/x",
            ):
                status, _ack, _elapsed, _body = await _slash(
                    bot, "show room-test", response_url=url
                )
                assert status == 200
            # The jobs did not die: a command with a good response_url still gets its answer.
            status, _ack, _elapsed, _body = await _slash(bot, "show room-test", key="good")
            assert status == 200
            await bot.slack.wait_for(lambda: len(_posts(bot, "good")) == 1, timeout=10)
            await asyncio.sleep(0.3)
            assert received == []
            assert [r[2] for r in bot.slack.refused_response_posts] == ["redirected"]
            code = await bot.stop()
            log = bot.output.log
        assert code == 0
        assert "Traceback" not in log
        assert log.count("refused to post to a response_url") >= 4
    finally:
        await runner.cleanup()
