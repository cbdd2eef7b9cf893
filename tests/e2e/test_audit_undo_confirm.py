"""Audit trail, history, undo, confirmations and many-room requests, end to end."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.audit import Outcome, open_store
from bot.cli import main
from bot.policy import known_verbs, load_policy
from handlers import blocks
from tests.e2e.stack import ALICE, GENERAL, MALLORY, Stack, button, running_stack


def _parent(stack: Stack) -> dict[str, Any]:
    parents = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
    assert parents, stack.slack.summary()
    return parents[-1]


def _thread(stack: Stack, parent: dict[str, Any]) -> list[dict[str, Any]]:
    return stack.slack.thread(GENERAL, parent["ts"])


async def _rows(stack: Stack) -> list[Any]:
    store = stack.bot.audit
    assert store is not None
    return list(reversed(await store.query(limit=1000)))


# -- audit -------------------------------------------------------------------------------------


async def test_every_outcome_is_audited(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.slash("mute-all room-test --reason 'drill'")  # ok (read first: was unmuted)
        await stack.settle()
        await stack.slash("mute-all room-test")  # noop: already muted
        await stack.settle()
        await stack.slash("mute-all ghost-room")  # failed: 100004
        await stack.settle()
        await stack.slash("unmute-all room-test", user=MALLORY)  # denied
        await stack.slash("frobnicate room-test")  # invalid
        await stack.slash("disable-chat room-2 --dry-run")  # dry run
        await stack.settle()
        rows = await _rows(stack)
        by_outcome = {r.outcome: r for r in rows}
        assert set(by_outcome) >= {
            Outcome.OK,
            Outcome.NOOP,
            Outcome.FAILED,
            Outcome.DENIED,
            Outcome.INVALID,
            Outcome.DRY_RUN,
        }
        ok = by_outcome[Outcome.OK]
        assert ok.user_id == ALICE
        assert ok.source == "slash"
        assert ok.channel_id == GENERAL
        assert ok.team_id
        assert ok.verb == "mute-all"
        assert ok.room_id == "room-test"
        assert ok.reason == "drill"
        assert ok.patch == {"IsAudioDisabled": True}
        assert ok.previous == {"IsAudioDisabled": False}
        assert ok.tencent_request_id is not None
        assert ok.tencent_request_id.startswith("Id-")
        assert ok.latency_ms is not None
        assert ok.finished_at is not None
        assert "mute-all room-test" in ok.raw_text
        failed = by_outcome[Outcome.FAILED]
        assert failed.error_code == 100004
        assert failed.tencent_request_id
        assert MALLORY in (by_outcome[Outcome.DENIED].detail or "")
        assert "frobnicate" in (by_outcome[Outcome.INVALID].detail or "")
        assert by_outcome[Outcome.DRY_RUN].patch == {"IsMessageDisabled": True}
        # the no-op is reported honestly in the thread
        replies = [m["text"] for m in stack.slack.messages(GENERAL) if m["thread_ts"]]
        assert any("it already was, nothing changed" in t for t in replies)


def test_audit_cli_reads_what_slack_requests_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def populate() -> Path:
        async with running_stack(tmp_path) as stack:
            await stack.slash("disable-video room-test")
            await stack.settle()
            return stack.audit_path

    db = asyncio.run(populate())
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(db))
    assert main(["audit", "--room", "room-test", "--format", "jsonl"]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    row = json.loads(line)
    assert row["verb"] == "disable-video"
    assert row["outcome"] == "ok"
    assert row["user_id"] == ALICE
    assert row["tencent_request_id"].startswith("Id-")


async def test_crash_between_write_and_completion_is_taken_over_at_restart(tmp_path: Path) -> None:
    """The row is written before the call; if the process dies mid-call, the next start takes
    the request over at once (its predecessor is certainly stopped) and finds the row pending."""
    async with running_stack(tmp_path) as stack:
        stack.emulator.script("update_room_info", ["hang"])
        await stack.slash("mute-all room-test")
        await stack.slack.wait_for(lambda: len(stack.slack.calls_to("chat.postMessage")) >= 1)
        await stack.slack.wait_for(
            lambda: any(
                r.command == "update_room_info" and r.http_status is None
                for r in stack.emulator.requests
            )
        )
        rows = await _rows(stack)
        assert [r.outcome for r in rows] == [Outcome.PENDING]
        db = stack.audit_path
        # Simulate the crash: copy the database as it is on disk right now, mid-call.
        crashed = tmp_path / "crashed.sqlite3"
        source = sqlite3.connect(db)
        target = sqlite3.connect(crashed)
        source.backup(target)
        source.close()
        target.close()
        stack.bot.runtime.tasks.cancel()
    store = await open_store(crashed)
    try:
        assert store.recovered == 1
        [row] = await store.query()
        assert row.outcome is Outcome.PENDING
        assert row.room_id == "room-test"
        [taken] = await store.take_over()
        assert [r.id for r in taken.unsettled_rows] == [row.id]
        assert taken.record.reply["parent_ts"] is not None  # the survivor knows the thread
    finally:
        await store.close()


# -- show / history ----------------------------------------------------------------------------


async def test_history_lists_recent_entries_ephemerally(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.slash("mute-all room-test")
        await stack.settle()
        await stack.slash("rename room-test 'Incident bridge'")
        await stack.settle()
        _reply, key = await stack.slash("history room-test")
        await stack.settle()
        [post] = stack.response_posts(key)
        assert post["response_type"] == "ephemeral"
        text = post["text"]
        assert text.index("rename") < text.index("mute-all")  # newest first
        assert f"<@{ALICE}>" in text
        assert "ok" in text
        assert "RequestId `Id-" in text


async def test_viewer_role_can_show_but_not_change(tmp_path: Path) -> None:
    policy = """
[roles.viewers]
verbs = ["show", "history"]
users = ["U0VIEWER1"]
"""
    async with running_stack(tmp_path, policy_toml=policy) as stack:
        _reply, key = await stack.slash("show room-test room-2", user="U0VIEWER1")
        await stack.settle()
        [post] = stack.response_posts(key)
        assert "`room-test`" in post["text"]
        assert "`room-2`" in post["text"]
        denied, _ = await stack.slash("mute-all room-test", user="U0VIEWER1")
        assert "not allowed" in denied.json()["text"]
        await stack.settle()
        assert stack.tencent_calls() == []


# -- undo ----------------------------------------------------------------------------------------


async def _muted_with_undo(stack: Stack) -> tuple[dict[str, Any], dict[str, Any], str]:
    await stack.slash("mute-all room-test room-2")
    await stack.settle()
    parent = _parent(stack)
    [result] = _thread(stack, parent)
    undo = button(result, blocks.ACTION_UNDO)
    assert undo is not None, result
    return parent, result, undo["value"]


async def test_undo_restores_exactly_the_changed_fields_and_is_audited(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.emulator.rooms["room-2"]["IsVideoDisabled"] = True  # unrelated state must survive
        parent, result, key = await _muted_with_undo(stack)
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is True
        before = len(stack.tencent_calls())
        reply, _ = await stack.click(
            blocks.ACTION_UNDO, key, message_ts=result["ts"], thread_ts=parent["ts"], message=result
        )
        assert reply.status == 200
        await stack.settle()
        undo_calls = stack.tencent_calls()[before:]
        assert sorted(c.body["RoomInfo"]["RoomId"] for c in undo_calls) == ["room-2", "room-test"]
        for call in undo_calls:
            assert call.body["RoomInfo"].keys() == {"RoomId", "IsAudioDisabled"}
            assert call.body["RoomInfo"]["IsAudioDisabled"] is False
        assert stack.emulator.rooms["room-2"]["IsVideoDisabled"] is True
        # the outcome is in the same thread, and the Undo button is gone from the result
        replies = _thread(stack, parent)
        texts = "\n".join(m["text"] for m in replies)
        assert f"↩️ <@{ALICE}> is undoing `/room mute-all` on 2 rooms" in texts
        assert "✅ done: 2/2 rooms changed" in texts  # the undo's status line, updated
        assert "✅ `room-test` — audio unmuted" in texts
        updated = next(m for m in stack.slack.messages(GENERAL) if m["ts"] == result["ts"])
        assert button(updated, blocks.ACTION_UNDO) is None
        assert "Undo used by" in json.dumps(updated["blocks"])
        rows = await _rows(stack)
        originals = {r.room_id: r.id for r in rows if r.verb == "mute-all" and r.undo_of is None}
        undos = [r for r in rows if r.undo_of is not None]
        assert {r.room_id: r.undo_of for r in undos} == originals
        assert all(r.source == "button" and r.outcome is Outcome.OK for r in undos)


async def test_undo_refuses_a_room_changed_since(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        parent, result, key = await _muted_with_undo(stack)
        stack.emulator.rooms["room-test"]["IsAudioDisabled"] = False  # someone else unmuted it
        stack.emulator.rooms["room-2"]["IsAudioDisabled"] = True
        before = len(stack.tencent_calls())
        await stack.click(
            blocks.ACTION_UNDO, key, message_ts=result["ts"], thread_ts=parent["ts"], message=result
        )
        await stack.settle()
        undo_calls = stack.tencent_calls()[before:]
        assert [c.body["RoomInfo"]["RoomId"] for c in undo_calls] == ["room-2"]
        text = "\n".join(m["text"] for m in _thread(stack, parent))
        assert "changed since" in text
        assert "not undone" in text


async def test_undo_needs_permission_for_the_restored_fields(tmp_path: Path) -> None:
    policy = """
[roles.muters]
verbs = ["mute-all"]
users = ["U0MUTER01"]
"""
    async with running_stack(tmp_path, policy_toml=policy) as stack:
        parent, result, key = await _muted_with_undo(stack)
        before = len(stack.tencent_calls())
        _reply, click_key = await stack.click(
            blocks.ACTION_UNDO,
            key,
            user_id="U0MUTER01",
            message_ts=result["ts"],
            thread_ts=parent["ts"],
            message=result,
        )
        await stack.settle()
        assert stack.tencent_calls()[before:] == []
        [note] = stack.response_posts(click_key)
        assert note["response_type"] == "ephemeral"
        assert "unmute-all" in note["text"]
        assert "U0MUTER01" in note["text"]
        # the button still works for someone allowed
        await stack.click(
            blocks.ACTION_UNDO, key, message_ts=result["ts"], thread_ts=parent["ts"], message=result
        )
        await stack.settle()
        assert len(stack.tencent_calls()[before:]) == 2


async def test_double_click_on_undo_acts_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        parent, result, key = await _muted_with_undo(stack)
        before = len(stack.tencent_calls())
        await stack.click(
            blocks.ACTION_UNDO, key, message_ts=result["ts"], thread_ts=parent["ts"], message=result
        )
        _reply, second = await stack.click(
            blocks.ACTION_UNDO, key, message_ts=result["ts"], thread_ts=parent["ts"], message=result
        )
        await stack.settle()
        assert len(stack.tencent_calls()[before:]) == 2  # two rooms, once each
        assert "already undone" in stack.response_posts(second)[0]["text"]


# -- confirmations -----------------------------------------------------------------------------


async def _prompt(stack: Stack, text: str, user: str = ALICE) -> str:
    reply, _ = await stack.slash(text, user=user)
    body = reply.json()
    assert body["response_type"] == "ephemeral"
    confirm = next(
        e
        for b in body["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == blocks.ACTION_CONFIRM
    )
    return str(confirm["value"])


async def test_lockdown_asks_for_confirmation_then_runs_once_confirmed(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        key = await _prompt(stack, "lockdown room-test")
        await stack.settle()
        assert stack.emulator.requests == []
        _reply, click = await stack.click(
            blocks.ACTION_CONFIRM, key, is_ephemeral=True, message_ts="1.000001"
        )
        await stack.settle()
        [call] = stack.tencent_calls()
        assert call.body["RoomInfo"]["IsAudioDisabled"] is True
        assert stack.response_posts(click)[0]["replace_original"] is True
        parent = _parent(stack)
        assert "lockdown" in parent["text"]
        assert _thread(stack, parent)
        # a second click does nothing more
        _reply, again = await stack.click(
            blocks.ACTION_CONFIRM, key, is_ephemeral=True, message_ts="1.000001"
        )
        await stack.settle()
        assert len(stack.tencent_calls()) == 1
        assert "already" in stack.response_posts(again)[0]["text"]


async def test_cancel_runs_nothing_and_is_audited(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        key = await _prompt(stack, "lift-lockdown room-test")
        _reply, click = await stack.click(
            blocks.ACTION_CANCEL, key, is_ephemeral=True, message_ts="1.000002"
        )
        await stack.settle()
        assert stack.emulator.requests == []
        assert "Cancelled" in stack.response_posts(click)[0]["text"]
        assert [r.outcome for r in await _rows(stack)] == [Outcome.CANCELLED]
        _reply, late = await stack.click(
            blocks.ACTION_CONFIRM, key, is_ephemeral=True, message_ts="1.000002"
        )
        await stack.settle()
        assert stack.emulator.requests == []
        assert "already" in stack.response_posts(late)[0]["text"]


async def test_only_the_requester_can_confirm(tmp_path: Path) -> None:
    async with running_stack(tmp_path, allowed_users=(ALICE, "U0BOB0001")) as stack:
        key = await _prompt(stack, "lockdown room-test")
        _reply, click = await stack.click(
            blocks.ACTION_CONFIRM,
            key,
            user_id="U0BOB0001",
            is_ephemeral=True,
            message_ts="1.000003",
        )
        await stack.settle()
        assert stack.emulator.requests == []
        assert "only the person who ran the command" in stack.response_posts(click)[0]["text"]


async def test_policy_is_checked_again_at_confirm_time(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path,
        allowed_users=(),
        policy_toml='[roles.a]\nverbs = ["lockdown"]\nusers = ["U0ALICE01"]\n',
    ) as stack:
        key = await _prompt(stack, "lockdown room-test")
        # the role is taken away (policy reloaded) between the prompt and the click
        revoked = tmp_path / "revoked.toml"
        revoked.write_text('[roles.a]\nverbs = ["show"]\nusers = ["U0ALICE01"]\n', encoding="utf-8")
        stack.bot.service.set_policy(
            load_policy(allowed_users=(), policy_file=revoked, known_verbs=known_verbs())
        )
        _reply, click = await stack.click(
            blocks.ACTION_CONFIRM, key, is_ephemeral=True, message_ts="1.000004"
        )
        await stack.settle()
        assert stack.emulator.requests == []
        assert "not allowed" in stack.response_posts(click)[0]["text"]


async def test_expired_prompt_is_refused(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        key = await _prompt(stack, "lockdown room-test")
        db = sqlite3.connect(stack.audit_path)
        with db:
            db.execute("UPDATE confirmations SET created_at = created_at - 601")
        db.close()
        _reply, click = await stack.click(
            blocks.ACTION_CONFIRM, key, is_ephemeral=True, message_ts="1.000005"
        )
        await stack.settle()
        assert stack.emulator.requests == []
        assert "expired" in stack.response_posts(click)[0]["text"]


async def test_more_rooms_than_the_threshold_ask_for_confirmation(tmp_path: Path) -> None:
    async with running_stack(tmp_path, roombot_confirm_above=2) as stack:
        key = await _prompt(stack, "mute-all room-test room-2 room-3")
        assert stack.emulator.requests == []
        await stack.click(blocks.ACTION_CONFIRM, key, is_ephemeral=True, message_ts="1.000006")
        await stack.settle()
        assert len(stack.tencent_calls()) == 3
        # two rooms is not more than 2: no prompt
        reply, _ = await stack.slash("unmute-all room-test room-2")
        assert reply.json() == {}


# -- many rooms ----------------------------------------------------------------------------------


async def test_120_rooms_with_failures_progress_summary_and_retry(tmp_path: Path) -> None:
    rooms = [f"bulk-{i:03d}" for i in range(120)]
    async with running_stack(
        tmp_path, rooms=rooms, roombot_confirm_above=0, roombot_rate_limit=30
    ) as stack:
        stack.emulator.script(
            "update_room_info", ["ok"] * 10 + [100006] * 4 + ["ok"] * 50 + [100006]
        )
        await stack.slash("disable-chat " + " ".join(rooms))
        await stack.settle(timeout=30)
        calls = stack.tencent_calls()
        assert len(calls) == 120
        assert stack.emulator.rate_limited == 0
        assert not stack.tencent_calls("get_room_info")  # too big to read first: said so below
        parent = _parent(stack)
        assert "115/120 rooms set, 5 failed" in parent["text"]  # not read first: set, not "changed"
        updates = stack.slack.calls_to("chat.update")
        # ≈4 s at 30 calls/s: progress edits at most every 3 s, then the final status
        assert 2 <= len(updates) <= 4, [u.params["text"] for u in updates]
        assert "/120 done" in updates[0].params["text"]
        assert "115/120 rooms set" in updates[-1].params["text"]
        replies = _thread(stack, parent)
        sections = "\n".join(
            b["text"]["text"] for m in replies for b in m["blocks"] if b["type"] == "section"
        )
        for room in rooms:
            assert f"`{room}`" in sections
        assert sections.count("❌ `") == 5
        assert sections.count("✅ `") == 115
        assert "Undo is not offered" in "\n".join(m["text"] for m in replies)
        retry = next(b for m in replies if (b := button(m, blocks.ACTION_RETRY)))
        failed_rooms = sorted(c.body["RoomInfo"]["RoomId"] for c in calls if c.error_code == 100006)
        last = next(m for m in replies if button(m, blocks.ACTION_RETRY))
        await stack.click(
            blocks.ACTION_RETRY,
            retry["value"],
            message_ts=last["ts"],
            thread_ts=parent["ts"],
            message=last,
        )
        await stack.settle(timeout=30)
        retried = stack.tencent_calls()[120:]
        assert sorted(c.body["RoomInfo"]["RoomId"] for c in retried) == failed_rooms
        assert all(c.error_code == 0 for c in retried)
        assert all(stack.emulator.rooms[r]["IsMessageDisabled"] for r in rooms)


async def test_a_broken_audit_trail_refuses_the_change_and_says_so(tmp_path: Path) -> None:
    """#12.8: with no audit row there is no change; the requester is told, in the thread."""
    async with running_stack(tmp_path) as stack:
        assert stack.bot.audit is not None
        await stack.bot.audit.close()  # e.g. the disk went away
        await stack.slash("disable-video room-test room-2")
        await stack.settle()
        assert stack.tencent_calls() == []
        assert stack.emulator.rooms["room-test"]["IsVideoDisabled"] is False
        parent = _parent(stack)
        assert parent["text"].splitlines()[-1] == (
            "❌ not done: the audit trail could not be written, so nothing was changed"
        )
        [result] = _thread(stack, parent)
        assert "2 not attempted — the audit trail could not be written" in result["text"]
        assert "`room-test`, `room-2`" in result["text"]
        assert button(result, blocks.ACTION_UNDO) is None
        assert button(result, blocks.ACTION_RETRY) is None


async def test_an_operator_may_allow_unaudited_changes(tmp_path: Path) -> None:
    async with running_stack(tmp_path, roombot_allow_unaudited=True) as stack:
        assert stack.bot.audit is not None
        await stack.bot.audit.close()  # e.g. the disk went away
        await stack.slash("disable-video room-test")
        await stack.settle()
        [call] = stack.tencent_calls()
        assert stack.emulator.rooms["room-test"]["IsVideoDisabled"] is True
        parent = _parent(stack)
        [result] = _thread(stack, parent)
        assert "✅ `room-test` — video disabled" in result["text"]
        assert call.request_id in result["text"]
        assert "The audit trail could not be written" in result["text"]
        assert button(result, blocks.ACTION_UNDO) is None  # it could not find the request


async def test_wrong_credentials_stop_a_many_room_request_and_are_said_once(
    tmp_path: Path,
) -> None:
    """#12.5: 30 rooms with a secret key Tencent does not accept: not 30 calls and 30 identical
    errors, but the error once, with its hint, and the rest "not attempted"."""
    rooms = [f"room-{i:02d}" for i in range(30)]
    wrong = "f" * 64
    async with running_stack(
        tmp_path, rooms=rooms, emulator_secret_key=wrong, roombot_confirm_above=0
    ) as stack:
        await stack.slash("mute-all " + " ".join(rooms))
        await stack.settle(timeout=20)
        calls = stack.tencent_calls()
        assert 1 <= len(calls) < 10, len(calls)  # only those already in flight
        parent = _parent(stack)
        [result] = _thread(stack, parent)
        text = result["text"]
        assert text.count("UserSig") == 1  # the error, said once for every room it failed
        assert text.count("check TENCENT_SECRET_KEY") == 1
        assert f"{30 - len(calls)} not attempted" in text
        assert parent["text"].splitlines()[-1] == "❌ failed: no room changed (30 errors)"
        rows = await _rows(stack)
        outcomes = [r.outcome for r in rows]
        assert outcomes.count(Outcome.FAILED) == len(calls)
        assert outcomes.count(Outcome.NOT_ATTEMPTED) == 30 - len(calls)
        retry = button(result, blocks.ACTION_RETRY)
        assert retry is not None  # once the key is fixed, Retry covers the not-attempted rooms


async def test_an_undo_is_recorded_as_an_undo_not_as_the_original_verb(tmp_path: Path) -> None:
    """#12.7: history and roombot audit must say "undo", not repeat "lockdown"."""
    async with running_stack(tmp_path, roombot_confirm_above=0) as stack:
        await stack.slash("disable-chat room-test")
        await stack.settle()
        [result] = _thread(stack, _parent(stack))
        undo = button(result, blocks.ACTION_UNDO)
        assert undo is not None
        await stack.click(
            blocks.ACTION_UNDO,
            undo["value"],
            message_ts=result["ts"],
            thread_ts=_parent(stack)["ts"],
            message=result,
        )
        await stack.settle()
        rows = await _rows(stack)
        assert [r.verb for r in rows] == ["disable-chat", "undo"]
        undone = rows[-1]
        assert undone.undo_of == rows[0].id
        assert undone.raw_text.startswith("undo ")
        assert undone.patch == {"IsMessageDisabled": False}
        _reply, key = await stack.slash("history room-test")
        await stack.settle()
        [history] = stack.response_posts(key)
        assert "· `undo` · chat enabled · *ok*" in history["text"]
