"""Moderating people end to end (#16): members, kick, ban and its Undo, unban, banned, destroy —
signed requests to the real HTTP endpoint, a fake Slack, the emulator with members."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.audit import Outcome
from handlers import blocks
from tests.e2e.stack import ALICE, GENERAL, Stack, button, running_stack

RAID_ROOM: dict[str, Any] = {
    "RoomId": "town-hall",
    "Owner_Account": "host",
    "MemberList": [
        {"Member_Account": "host", "NameCard": "The Host"},
        {"Member_Account": "mod-1", "NameCard": "Moderator", "Role": "Admin"},
        {"Member_Account": "alice-1", "NameCard": "Alice"},
        {"Member_Account": "troll-1", "NameCard": "xXtrollXx"},
        {"Member_Account": "troll-2", "NameCard": "troll two"},
        {"Member_Account": "troll-3", "NameCard": "troll three"},
    ],
}


def _parent(stack: Stack) -> dict[str, Any]:
    return [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None][-1]


def _reply(stack: Stack) -> dict[str, Any]:
    [reply] = stack.slack.thread(GENERAL, _parent(stack)["ts"])
    return reply


def _members(stack: Stack) -> list[str]:
    return stack.emulator.members["town-hall"].accounts()


async def _read(stack: Stack, text: str) -> str:
    _ack, key = await stack.slash(text)
    await stack.settle()
    [answer] = stack.response_posts(key)
    assert answer["response_type"] == "ephemeral"
    return str(answer["text"])


async def test_members_and_banned_answer_privately(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[RAID_ROOM]) as stack:
        text = await _read(stack, "members town-hall")
        assert text.startswith("6 members in `town-hall`:")
        assert "`host` · owner · “The Host”" in text
        assert "`troll-1` · “xXtrollXx”" in text
        assert "Nobody is banned from `town-hall`." in await _read(stack, "banned town-hall")
        assert stack.slack.messages(GENERAL) == []  # nothing in the channel
        assert [r.command for r in stack.emulator.requests] == [
            "get_room_member_list",
            "get_banned_member_list",
        ]


async def test_kick_removes_members_and_says_it_cannot_be_undone(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[RAID_ROOM]) as stack:
        await stack.slash("kick town-hall troll-1 troll-2 --reason raid")
        await stack.settle()
        [call] = stack.tencent_calls("kick_user_out")
        assert call.body == {
            "RoomId": "town-hall",
            "MemberList_Account": ["troll-1", "troll-2"],
            "Reason": "raid",
        }
        assert "troll-1" not in _members(stack)
        parent, reply = _parent(stack), _reply(stack)
        assert (
            "`/room kick` on 1 room: `town-hall` (accounts `troll-1`, `troll-2`)" in parent["text"]
        )
        assert parent["text"].splitlines()[-1] == "✅ done: 2/2 accounts kicked"
        assert f"`troll-1` kicked · RequestId `{call.request_id}`" in reply["text"]
        assert "A kick cannot be undone" in reply["text"]
        assert button(reply, blocks.ACTION_UNDO) is None
        rows = [r for r in await stack.rows() if r.verb == "kick"]
        assert [(r.room_id, r.patch, r.outcome) for r in rows] == [
            ("town-hall", {"Member_Account": "troll-1"}, Outcome.OK),
            ("town-hall", {"Member_Account": "troll-2"}, Outcome.OK),
        ]


async def test_a_kick_without_a_reason_names_the_requester(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[RAID_ROOM]) as stack:
        await stack.slash("kick town-hall troll-3")
        await stack.settle()
        [call] = stack.tencent_calls("kick_user_out")
        assert call.body["Reason"] == f"by {ALICE} via roombot"


async def test_a_kick_of_a_non_member_is_reported_per_account(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[RAID_ROOM]) as stack:
        await stack.slash("kick town-hall troll-1 ghost")
        await stack.settle()
        assert "troll-1" not in _members(stack)  # the member among them is still kicked
        reply = _reply(stack)
        assert "`town-hall` · `ghost` — error 100005" in reply["text"]
        assert "not a member of this room" in reply["text"]
        assert "`troll-1` kicked" in reply["text"]
        assert _parent(stack)["text"].splitlines()[-1] == (
            "⚠️ partly done: 1/2 accounts kicked, 1 failed"
        )


async def test_ban_lists_the_ban_and_its_undo_unbans_exactly_those_accounts(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, rooms=[RAID_ROOM]) as stack:
        await stack.slash("ban town-hall troll-1 troll-2 --for 2h --reason raid")
        await stack.settle()
        [call] = stack.tencent_calls("ban_room_member")
        assert call.body["Duration"] == 7200
        assert "`troll-1` banned for 2h" in _reply(stack)["text"]
        banned = await _read(stack, "banned town-hall")
        assert banned.startswith("2 banned from `town-hall`:")
        assert "`troll-1` · until" in banned
        assert "(2h left)" in banned
        reply = _reply(stack)
        undo = button(reply, blocks.ACTION_UNDO)
        assert undo is not None
        await stack.click(
            blocks.ACTION_UNDO,
            undo["value"],
            message_ts=reply["ts"],
            thread_ts=_parent(stack)["ts"],
            message=reply,
        )
        await stack.settle()
        [unban] = stack.tencent_calls("unban_room_member")
        assert unban.body == {"RoomId": "town-hall", "MemberList_Account": ["troll-1", "troll-2"]}
        assert "Nobody is banned" in await _read(stack, "banned town-hall")
        rows = await stack.rows()
        assert [r.verb for r in rows if r.verb in ("ban", "undo")] == ["ban", "ban", "undo", "undo"]


async def test_unban_lifts_a_ban(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[RAID_ROOM]) as stack:
        await stack.slash("ban town-hall troll-3 --for 7d")
        await stack.settle()
        await stack.slash("unban town-hall troll-3")
        await stack.settle()
        [call] = stack.tencent_calls("unban_room_member")
        assert call.body == {"RoomId": "town-hall", "MemberList_Account": ["troll-3"]}
        assert _parent(stack)["text"].splitlines()[-1] == "✅ done: 1/1 account unbanned"


async def test_destroy_always_asks_first_naming_the_room(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[RAID_ROOM], roombot_confirm_above=0) as stack:
        reply, _key = await stack.slash("destroy town-hall")
        body = reply.json()
        assert body["response_type"] == "ephemeral"
        assert "Please confirm: `/room destroy` on 1 room" in body["text"]
        assert "Rooms: `town-hall`" in body["text"]
        assert "cannot be undone" in body["text"]
        cancel = next(
            e
            for b in body["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == blocks.ACTION_CANCEL
        )
        await stack.click(
            blocks.ACTION_CANCEL, cancel["value"], is_ephemeral=True, message_ts="1.000001"
        )
        await stack.settle()
        assert stack.tencent_calls("destroy_room") == []
        assert "town-hall" in stack.emulator.rooms


async def test_a_confirmed_destroy_destroys_the_room(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[RAID_ROOM]) as stack:
        reply, _key = await stack.slash("destroy town-hall --reason 'raid, give up the room'")
        body = reply.json()
        confirm = next(
            e
            for b in body["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == blocks.ACTION_CONFIRM
        )
        await stack.click(
            blocks.ACTION_CONFIRM, confirm["value"], is_ephemeral=True, message_ts="1.000001"
        )
        await stack.settle()
        [call] = stack.tencent_calls("destroy_room")
        assert call.body == {"RoomId": "town-hall"}
        assert "town-hall" not in stack.emulator.rooms
        reply_text = _reply(stack)["text"]
        assert "✅ `town-hall` — room destroyed" in reply_text
        assert "A destroyed room cannot be brought back." in reply_text
        assert button(_reply(stack), blocks.ACTION_UNDO) is None
        assert "error 100004" in await _read(stack, "show town-hall")
