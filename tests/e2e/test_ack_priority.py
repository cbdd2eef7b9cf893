"""Under a burst, acks go first: a command's work waits while another request is at the door."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from testkit.slack_payloads import form_body, sign, slash_command
from tests.e2e.stack import ALICE, GENERAL, SIGNING_SECRET, running_stack


async def _until(condition: object, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_commands_work_waits_while_another_request_is_being_acknowledged(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        gate = stack.bot.runtime.gate
        gate.max_wait_s = 10.0  # so that only the door going quiet lets the work go
        url = urlsplit(stack.url)
        assert url.hostname is not None
        assert url.port is not None
        # A second request whose body arrives slowly: it is at the door until it is whole.
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
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            writer.write(f"POST {url.path} HTTP/1.1\r\n{head}\r\n".encode() + body[:8])
            await writer.drain()
            await _until(lambda: gate.acking == 1)

            reply, _ = await stack.slash("mute-all room-test")
            assert reply.status == 200
            assert reply.json() == {}
            await asyncio.sleep(0.3)
            assert stack.tencent_calls() == []  # its work has not started…
            assert stack.slack.messages(GENERAL) == []
            assert gate.waiting >= 1

            writer.write(body[8:])  # …until the other request is answered
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 5)
            assert status.startswith(b"HTTP/1.1 200")
        finally:
            writer.close()
        await stack.settle()
        [call] = stack.tencent_calls()
        assert call.body == {"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": True}}
        [parent] = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
        assert "✅ done: 1/1 room changed" in parent["text"]
