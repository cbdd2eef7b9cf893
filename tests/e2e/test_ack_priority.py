"""Under a burst, acks go first: a command's work waits while another request is being
acknowledged, but never for a connection that has not even sent its whole request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from testkit.slack_payloads import form_body, sign, slash_command
from tests.e2e.stack import ALICE, GENERAL, SIGNING_SECRET, Stack, running_stack

ONCALL = "U0ONCALL1"
#: ALICE is allow-listed; ONCALL may `show` through a user group, which Slack is slow to list.
POLICY = """
[roles.oncall]
verbs = ["show"]
usergroups = ["S0ONCALL01"]
"""


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _parents(stack: Stack) -> list[dict[str, object]]:
    return [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]


async def test_a_commands_work_waits_while_another_request_is_being_acknowledged(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, policy_toml=POLICY) as stack:
        gate = stack.bot.runtime.gate
        gate.max_wait_s = 10.0  # so that only the other ack going out lets the work go
        stack.slack.usergroups["S0ONCALL01"] = [ONCALL]
        stack.slack.delay("usergroups.users.list", 1.0)
        slow = asyncio.create_task(stack.slash("show room-test", user=ONCALL))
        await _until(lambda: gate.acking == 1)  # ONCALL's request awaits its permission

        reply, _ = await stack.slash("mute-all room-test")
        assert reply.status == 200
        assert reply.json() == {}  # acked at once
        await asyncio.sleep(0.3)
        assert stack.tencent_calls("update_room_info") == []  # its work has not started…
        assert _parents(stack) == []
        assert gate.waiting >= 1

        other, _ = await slow  # …until the other request is answered
        assert other.status == 200
        await stack.settle()
        [call] = stack.tencent_calls("update_room_info")
        assert call.body == {"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": True}}
        [parent] = _parents(stack)
        assert "✅ done: 1/1 room changed" in str(parent["text"])


async def test_a_connection_held_open_mid_request_holds_no_work_up(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.bot.runtime.gate.max_wait_s = 10.0
        url = urlsplit(stack.url)
        assert url.hostname is not None
        assert url.port is not None
        # Anyone can open a connection and send half a request: it is not being acknowledged.
        _key, response_url = stack.new_response_url()
        body = form_body(
            slash_command("help", user_id=ALICE, channel_id=GENERAL, response_url=response_url)
        )
        head = "".join(
            f"{name}: {value}\r\n"
            for name, value in {
                "Host": url.netloc,
                "Content-Type": "application/x-www-form-urlencoded",
                "Content-Length": str(len(body)),
                **sign(body, SIGNING_SECRET),
            }.items()
        )
        _reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            writer.write(f"POST {url.path} HTTP/1.1\r\n{head}\r\n".encode() + body[:8])
            await writer.drain()
            await asyncio.sleep(0.1)

            reply, _ = await stack.slash("mute-all room-test")
            assert reply.json() == {}
            await _until(lambda: bool(_parents(stack)), timeout_s=3.0)  # not 10 s
            await stack.settle()
            [call] = stack.tencent_calls("update_room_info")
            assert call.error_code == 0
        finally:
            writer.close()
