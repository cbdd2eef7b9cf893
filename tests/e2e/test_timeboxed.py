"""Time-boxed changes (`--for`, DESIGN §2.11) end to end, through roombot's real HTTP endpoint
(signed requests, the fake Slack, the emulator, the process's own request loop): the thread
says when the change ends; about 10 s later the room is reverted and the thread says so with
the RequestId; `timers` lists it until then and not after; Revert now / Keep act once and only
for people allowed to run the change."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bot.audit import Outcome
from handlers import blocks
from tests.e2e.stack import ALICE, GENERAL, MALLORY, Stack, button, running_stack


def _parent(stack: Stack) -> dict[str, Any]:
    parents = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
    assert parents, stack.slack.summary()
    return parents[0]


def _thread_text(stack: Stack, parent: dict[str, Any]) -> str:
    return "\n".join(m["text"] for m in stack.slack.thread(GENERAL, parent["ts"]))


async def _timers(stack: Stack) -> str:
    _ack, key = await stack.slash("timers room-test")
    await stack.settle()
    [post] = stack.response_posts(key)
    return str(post["text"])


async def test_a_change_for_10s_ends_by_itself_and_the_thread_says_so(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        ack, _ = await stack.slash("mute-all room-test --for 10s")
        assert ack.status == 200
        await stack.settle()
        started = time.monotonic()
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is True
        parent = _parent(stack)
        [result] = stack.slack.thread(GENERAL, parent["ts"])
        assert "This change reverts at " in result["text"]
        assert " UTC, in " in result["text"]
        for action_id in blocks.TIMER_ACTIONS:
            assert button(result, action_id) is not None, result
        listed = await _timers(stack)
        assert "1 time-boxed change in `room-test` to revert" in listed
        assert f"<@{ALICE}>" in listed

        # The process's own loop reverts it when the time is up (a real, short wait).
        for _ in range(200):
            if stack.emulator.rooms["room-test"]["IsAudioDisabled"] is False:
                break
            await asyncio.sleep(0.1)
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is False
        assert time.monotonic() - started >= 8  # not before its time
        await stack.settle()
        text = _thread_text(stack, parent)
        assert f"⏰ Time's up for <@{ALICE}>'s `/room mute-all`: reverting 1 room" in text
        assert "✅ `room-test` — audio unmuted · RequestId `Id-" in text
        assert "No time-boxed change in `room-test` is waiting" in await _timers(stack)
        rows = await stack.rows()
        [revert] = [r for r in rows if r.verb == "revert"]
        assert revert.outcome is Outcome.OK
        assert revert.user_id == ALICE
        assert revert.undo_of is not None


async def test_revert_now_and_keep_are_once_and_only_for_those_allowed(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.slash("mute-all room-test --for 30m")
        await stack.slash("disable-chat room-2 --for 30m")
        await stack.settle()
        first, second = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
        [muted] = stack.slack.thread(GENERAL, first["ts"])
        [chat] = stack.slack.thread(GENERAL, second["ts"])
        revert_now = button(muted, blocks.ACTION_REVERT_NOW)
        keep = button(chat, blocks.ACTION_KEEP)
        assert revert_now is not None
        assert keep is not None

        # Mallory may not run mute-all: her click changes nothing, and she is told so.
        _ack, told = await stack.click(
            blocks.ACTION_REVERT_NOW,
            revert_now["value"],
            user_id=MALLORY,
            message_ts=muted["ts"],
            thread_ts=first["ts"],
            message=muted,
        )
        await stack.settle()
        assert "not allowed" in json.dumps(stack.response_posts(told))
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is True

        before = len(stack.tencent_calls())
        for _ in range(2):  # a double click
            await stack.click(
                blocks.ACTION_REVERT_NOW,
                revert_now["value"],
                message_ts=muted["ts"],
                thread_ts=first["ts"],
                message=muted,
            )
        await stack.settle()
        assert len(stack.tencent_calls()) == before + 1
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is False
        text = _thread_text(stack, first)
        assert "⏰ Time's up for" in text
        assert "audio unmuted · RequestId" in text
        updated = next(m for m in stack.slack.messages(GENERAL) if m["ts"] == muted["ts"])
        assert button(updated, blocks.ACTION_REVERT_NOW) is None
        assert "Reverted now by" in json.dumps(updated["blocks"])

        _ack, _ = await stack.click(
            blocks.ACTION_KEEP,
            keep["value"],
            message_ts=chat["ts"],
            thread_ts=second["ts"],
            message=chat,
        )
        await stack.settle()
        assert "Kept by" in _thread_text(stack, second)
        assert stack.emulator.rooms["room-2"]["IsMessageDisabled"] is True
        assert "No time-boxed change in `room-test`" in await _timers(stack)
        rows = await stack.rows()
        assert [r.room_id for r in rows if r.verb == "keep-timer"] == ["room-2"]
