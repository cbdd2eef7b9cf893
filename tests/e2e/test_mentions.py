"""`@roombot` mentions end to end: answered in the mention's thread, retries acted on once."""

from __future__ import annotations

import json
from pathlib import Path

from testkit.slack_payloads import message_ts
from tests.e2e.stack import GENERAL, MALLORY, running_stack


async def test_mention_in_a_thread_is_answered_in_that_thread(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        root = message_ts()
        reply, envelope = await stack.mention("disable-video room-test", thread_ts=root)
        assert reply.status == 200
        assert reply.elapsed_s < 3.0
        await stack.settle()
        [call] = stack.tencent_calls()
        assert call.body == {"RoomInfo": {"RoomId": "room-test", "IsVideoDisabled": True}}
        replies = stack.slack.messages(GENERAL)
        assert replies, stack.slack.summary()
        assert all(m["thread_ts"] == root for m in replies)
        assert any(
            "✅ `room-test` — video disabled" in m["text"] and call.request_id in m["text"]
            for m in replies
        )
        assert envelope["event"]["thread_ts"] == root


async def test_mention_outside_a_thread_starts_a_thread_under_it(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        ts = message_ts()
        await stack.mention("enable-video room-test", ts=ts)
        await stack.settle()
        replies = stack.slack.messages(GENERAL)
        assert replies
        assert all(m["thread_ts"] == ts for m in replies)


async def test_duplicate_delivery_of_a_mention_is_acted_on_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        reply, envelope = await stack.mention("mute-all room-test")
        assert reply.status == 200
        body = json.dumps(envelope).encode()
        retry = await stack.post(
            body,
            content_type="application/json",
            headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
        )
        assert retry.status == 200
        await stack.settle()
        assert len(stack.tencent_calls()) == 1


async def test_mention_by_unlisted_user_is_refused_privately(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        root = message_ts()
        await stack.mention("lockdown room-test", user=MALLORY, thread_ts=root)
        await stack.settle()
        assert stack.emulator.requests == []
        [note] = stack.slack.ephemerals(GENERAL, MALLORY)
        assert "`lockdown`" in note["text"]
        assert MALLORY in note["text"]
        assert note.get("thread_ts") == root
