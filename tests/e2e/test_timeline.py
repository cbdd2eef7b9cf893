"""`/room timeline` end to end: signed requests to the real HTTP endpoint, a fake Slack that
takes `files_upload_v2`'s three steps, the emulator posting callbacks for outside changes.

The story of DESIGN §2.14: three rooms muted, one undone, one changed outside roombot; the
summary goes to the channel and the Markdown file into its thread, telling exactly that, in
order. Without `files:write` the summary stays and the thread says the upload failed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.audit import NewEntry, Outcome, trail
from handlers import blocks
from tests.e2e.stack import ALICE, GENERAL, OTHER_ADMIN, Stack, running_stack


def _parents(stack: Stack) -> list[dict[str, Any]]:
    return [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]


def _undo_button(stack: Stack, parent: dict[str, Any]) -> tuple[dict[str, Any], str]:
    for message in stack.slack.thread(GENERAL, parent["ts"]):
        for block in message.get("blocks") or []:
            for element in block.get("elements", []) if block["type"] == "actions" else []:
                if element["action_id"] == blocks.ACTION_UNDO:
                    return message, str(element["value"])
    raise AssertionError(stack.slack.summary())


async def _story(stack: Stack) -> None:
    """Mute three rooms (three requests), undo the second, then someone unmutes room-3 in the
    Tencent console."""
    for room in ("room-test", "room-2", "room-3"):
        await stack.slash(f"mute-all {room} --reason spam wave")
        await stack.settle()
    second = _parents(stack)[1]
    result, key = _undo_button(stack, second)
    await stack.click(
        blocks.ACTION_UNDO, key, message_ts=result["ts"], thread_ts=second["ts"], message=result
    )
    await stack.settle()
    stack.emulator.outside_update("room-3", OTHER_ADMIN, IsAudioDisabled=False)
    await stack.settle_callbacks()


async def test_the_timeline_file_tells_the_story_in_order(tmp_path: Path) -> None:
    async with running_stack(tmp_path, callbacks=True) as stack:
        await _story(stack)
        reply, key = await stack.slash("timeline --since 1h")
        assert reply.status == 200
        assert reply.elapsed_s < 3.0
        await stack.settle()

        summary = _parents(stack)[-1]
        assert summary["text"].startswith("5 event(s) in every room from ")
        assert (
            "4 roombot request(s) (0 with failures), 1 change(s) made outside roombot"
            in (summary["text"])
        )
        assert f"Who acted: {ALICE}, {OTHER_ADMIN}" in summary["text"]
        [upload] = stack.slack.calls_to("files.getUploadURLExternal")
        assert upload.params["filename"].startswith("timeline-")
        [shared] = stack.slack.files
        assert shared["channel"] == GENERAL
        assert shared["thread_ts"] == summary["ts"]  # the file is in the summary's thread
        assert shared["filename"].endswith(".md")
        content = shared["content"]
        assert content.startswith("# Timeline: every room, ")
        events = [
            re.sub(r"^- \*\*[0-9:]+Z\*\* ", "", line)
            for line in content.splitlines()
            if line.startswith("- **")
        ]
        rows = await stack.rows()
        ids = {r.room_id: r.tencent_request_id for r in rows if r.verb == "mute-all"}
        muted_2 = next(r for r in rows if r.verb == "mute-all" and r.room_id == "room-2")
        [undo] = [r for r in rows if r.verb == "undo"]
        assert events == [
            f"{ALICE} (slash) mute-all room-test — reason: spam wave — 1 ok, RequestId "
            f"{ids['room-test']}",
            f"{ALICE} (slash) mute-all room-2 — reason: spam wave — 1 ok, RequestId "
            f"{ids['room-2']}",
            f"{ALICE} (slash) mute-all room-3 — reason: spam wave — 1 ok, RequestId "
            f"{ids['room-3']}",
            f"{ALICE} (button) undo room-2, undoing row(s) #{muted_2.id} — reason: undo of "
            f"mute-all run by {ALICE} — 1 ok, RequestId {undo.tencent_request_id}",
            f"outside roombot: {OTHER_ADMIN} via Web outside-update room-3: IsAudioDisabled "
            "true → false — 1 ok",
        ]
        assert "<@" not in content
        assert "<#" not in content
        assert stack.response_posts(key) == []  # everything went to the channel


async def test_without_files_write_the_thread_says_the_upload_failed(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.slash("mute-all room-test")
        await stack.settle()
        stack.slack.scopes = tuple(s for s in stack.slack.scopes if s != "files:write")
        await stack.slash("timeline")
        await stack.settle()
        summary = _parents(stack)[-1]
        assert summary["text"].startswith("1 event(s) in every room")
        [note] = stack.slack.thread(GENERAL, summary["ts"])
        assert note["text"] == (
            "The timeline file could not be uploaded: `missing_scope` (the app lacks the "
            "`files:write` scope: add it and reinstall the app). Get it with `timeline` in "
            "`roombot console`, or `roombot audit --format md`."
        )
        assert stack.slack.files == []


async def test_a_refused_window_is_one_line_to_the_requester(tmp_path: Path) -> None:
    async with running_stack(tmp_path, roombot_timeline_max="1d") as stack:
        reply, key = await stack.slash("timeline --since 2d")
        await stack.settle()
        assert reply.status == 200
        # Said in the ack itself, privately, and nothing else happens.
        answer = reply.json()
        assert answer["response_type"] == "ephemeral"
        assert "the most is 1d (ROOMBOT_TIMELINE_MAX)" in answer["text"]
        assert stack.slack.files == []
        assert stack.response_posts(key) == []
        assert stack.slack.messages(GENERAL) == []


async def test_retention_runs_in_the_served_bot(tmp_path: Path) -> None:
    """With ROOMBOT_AUDIT_RETENTION the bot prunes in the background (here: one round now)."""
    async with running_stack(tmp_path, roombot_audit_retention="400d") as stack:
        await stack.slash("mute-all room-test")
        await stack.settle()
        store = stack.bot.audit
        assert store is not None
        old = await stack.rows()
        entries = [
            NewEntry(
                request_key="k-ancient",
                source="slash",
                user_id=ALICE,
                verb="mute-all",
                raw_text="mute-all room-test",
                room_id="room-test",
                outcome=Outcome.OK,
            )
        ]
        await store.dialect.write(
            "write an old row",
            lambda: trail.insert_entries(entries, final=True, now=old[0].created_at - 500 * 86_400),
        )
        assert len(await stack.rows()) == 2
        pruner = stack.bot.pruner
        assert pruner is not None
        result = await pruner.run_once()
        assert result is not None
        assert result.rows == 1
        assert [r.request_key for r in await stack.rows()] == [old[0].request_key]


async def test_a_week_of_100k_rows_answers_within_slacks_limits(tmp_path: Path) -> None:
    """DESIGN §2.14's figure: `timeline --since 7d` over 100,000 rows (5,000 requests of 20
    rooms, some failures) acks at once and the file is in Slack within 10 s."""
    import sqlite3
    import time

    async with running_stack(tmp_path) as stack:
        now = time.time()
        with sqlite3.connect(stack.audit_path) as conn:
            conn.execute(
                f"""
                WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999)
                INSERT INTO audit_entries (request_key, created_at, finished_at, user_id, source,
                    verb, raw_text, reason, room_id, patch, outcome, error_code, error_info,
                    tencent_request_id, latency_ms)
                SELECT 'req-' || (i / 20), {now} - 6.9 * 86400 + (i / 20) * 119.0, NULL,
                       'U0ALICE01', 'slash', 'mute-all', '/room mute-all ...', 'incident 42',
                       'room-' || (i % 20), '{{"IsAudioDisabled":true}}',
                       CASE WHEN i % 97 = 0 THEN 'failed' ELSE 'ok' END,
                       CASE WHEN i % 97 = 0 THEN 100004 END,
                       CASE WHEN i % 97 = 0 THEN 'room not exist' END,
                       'Id-' || hex(randomblob(16)) || '-O-Seq-1', 12.5
                  FROM n
                """  # noqa: S608
            )
        reply, _ = await stack.slash("timeline --since 7d")
        acked = time.monotonic()
        assert reply.status == 200
        assert reply.elapsed_s < 3.0
        await stack.slack.wait_for(lambda: bool(stack.slack.files), timeout=10)
        took = time.monotonic() - acked
        await stack.settle()
        files = stack.slack.files
        size = sum(len(f["content"].encode()) for f in files)
        print(
            f"\ntimeline --since 7d over 100,000 rows: ack {reply.elapsed_s * 1000:.0f} ms, "
            f"file(s) in Slack {took:.1f} s after the ack, {len(files)} file(s), {size:,} bytes"
        )
        assert took < 10.0
        summary = _parents(stack)[-1]["text"]
        assert summary.startswith("5000 event(s) in every room from ")
        assert "(1031 with failures)" in summary
        assert files[0]["content"].count("\n  - failed 100004 in room-") > 0
