"""Outcomes → what people read: Slack messages (mrkdwn text + Block Kit) within Slack's limits.

Pure functions of the service's outcome types; nothing here talks to Slack. Every piece of user
or Tencent text is escaped before it is put into mrkdwn, so a room name or a reason can never
ping `@channel` or inject a link.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bot.audit import AuditEntry
from bot.commands import Command
from bot.service import (
    Actor,
    DryRun,
    Failure,
    HistoryView,
    NeedsConfirmation,
    Progress,
    RoomResult,
    RoomView,
    RunKind,
    RunResult,
)

#: Slack's Block Kit limits (reference/slack-platform.md).
MAX_BLOCKS: Final = 50
MAX_SECTION_CHARS: Final = 3000
MAX_TEXT_CHARS: Final = 3900  # chat.postMessage advises ≤ 4000 characters of text

#: Button action ids (the Slack handlers route on these).
ACTION_CONFIRM: Final = "roombot_confirm"
ACTION_CANCEL: Final = "roombot_cancel"
ACTION_UNDO: Final = "roombot_undo"
ACTION_RETRY: Final = "roombot_retry_failed"

OK_MARK: Final = "✅"
FAIL_MARK: Final = "❌"
WORKING_MARK: Final = "⏳"
WARN_MARK: Final = "⚠️"


@dataclass(frozen=True)
class Message:
    """A message to post: `text` is complete on its own (notifications, fallbacks, the console)."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats specially."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """`text` as an inline code span (escaped; backticks, which would end it, are swapped)."""
    return "`" + escape(text).replace("`", "ˋ") + "`"


def user(user_id: str) -> str:
    """A Slack mention of a user ID (IDs are validated upstream: only [A-Z0-9])."""
    return f"<@{user_id}>"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _truncate(text, MAX_SECTION_CHARS)},
    }


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _truncate(text, 3000)}]}


# -- describing changes ---------------------------------------------------------------------------

_TOGGLES: Final = {
    "IsAudioDisabled": ("audio muted", "audio unmuted"),
    "IsVideoDisabled": ("video disabled", "video enabled"),
    "IsMessageDisabled": ("chat disabled", "chat enabled"),
    "IsScreenSharingDisabled": ("screen sharing disabled", "screen sharing enabled"),
    "IsCloudRecordingDisabled": ("cloud recording disabled", "cloud recording enabled"),
}

_SEAT_MODES: Final = {"FreeToTake": "free (open mic)", "ApplyToTake": "apply (mic on request)"}


def describe_change(name: str, value: Any) -> str:
    """One field change in words, e.g. `IsAudioDisabled=True` → "audio muted"."""
    if name in _TOGGLES:
        on, off = _TOGGLES[name]
        return on if value else off
    if name == "RoomName":
        return f"renamed to “{escape(str(value))}”"
    if name == "MaxMemberCount":
        return f"member limit set to {value}"
    if name == "CustomInfo":
        return "custom info cleared" if value == "" else f"custom info set to {code(str(value))}"
    if name == "TakeSeatMode":
        return f"seat mode set to {_SEAT_MODES.get(str(value), escape(str(value)))}"
    return f"{escape(name)} set to {code(json.dumps(value, ensure_ascii=False))}"


def describe_changes(changes: dict[str, Any]) -> str:
    """All changes of a patch in words, joined with commas."""
    return ", ".join(describe_change(k, v) for k, v in changes.items())


def _rooms_phrase(rooms: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(code(r) for r in rooms[:limit])
    more = len(rooms) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def _request_id(request_id: str | None) -> str:
    return (
        f"RequestId {code(request_id)}" if request_id else "no RequestId (Tencent did not answer)"
    )


def describe_failure(failure: Failure) -> str:
    """A failure in one line: code, what Tencent said, and the hint."""
    if failure.code is not None:
        head = f"error {failure.code}: {escape(failure.message)}"
    else:
        head = escape(failure.message)
    return f"{head} — {escape(failure.hint)}" if failure.hint else head


# -- slash command and mention flow ----------------------------------------------------------------


def parent_message(
    command: Command, actor: Actor, status: str | None = None, kind: RunKind = RunKind.REQUEST
) -> Message:
    """The message that threads a request: who ran what, on which rooms, and why."""
    count = len(command.rooms)
    rooms = _rooms_phrase(command.rooms)
    plural = "s" if count != 1 else ""
    verb = code(f"/room {command.verb}")
    if kind is RunKind.UNDO:
        head = f"↩️ {user(actor.user_id)} is undoing {verb} on {count} room{plural}: {rooms}"
    elif kind is RunKind.RETRY:
        head = (
            f"🔁 {user(actor.user_id)} is retrying {verb} on {count} failed room{plural}: {rooms}"
        )
    else:
        head = f"{user(actor.user_id)} ran {verb} on {count} room{plural}: {rooms}"
    lines = [head]
    if command.reason and kind is RunKind.REQUEST:
        lines.append(f"Reason: {escape(command.reason)}")
    lines.append(status or f"{WORKING_MARK} working…")
    text = "\n".join(lines)
    return Message(text=_truncate(text, MAX_TEXT_CHARS), blocks=[_section(text)])


def progress_status(progress: Progress) -> str:
    """The parent's status line while a request runs, e.g. "⏳ 37/120 done, 2 failed"."""
    failed = f", {progress.failed} failed" if progress.failed else ""
    return f"{WORKING_MARK} {progress.done}/{progress.total} done{failed}"


def final_status(run: RunResult) -> str:
    """The parent's status line once a request has finished."""
    total = len(run.results)
    failed = len(run.failed)
    if failed == 0:
        return f"{OK_MARK} done: {total}/{total} room{'s' if total != 1 else ''} changed"
    if failed == total:
        return f"{FAIL_MARK} failed: no room changed ({failed} error{'s' if failed != 1 else ''})"
    return f"{WARN_MARK} partly done: {total - failed}/{total} rooms changed, {failed} failed"


def room_line(result: RoomResult) -> str:
    """One room's outcome: mark, room, what changed or why not, and the RequestId."""
    if result.failure is None:
        what = describe_changes(result.changes)
        if result.noop:
            what += " — it already was, nothing changed"
        return f"{OK_MARK} {code(result.room_id)} — {what} · {_request_id(result.request_id)}"
    return (
        f"{FAIL_MARK} {code(result.room_id)} — {describe_failure(result.failure)} · "
        f"{_request_id(result.failure.request_id or result.request_id)}"
    )


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def result_actions(run: RunResult) -> dict[str, Any] | None:
    """The Undo / Retry failed buttons a finished request offers, if any."""
    if run.audit_error:
        return None  # both buttons find their request in the audit store, which failed
    buttons = []
    if run.undoable:
        buttons.append(_button("Undo", ACTION_UNDO, run.request_key))
    if run.failed and run.kind is not RunKind.UNDO:
        buttons.append(_button(f"Retry {len(run.failed)} failed", ACTION_RETRY, run.request_key))
    if not buttons:
        return None
    return {"type": "actions", "block_id": "roombot_result_actions", "elements": buttons}


def _notes(run: RunResult) -> list[str]:
    notes = []
    if not run.read_before and run.kind is RunKind.REQUEST:
        notes.append(
            f"Previous values were not read first for a request this big ({len(run.results)} "
            "rooms), so Undo is not offered."
        )
    if run.audit_error:
        notes.append(
            f"{WARN_MARK} The audit trail could not be written ({escape(run.audit_error)}); "
            "the results above are still what Room Engine answered."
        )
    return notes


def _chunk_lines(lines: Iterable[str], limit: int = MAX_SECTION_CHARS - 100) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = _truncate(line, limit)
        if current and size + len(line) + 1 > limit:
            chunks.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        chunks.append("\n".join(current))
    return chunks


def result_messages(run: RunResult) -> list[Message]:
    """The threaded outcome: a summary, every room's line, notes and buttons, split to fit
    Block Kit limits. Failed rooms come first so they are never lost below a long list."""
    summary = final_status(run)
    ordered = run.failed + run.succeeded
    chunks = _chunk_lines(room_line(r) for r in ordered)
    notes = _notes(run)
    actions = result_actions(run)
    # Room lines per message: leave room for the summary, the notes and the buttons.
    per_message = MAX_BLOCKS - 3 - len(notes)
    messages: list[Message] = []
    starts = list(range(0, max(len(chunks), 1), per_message))
    for start in starts:
        part = chunks[start : start + per_message]
        blocks = [_section(c) for c in part]
        lines = list(part)
        if start == 0:
            blocks.insert(0, _section(f"*{summary}*"))
            # Notes go right under the summary in the text, so truncation never drops them.
            lines[:0] = [summary, *notes]
        if start == starts[-1]:
            blocks += [_context(n) for n in notes]
            if actions is not None:
                blocks.append(actions)
        messages.append(Message(text=_truncate("\n".join(lines), MAX_TEXT_CHARS), blocks=blocks))
    return messages


def used_button_blocks(
    blocks: list[dict[str, Any]], action_id: str, note: str
) -> list[dict[str, Any]]:
    """`blocks` of a message whose button `action_id` was used: that button removed (the others
    kept) and `note` added, so it cannot be clicked again."""
    updated: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "actions":
            remaining = [e for e in block.get("elements", []) if e.get("action_id") != action_id]
            if remaining:
                updated.append({**block, "elements": remaining})
            continue
        updated.append(block)
    updated.append(_context(note))
    return updated[:MAX_BLOCKS]


def confirmation_message(needs: NeedsConfirmation) -> Message:
    """The ephemeral prompt for a high-impact request: a summary and Confirm / Cancel."""
    command = needs.command
    count = len(command.rooms)
    changes = describe_changes(dict(command.changes))
    lines = [
        f"{WARN_MARK} Please confirm: {code('/room ' + command.verb)} on {count} room"
        f"{'s' if count != 1 else ''} ({escape(needs.reason)}).",
        f"Rooms: {_rooms_phrase(command.rooms, limit=20)}",
        f"Change: {changes}",
    ]
    if command.reason:
        lines.append(f"Reason: {escape(command.reason)}")
    lines.append("Only you can confirm; this prompt expires in 10 minutes.")
    text = "\n".join(lines)
    blocks = [
        _section(text),
        {
            "type": "actions",
            "block_id": "roombot_confirm_actions",
            "elements": [
                _button("Confirm", ACTION_CONFIRM, needs.key, "danger"),
                _button("Cancel", ACTION_CANCEL, needs.key),
            ],
        },
    ]
    return Message(text=_truncate(text, MAX_TEXT_CHARS), blocks=blocks)


def rejected_text(message: str, usage: str | None) -> str:
    """A parse error or denial as an ephemeral reply."""
    text = f"{FAIL_MARK} {escape(message)}"
    if usage:
        text += f"\nUsage: {code(usage)}"
    return text


def dry_run_message(dry: DryRun) -> Message:
    """What `--dry-run` would send: the exact JSON bodies, one per room."""
    count = len(dry.bodies)
    head = (
        f"Dry run of {code('/room ' + dry.command.verb)} on {count} room"
        f"{'s' if count != 1 else ''}: nothing was sent. Each request body would be:"
    )
    bodies = "\n".join(json.dumps(b, ensure_ascii=False) for b in dry.bodies)
    body_text = "```" + escape(bodies).replace("```", "ˋˋˋ") + "```"
    text = _truncate(f"{head}\n{body_text}", MAX_TEXT_CHARS)
    chunks = _chunk_lines(json.dumps(b, ensure_ascii=False) for b in dry.bodies)
    blocks = [_section(head)] + [
        _section("```" + escape(c).replace("```", "ˋˋˋ") + "```") for c in chunks[: MAX_BLOCKS - 1]
    ]
    return Message(text=text, blocks=blocks)


def help_message(text: str) -> Message:
    """Help text (already mrkdwn-friendly) as a message."""
    return Message(
        text=_truncate(text, MAX_TEXT_CHARS),
        blocks=[_section(c) for c in _chunk_lines(text.splitlines())][:MAX_BLOCKS],
    )


_STATUS_FLAGS: Final = (
    ("audio", "is_audio_disabled", "muted"),
    ("video", "is_video_disabled", "disabled"),
    ("chat", "is_message_disabled", "disabled"),
    ("screen sharing", "is_screen_sharing_disabled", "disabled"),
    ("recording", "is_cloud_recording_disabled", "disabled"),
)


def room_view_text(view: RoomView) -> str:
    """A room as `show` renders it, compactly."""
    if view.snapshot is None:
        assert view.failure is not None
        return (
            f"{FAIL_MARK} {code(view.room_id)} — {describe_failure(view.failure)} · "
            f"{_request_id(view.failure.request_id)}"
        )
    room = view.snapshot.room
    flags = " · ".join(
        f"{label} {'⛔ ' + off if getattr(room, attr) else 'on'}"
        for label, attr, off in _STATUS_FLAGS
    )
    seat = _SEAT_MODES.get(room.take_seat_mode, "not set")
    lines = [
        f"*{escape(room.room_name or room.room_id)}* ({code(room.room_id)}) — "
        f"owner {code(room.owner_account or '?')}, status {escape(room.room_status or '?')}",
        f"members {room.member_count}/{room.max_member_count} · seat mode {escape(seat)}",
        flags,
    ]
    if room.custom_info:
        lines.append(f"custom info: {code(room.custom_info)}")
    lines.append(_request_id(view.snapshot.request_id))
    return "\n".join(lines)


def show_message(views: Sequence[RoomView]) -> Message:
    """`show` output for one or more rooms (ephemeral)."""
    parts = [room_view_text(v) for v in views]
    blocks: list[dict[str, Any]] = []
    for part in parts[: MAX_BLOCKS // 2]:
        if blocks:
            blocks.append({"type": "divider"})
        blocks.append(_section(part))
    if len(parts) > MAX_BLOCKS // 2:
        blocks.append(_context(f"…and {len(parts) - MAX_BLOCKS // 2} more rooms not shown"))
    return Message(text=_truncate("\n\n".join(parts), MAX_TEXT_CHARS), blocks=blocks)


def not_in_channel_hint() -> str:
    """Told (ephemerally) to a requester whose channel the bot cannot post in."""
    return (
        "I could not post in this channel (private channel or DM I am not in), so the result "
        "came back here instead. To get threaded results with an Undo button, invite me: "
        "`/invite @roombot`."
    )


def unexpected_error_text(correlation_id: str) -> str:
    """What a user sees when roombot itself failed: a short id they can report."""
    return (
        f"{FAIL_MARK} Something went wrong inside roombot (error id `{correlation_id}`). "
        "Nothing further was done for this request; report the id to the roombot maintainers."
    )


def _history_line(entry: AuditEntry) -> str:
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(entry.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    what = describe_changes(entry.patch) if entry.patch else "—"
    outcome = entry.outcome.value
    if entry.error_code is not None:
        outcome += f" ({entry.error_code})"
    rid = f" · RequestId {code(entry.tencent_request_id)}" if entry.tencent_request_id else ""
    verb = code(entry.verb or "?")
    return f"{when} · {user(entry.user_id)} · {verb} · {what} · *{escape(outcome)}*{rid}"


def history_message(view: HistoryView) -> Message:
    """`history ROOM`: the newest audit entries for the room, one line each."""
    if view.problem is not None:
        text = f"{FAIL_MARK} No history for {code(view.room_id)}: {escape(view.problem)}"
        return Message(text=text, blocks=[_section(text)])
    if not view.entries:
        text = f"No audit entries for {code(view.room_id)} yet."
        return Message(text=text, blocks=[_section(text)])
    head = f"Last {len(view.entries)} audit entries for {code(view.room_id)}, newest first:"
    lines = [head, *(_history_line(e) for e in view.entries)]
    chunks = _chunk_lines(lines)
    return Message(
        text=_truncate("\n".join(lines), MAX_TEXT_CHARS),
        blocks=[_section(c) for c in chunks][:MAX_BLOCKS],
    )
