"""How outcomes are said, in any medium: one vocabulary, formatted by each adapter's `Style`.

Slack and the terminal say the same things ("audio muted", "✅ done: 2/2 rooms changed",
"error 100004: … — check the ID"); they differ only in how a literal (a room ID, a RequestId, a
value) is shown, how free text is made safe, how a user is named and how a title stands out. A
`Style` holds those four choices; every function here takes one. The Slack adapter's style makes
mrkdwn (code spans, escaping, `<@U…>` mentions, `*bold*`); the console's makes plain text.

Core messages (`Rejected.message`, `Failure.hint`, help) mark literals with backticks, the one
markup they use; `Style.prose` turns such a sentence into the medium's form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from bot.audit import AuditEntry
from bot.commands import Command
from bot.outcomes import Actor, Failure, Progress, RoomResult, RoomView, RunKind, RunResult
from bot.policy import Denial

OK_MARK: Final = "✅"
FAIL_MARK: Final = "❌"
WORKING_MARK: Final = "⏳"
WARN_MARK: Final = "⚠️"

_CODE_SPAN: Final = re.compile(r"`([^`\n]*)`")


@dataclass(frozen=True)
class Style:
    """How one medium formats the pieces of a sentence.

    `literal` shows an identifier or value verbatim (made safe for the medium); `text` makes free
    text safe; `user` names a user by ID, `channel` a channel; `you` addresses the reader by
    their ID; `strong` makes a title stand out; `quote` shows a literal inside a sentence
    (`literal` when None).
    """

    literal: Callable[[str], str]
    text: Callable[[str], str]
    user: Callable[[str], str]
    channel: Callable[[str], str]
    you: Callable[[str], str]
    strong: Callable[[str], str]
    quote: Callable[[str], str] | None = None

    def prose(self, sentence: str) -> str:
        """A core sentence (literals in backticks) in this medium: each backticked part through
        `literal`, the rest through `text`."""
        parts: list[str] = []
        last = 0
        for match in _CODE_SPAN.finditer(sentence):
            parts.append(self.text(sentence[last : match.start()]))
            parts.append((self.quote or self.literal)(match.group(1)))
            last = match.end()
        parts.append(self.text(sentence[last:]))
        return "".join(parts)


_TOGGLES: Final = {
    "IsAudioDisabled": ("audio muted", "audio unmuted"),
    "IsVideoDisabled": ("video disabled", "video enabled"),
    "IsMessageDisabled": ("chat disabled", "chat enabled"),
    "IsScreenSharingDisabled": ("screen sharing disabled", "screen sharing enabled"),
    "IsCloudRecordingDisabled": ("cloud recording disabled", "cloud recording enabled"),
}

SEAT_MODES: Final = {"FreeToTake": "free (open mic)", "ApplyToTake": "apply (mic on request)"}

_STATUS_FLAGS: Final = (
    ("audio", "is_audio_disabled", "muted"),
    ("video", "is_video_disabled", "disabled"),
    ("chat", "is_message_disabled", "disabled"),
    ("screen sharing", "is_screen_sharing_disabled", "disabled"),
    ("recording", "is_cloud_recording_disabled", "disabled"),
)


def describe_change(style: Style, name: str, value: Any) -> str:
    """One field change in words, e.g. `IsAudioDisabled=True` → "audio muted"."""
    if name in _TOGGLES:
        on, off = _TOGGLES[name]
        return on if value else off
    if name == "RoomName":
        return f"renamed to “{style.text(str(value))}”"
    if name == "MaxMemberCount":
        return f"member limit set to {value}"
    if name == "CustomInfo":
        return (
            "custom info cleared"
            if value == ""
            else f"custom info set to {style.literal(str(value))}"
        )
    if name == "TakeSeatMode":
        return f"seat mode set to {SEAT_MODES.get(str(value), style.text(str(value)))}"
    return f"{style.text(name)} set to {style.literal(json.dumps(value, ensure_ascii=False))}"


def describe_changes(style: Style, changes: dict[str, Any]) -> str:
    """All changes of a patch in words, joined with commas."""
    return ", ".join(describe_change(style, k, v) for k, v in changes.items())


def rooms_phrase(style: Style, rooms: Sequence[str], limit: int = 10) -> str:
    """The first `limit` rooms, then "and N more"."""
    shown = ", ".join(style.literal(r) for r in rooms[:limit])
    more = len(rooms) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def request_id_phrase(style: Style, request_id: str | None) -> str:
    """ "RequestId …", or why there is none."""
    if request_id:
        return f"RequestId {style.literal(request_id)}"
    return "no RequestId (Tencent did not answer)"


def failure_phrase(style: Style, failure: Failure) -> str:
    """A failure in one line: code, what Tencent said, and the hint."""
    if failure.code is not None:
        head = f"error {failure.code}: {style.text(failure.message)}"
    else:
        head = style.text(failure.message)
    return f"{head} — {style.prose(failure.hint)}" if failure.hint else head


def request_head(style: Style, command: Command, actor: Actor, kind: RunKind) -> str:
    """Who ran what on which rooms: the first line of a request's parent message."""
    count = len(command.rooms)
    rooms = rooms_phrase(style, command.rooms)
    plural = "s" if count != 1 else ""
    verb = style.literal(f"/room {command.verb}")
    who = style.user(actor.user_id)
    if kind is RunKind.UNDO:
        return f"↩️ {who} is undoing {verb} on {count} room{plural}: {rooms}"
    if kind is RunKind.RETRY:
        return f"🔁 {who} is retrying {verb} on {count} failed room{plural}: {rooms}"
    return f"{who} ran {verb} on {count} room{plural}: {rooms}"


def progress_status(progress: Progress) -> str:
    """The status line while a request runs, e.g. "⏳ 37/120 done, 2 failed"."""
    failed = f", {progress.failed} failed" if progress.failed else ""
    return f"{WORKING_MARK} {progress.done}/{progress.total} done{failed}"


def final_status(run: RunResult) -> str:
    """The status line once a request has finished, counting what changed, what already was so
    (nothing changed there), what was set without a read first, and what failed.

    E.g. "✅ done: 2/2 rooms changed", "✅ done: 1/2 rooms changed, 1 already so",
    "⚠️ partly done: 1/3 rooms changed, 1 already so, 1 failed".
    """
    total = len(run.results)
    failed = len(run.failed)
    if total and failed == total:
        return f"{FAIL_MARK} failed: no room changed ({failed} error{'s' if failed != 1 else ''})"
    counts = [
        (len(run.changed), "changed"),
        (len(run.set_unread), "set"),
        (len(run.already), "already so"),
        (failed, "failed"),
    ]
    parts = [(count, label) for count, label in counts if count]
    first_count, first_label = parts[0] if parts else (0, "changed")
    rooms = "room" if total == 1 else "rooms"
    phrase = ", ".join(
        [
            f"{first_count}/{total} {rooms} {first_label}",
            *(f"{c} {label}" for c, label in parts[1:]),
        ]
    )
    if not run.changed and not run.set_unread and run.already and not failed:
        phrase += ", nothing changed"
    if failed:
        return f"{WARN_MARK} partly done: {phrase}"
    return f"{OK_MARK} done: {phrase}"


def room_line(style: Style, result: RoomResult) -> str:
    """One room's outcome: mark, room, what changed or why not, and the RequestId."""
    room = style.literal(result.room_id)
    if result.failure is None:
        what = describe_changes(style, result.changes)
        if result.noop:
            what += " — it already was, nothing changed"
        return f"{OK_MARK} {room} — {what} · {request_id_phrase(style, result.request_id)}"
    request_id = result.failure.request_id or result.request_id
    return (
        f"{FAIL_MARK} {room} — {failure_phrase(style, result.failure)} · "
        f"{request_id_phrase(style, request_id)}"
    )


def room_view_lines(style: Style, view: RoomView) -> list[str]:
    """A room as `show` says it, compactly (or why it could not be read)."""
    if view.snapshot is None:
        assert view.failure is not None
        return [
            f"{FAIL_MARK} {style.literal(view.room_id)} — {failure_phrase(style, view.failure)} · "
            f"{request_id_phrase(style, view.failure.request_id)}"
        ]
    room = view.snapshot.room
    flags = " · ".join(
        f"{label} {'⛔ ' + off if getattr(room, attr) else 'on'}"
        for label, attr, off in _STATUS_FLAGS
    )
    seat = SEAT_MODES.get(room.take_seat_mode, "not set")
    lines = [
        f"{style.strong(style.text(room.room_name or room.room_id))} "
        f"({style.literal(room.room_id)}) — owner {style.literal(room.owner_account or '?')}, "
        f"status {style.text(room.room_status or '?')}",
        f"members {room.member_count}/{room.max_member_count} · seat mode {style.text(seat)}",
        flags,
    ]
    if room.custom_info:
        lines.append(f"custom info: {style.literal(room.custom_info)}")
    lines.append(request_id_phrase(style, view.snapshot.request_id))
    return lines


def history_line(style: Style, entry: AuditEntry) -> str:
    """One audit entry as `history` lists it."""
    when = datetime.fromtimestamp(entry.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    what = describe_changes(style, entry.patch) if entry.patch else "—"
    outcome = entry.outcome.value
    if entry.error_code is not None:
        outcome += f" ({entry.error_code})"
    rid = (
        f" · RequestId {style.literal(entry.tencent_request_id)}"
        if entry.tencent_request_id
        else ""
    )
    verb = style.literal(entry.verb or "?")
    return (
        f"{when} · {style.user(entry.user_id)} · {verb} · {what} · "
        f"{style.strong(style.text(outcome))}{rid}"
    )


def read_before_note(run: RunResult) -> str | None:
    """Why a big request offers no Undo, or None."""
    if not run.read_before and run.kind is RunKind.REQUEST:
        return (
            f"Previous values were not read first for a request this big ({len(run.results)} "
            "rooms), so Undo is not offered."
        )
    return None


def audit_failed_note(style: Style, run: RunResult) -> str | None:
    """That the audit trail could not be written for this run, or None."""
    if run.audit_error:
        return (
            f"{WARN_MARK} The audit trail could not be written ({style.text(run.audit_error)}); "
            "the results above are still what Room Engine answered."
        )
    return None


def denial_sentence(style: Style, denial: Denial) -> str:
    """A policy refusal: the verb, the caller's ID, and what might explain it."""
    you, verb = style.you(denial.user_id), (style.quote or style.literal)(denial.verb)
    if denial.unknown_verb:
        return f"{you} cannot run {verb}: it is not a verb this policy knows."
    place = "in this channel" if denial.channel_id else "here"
    text = f"{you} are not allowed to run {verb} {place}."
    if denial.guardrail_roles:
        count = len(denial.guardrail_roles)
        quote = style.quote or style.literal
        names = ", ".join(quote(role) for role in denial.guardrail_roles)
        where = ", ".join(style.channel(channel) for channel in denial.guardrail_channels)
        text += (
            f" Your {'role' if count == 1 else 'roles'} {names} allow{'s' if count == 1 else ''} "
            f"it only in {where} (a channel guardrail): run it there, or ask an admin for a role "
            "that allows it here."
        )
    else:
        text += " Ask an admin to add you to a role that allows it."
    for problem in denial.group_problems:
        text += f" Note: {style.text(problem.rstrip('.'))}; try again in a minute."
    if denial.groups_unavailable:
        text += " Note: roles granted through user groups cannot be checked here."
    return text
