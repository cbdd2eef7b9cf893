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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from bot.audit import AuditEntry, Outcome, Source
from bot.callbacks import OUTSIDE_CREATE, OUTSIDE_DESTROY
from bot.commands import Command, format_duration
from bot.outcomes import (
    Actor,
    BannedView,
    ChangeKind,
    Failure,
    MembersView,
    OutsideChange,
    Progress,
    RoomResult,
    RoomView,
    RunKind,
    RunResult,
)
from bot.policy import Denial
from bot.requests.takeover import RoomVerdict, TakeoverReport
from bot.tencent.errors import CONFIGURATION_CODES

OK_MARK: Final = "✅"
FAIL_MARK: Final = "❌"
WORKING_MARK: Final = "⏳"
WARN_MARK: Final = "⚠️"
#: How `history` marks a change made outside roombot (reported by a Room Engine callback).
OUTSIDE_MARK: Final = f"{WARN_MARK} outside roombot"

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


def _backticked(text: str) -> str:
    return f"`{text}`"


def _as_is(text: str) -> str:
    return text


#: The core's own style, for sentences in `Rejected.message` and `Failure.message`: literals in
#: backticks (each adapter's `Style.prose` renders them), everything else as it is.
CORE: Final = Style(
    literal=_backticked,
    text=_as_is,
    user=_backticked,
    channel=_backticked,
    you=lambda user_id: f"You (`{user_id}`)",
    strong=_as_is,
)


def outside_summary(entry: AuditEntry) -> str:
    """A change made outside roombot (its audit row) in one core sentence: the account, the
    time and what it did, e.g. "by `ops-admin` at 12:03:04 UTC (audio unmuted)"."""
    when = datetime.fromtimestamp(entry.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"by `{entry.user_id}` at {when} ({_outside_history(CORE, entry)})"


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


#: What a member verb or `destroy` did, in the past tense.
_DONE: Final = {"kick": "kicked", "ban": "banned", "unban": "unbanned", "destroy": "destroyed"}


def describe_target(style: Style, changes: dict[str, Any]) -> str:
    """What a row is about, whatever became of it: the room changes, or the account (and a ban's
    length) of a member verb. Beside the verb and the outcome, as `history` shows it."""
    account = changes.get("Member_Account")
    if not isinstance(account, str):
        return describe_changes(style, changes)
    duration = changes.get("Duration")
    length = f" for {format_duration(duration)}" if isinstance(duration, int) else ""
    return f"account {style.literal(account)}{length}"


def command_change(style: Style, command: Command) -> str:
    """What a command will do, for a confirmation prompt."""
    if command.verb == "destroy":
        return "the room is destroyed for everyone in it"
    if command.accounts:
        who = rooms_phrase(style, command.accounts, limit=20)
        length = f" for {format_duration(command.duration_s)}" if command.duration_s else ""
        return f"{_DONE.get(command.verb, command.verb)} {who}{length}"
    return describe_changes(style, dict(command.changes))


def describe_effect(style: Style, verb: str | None, changes: dict[str, Any]) -> str:
    """What one target's call did: "`bob` banned for 2h", "room destroyed", or the room changes.

    `changes` is what the target's audit row records (`RoomResult.changes`, `AuditEntry.patch`).
    """
    account = changes.get("Member_Account")
    if isinstance(account, str):
        done = _DONE.get(verb or "", f"{verb} done")
        text = f"{style.literal(account)} {done}"
        duration = changes.get("Duration")
        if isinstance(duration, int):
            text += f" for {format_duration(duration)}"
        return text
    if verb == "destroy":
        return "room destroyed"
    return describe_changes(style, changes)


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
    """Who ran what on which rooms (and accounts): the first line of a request's parent."""
    count = len(command.rooms)
    rooms = rooms_phrase(style, command.rooms)
    if command.accounts:
        noun = "account" if len(command.accounts) == 1 else "accounts"
        rooms += f" ({noun} {rooms_phrase(style, command.accounts)})"
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
    verb = run.command.verb
    noun = "account" if run.command.accounts else "room"
    done = _DONE.get(verb, "changed")
    if run.refused is not None:
        return f"{FAIL_MARK} not done: {run.refused}"
    if total and failed == total:
        errors = f"{failed} error{'s' if failed != 1 else ''}"
        return f"{FAIL_MARK} failed: no {noun} {done} ({errors})"
    if verb in _DONE:
        counts = [(len(run.succeeded), done), (failed, "failed")]
    else:
        counts = [
            (len(run.changed), "changed"),
            (len(run.set_unread), "set"),
            (len(run.already), "already so"),
            (failed, "failed"),
        ]
    parts = [(count, label) for count, label in counts if count]
    first_count, first_label = parts[0] if parts else (0, done)
    rooms = noun if total == 1 else f"{noun}s"
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


def room_line(style: Style, result: RoomResult, verb: str | None = None) -> str:
    """One target's outcome: mark, room, what changed (or, for `verb` a member verb or destroy,
    what was done) or why not, and the RequestId."""
    room = style.literal(result.room_id)
    if result.account is not None and result.failure is not None:
        room += f" · {style.literal(result.account)}"
    if result.failure is None:
        what = describe_effect(style, verb, result.changes)
        if result.noop:
            what += " — it already was, nothing changed"
        return f"{OK_MARK} {room} — {what} · {request_id_phrase(style, result.request_id)}"
    request_id = result.failure.request_id or result.request_id
    return (
        f"{FAIL_MARK} {room} — {failure_phrase(style, result.failure)} · "
        f"{request_id_phrase(style, request_id)}"
    )


def read_failure_line(style: Style, room_id: str, failure: Failure) -> str:
    """Why a room could not be read (`show`, `members`, `banned`), with Tencent's RequestId."""
    return (
        f"{FAIL_MARK} {style.literal(room_id)} — {failure_phrase(style, failure)} · "
        f"{request_id_phrase(style, failure.request_id)}"
    )


def room_view_lines(style: Style, view: RoomView) -> list[str]:
    """A room as `show` says it, compactly (or why it could not be read)."""
    if view.snapshot is None:
        assert view.failure is not None
        return [read_failure_line(style, view.room_id, view.failure)]
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


#: A room's settings as a state ("audio muted", "video on"), for values roombot did not know.
_SETTINGS: Final = {
    "IsAudioDisabled": ("audio", "muted"),
    "IsVideoDisabled": ("video", "disabled"),
    "IsMessageDisabled": ("chat", "disabled"),
    "IsScreenSharingDisabled": ("screen sharing", "disabled"),
    "IsCloudRecordingDisabled": ("recording", "disabled"),
}


def describe_setting(style: Style, name: str, value: Any) -> str:
    """One field's value as a state, e.g. `IsAudioDisabled=False` → "audio on"."""
    if name in _SETTINGS:
        label, off = _SETTINGS[name]
        return f"{label} {off if value else 'on'}"
    if name == "RoomName":
        return f"name “{style.text(str(value))}”"
    if name == "MaxMemberCount":
        return f"member limit {value}"
    if name == "CustomInfo":
        return "no custom info" if value == "" else f"custom info {style.literal(str(value))}"
    if name == "TakeSeatMode":
        return f"seat mode {SEAT_MODES.get(str(value), style.text(str(value)))}"
    return f"{style.text(name)} {style.literal(json.dumps(value, ensure_ascii=False))}"


def describe_outside(
    style: Style,
    changed: Mapping[str, Any],
    before: Mapping[str, Any],
    reported: Mapping[str, Any],
) -> str:
    """What a change made outside roombot did: the changes to what roombot knew (with the old
    value where a toggle does not make it plain). Only when none of those changed, the values
    roombot did not know before (the change is among them, but which one cannot be told)."""
    parts = []
    for name, value in changed.items():
        text = describe_change(style, name, value)
        if name not in _TOGGLES and name in before:
            text += f" (was {describe_setting(style, name, before[name])})"
        parts.append(text)
    if parts:
        return ", ".join(parts)
    if reported:
        settings = ", ".join(describe_setting(style, n, v) for n, v in reported.items())
        return f"roombot did not know its settings before; now {settings}"
    return "nothing roombot knew of changed"


def outside_change_line(style: Style, change: OutsideChange) -> str:
    """An alert's line for one change made outside roombot: the room, who, how, and what."""
    room = style.literal(change.room_id)
    who = style.literal(change.operator)
    via = f" via {style.text(change.platform)}" if change.platform else ""
    if change.kind is ChangeKind.DESTROYED:
        line = f"{WARN_MARK} {room} was destroyed outside roombot by {who}{via}"
    elif change.kind is ChangeKind.CREATED:
        line = f"{room} was created outside roombot by {who}{via}"
    else:
        what = describe_outside(style, change.changed, change.before, change.reported)
        line = f"{WARN_MARK} {room} was changed outside roombot by {who}{via}: {what}"
    if change.note:
        line += f" ({style.text(change.note)})"
    return line


def _outside_history(style: Style, entry: AuditEntry) -> str:
    if entry.verb == OUTSIDE_DESTROY:
        return "room destroyed"
    if entry.verb == OUTSIDE_CREATE:
        return "room created"
    if entry.outcome is Outcome.NOOP:
        return "nothing roombot knew of changed"
    previous = entry.previous or {}
    patch = entry.patch or {}
    changed = {k: v for k, v in patch.items() if k in previous}
    reported = {k: v for k, v in patch.items() if k not in previous}
    return describe_outside(style, changed, previous, reported)


def history_line(style: Style, entry: AuditEntry) -> str:
    """One audit entry as `history` lists it; a change made outside roombot is marked, with
    the Room Engine account that made it."""
    when = datetime.fromtimestamp(entry.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if entry.source == Source.TENCENT:
        return (
            f"{when} · {OUTSIDE_MARK} · {style.literal(entry.user_id)} · "
            f"{style.literal(entry.verb or '?')} · {_outside_history(style, entry)}"
        )
    what = describe_target(style, entry.patch or {}) if entry.patch else "—"
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


def outcome_lines(style: Style, run: RunResult) -> list[str]:
    """Every target's line, failures first (so none is lost below a long list). Failures for
    roombot's own configuration (credentials, SDKAppID, URL) are said once, for all their
    targets; the targets withdrawn before their call follow in one line; then the successes."""
    verb = run.command.verb
    skipped = {id(r) for r in run.not_attempted}
    lines: list[str] = []
    grouped: dict[tuple[int | None, str, str], list[RoomResult]] = {}
    for result in run.failed:
        failure = result.failure
        if id(result) in skipped or failure is None:
            continue
        if failure.code in CONFIGURATION_CODES:
            grouped.setdefault((failure.code, failure.message, failure.hint), []).append(result)
        else:
            lines.append(room_line(style, result, verb))
    for same in grouped.values():
        lines.append(_configuration_line(style, same))
    withdrawn = not_attempted_line(style, run)
    if withdrawn is not None:
        lines.append(withdrawn)
    return lines + [room_line(style, r, verb) for r in run.succeeded]


def _configuration_line(style: Style, results: list[RoomResult]) -> str:
    """One configuration error, once, with every target it stopped and their RequestIds."""
    first = results[0]
    assert first.failure is not None
    targets = ", ".join(
        f"{style.literal(r.account or r.room_id)} ({request_id_phrase(style, r.request_id)})"
        for r in results[:10]
    )
    more = f" and {len(results) - 10} more" if len(results) > 10 else ""
    return f"{FAIL_MARK} {failure_phrase(style, first.failure)}: {targets}{more}"


def not_undoable_note(run: RunResult) -> str | None:
    """That what was done cannot be undone (kick, destroy), or None."""
    if run.kind is not RunKind.REQUEST or not run.succeeded:
        return None
    if run.command.verb == "kick":
        return "A kick cannot be undone: the accounts may join again unless they are banned."
    if run.command.verb == "destroy":
        return "A destroyed room cannot be brought back."
    return None


def not_attempted_line(style: Style, run: RunResult) -> str | None:
    """One line for every target withdrawn before its call (said once, not once per target)."""
    skipped = run.not_attempted
    if not skipped:
        return None
    names = [r.account or r.room_id for r in skipped]
    why = skipped[0].failure.message if skipped[0].failure else "not attempted"
    listed = rooms_phrase(style, names)
    return f"{FAIL_MARK} {len(skipped)} not attempted — {style.text(why)}: {listed}"


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


#: Most lines a members or banned listing shows; the rest are counted ("… and N more").
LISTING_LINES: Final = 100


def members_lines(style: Style, view: MembersView) -> list[str]:
    """`members ROOM`: a head line, then one line per member (owner and admins first)."""
    room = style.literal(view.room_id)
    if view.failure is not None:
        return [read_failure_line(style, view.room_id, view.failure)]
    if not view.members:
        return [f"Nobody is in {room}."]
    total = view.total if view.total is not None else len(view.members)
    rank = {"Owner": 0, "Admin": 1}
    ordered = sorted(view.members, key=lambda m: (rank.get(m.role, 2), m.account))
    lines = [f"{total} member{'s' if total != 1 else ''} in {room}:"]
    for member in ordered[:LISTING_LINES]:
        line = style.literal(member.account)
        if member.role and member.role != "Member":
            line += f" · {style.text(member.role.lower())}"
        if member.name_card:
            line += f" · “{style.text(member.name_card)}”"
        lines.append(line)
    more = total - min(len(ordered), LISTING_LINES)
    if more > 0:
        lines.append(f"… and {more} more")
    return lines


def banned_lines(style: Style, view: BannedView, now: float) -> list[str]:
    """`banned ROOM`: a head line, then one line per ban (soonest to end first) with its end."""
    room = style.literal(view.room_id)
    if view.failure is not None:
        return [read_failure_line(style, view.room_id, view.failure)]
    if not view.banned:
        return [f"Nobody is banned from {room}."]
    count = len(view.banned)
    lines = [f"{count}{'+' if view.truncated else ''} banned from {room}:"]
    for ban in sorted(view.banned, key=lambda b: b.banned_until)[:LISTING_LINES]:
        until = datetime.fromtimestamp(ban.banned_until, UTC).strftime("%Y-%m-%d %H:%M UTC")
        line = f"{style.literal(ban.account)} · until {until}"
        left = int(ban.banned_until - now)
        if left > 0:
            # To the minute: "2h" reads better than "1h59m58s".
            line += f" ({format_duration(max(60, round(left / 60) * 60))} left)"
        lines.append(line)
    more = count - min(count, LISTING_LINES)
    if more or view.truncated:
        lines.append(f"… and {more} more" + (", and the list goes on" if view.truncated else ""))
    return lines


# -- takeovers: a request whose replica stopped, read back by a survivor --------------------------

#: How each verdict and recorded outcome is counted in a takeover's summary, in this order.
_TAKEOVER_COUNTS: Final = (
    ((Outcome.IN_PLACE, Outcome.OK, Outcome.NOOP), "in place"),
    ((Outcome.NOT_APPLIED,), "not applied"),
    ((Outcome.FAILED,), "failed"),
    ((Outcome.NOT_ATTEMPTED,), "not attempted"),
    ((Outcome.UNKNOWN, Outcome.PENDING), "unknown"),
)
#: The outcomes a takeover offers Retry for (what `RoomService.plan_retry` runs again).
TAKEOVER_RETRY: Final = frozenset(
    {Outcome.NOT_APPLIED, Outcome.UNKNOWN, Outcome.FAILED, Outcome.NOT_ATTEMPTED}
)


def _effect_verb(verb: str | None, wanted: dict[str, Any]) -> str | None:
    # An undo of a ban unbans: its rows carry the account under the verb "undo".
    if verb == "undo" and isinstance(wanted.get("Member_Account"), str):
        return "unban"
    return verb


def takeover_noun(report: TakeoverReport) -> str:
    """ "account" when the request's rows are accounts (a member verb), else "room"."""
    if any(isinstance(v.wanted.get("Member_Account"), str) for v in report.verdicts):
        return "account"
    return "room"


def takeover_counts(report: TakeoverReport) -> str:
    """The verdicts counted, e.g. "3/5 rooms in place, 1 not applied, 1 unknown"."""
    total = len(report.verdicts)
    parts = [
        (sum(report.count(o) for o in outcomes), label) for outcomes, label in _TAKEOVER_COUNTS
    ]
    shown = [(count, label) for count, label in parts if count]
    if not shown:
        return "nothing to read back"
    noun = takeover_noun(report) + ("" if total == 1 else "s")
    first_count, first_label = shown[0]
    return ", ".join(
        [f"{first_count}/{total} {noun} {first_label}", *(f"{c} {lbl}" for c, lbl in shown[1:])]
    )


def takeover_retry_count(report: TakeoverReport) -> int:
    """How many rows Retry would run again (not applied, unknown, failed, not attempted)."""
    return sum(1 for v in report.verdicts if v.outcome in TAKEOVER_RETRY and v.room_id)


def takeover_summary(report: TakeoverReport, *, restarted: bool) -> str:
    """The head of a takeover report: that the replica carrying the request out stopped, and
    what its rooms were found to be.

    `restarted` is True when roombot itself read them after a restart (one process, SQLite),
    False when another replica took over (PostgreSQL).
    """
    who = "roombot" if restarted else "The roombot replica carrying out this request"
    counts = takeover_counts(report)
    if report.nothing_sent or not report.verdicts:
        return (
            f"{WARN_MARK} {who} stopped before changing anything: nothing was changed. Run the "
            "command again if it is still needed."
        )
    if not any(v.read_back for v in report.verdicts):
        return (
            f"{WARN_MARK} {who} stopped after recording every outcome, before reporting them: "
            f"{counts}."
        )
    reader = "After restarting, it" if restarted else "Another replica"
    noun = takeover_noun(report)
    return (
        f"{WARN_MARK} {who} stopped before it finished. {reader} read each {noun} back: {counts}."
    )


def takeover_status(report: TakeoverReport) -> str:
    """The parent message's status line once a takeover is reported."""
    if report.nothing_sent or not report.verdicts:
        return f"{FAIL_MARK} not done: roombot stopped before changing anything (see the thread)"
    settled = all(
        v.outcome in (Outcome.IN_PLACE, Outcome.OK, Outcome.NOOP) for v in report.verdicts
    )
    mark = OK_MARK if settled else WARN_MARK
    return f"{mark} interrupted, then read back: {takeover_counts(report)} (see the thread)"


def verdict_line(style: Style, verdict: RoomVerdict, verb: str | None) -> str:
    """One room (or account) of a taken-over request: what it should be, and what was found.

    E.g. "✅ `room-test` — audio muted — the change is in place · RequestId `…`" (the RequestId
    of the read), "❌ `room-2` — audio muted — not applied: the room has audio unmuted".
    """
    effect_verb = _effect_verb(verb, verdict.wanted)
    room = style.literal(verdict.room_id or "?")
    effect = describe_effect(style, effect_verb, verdict.wanted)
    request_id = request_id_phrase(style, verdict.request_id)
    if not verdict.read_back or verdict.outcome is Outcome.NOT_ATTEMPTED:
        # Nothing was read for a row not attempted: it says so, as a recorded outcome does.
        return _recorded_line(style, verdict, room, effect, request_id)
    if verdict.outcome is Outcome.IN_PLACE:
        return f"{OK_MARK} {room} — {effect} — the change is in place · {request_id}"
    if verdict.outcome is Outcome.NOT_APPLIED:
        found = _found_phrase(style, effect_verb, verdict)
        return f"{FAIL_MARK} {room} — {effect} — not applied: {found} · {request_id}"
    if verdict.error_code is not None:
        why = f"error {verdict.error_code}: {style.text(verdict.error_info or '')}"
    else:
        why = style.text(verdict.error_info or "the read failed")
    return (
        f"{WARN_MARK} {room} — {effect} — unknown, it could not be read back ({why}) · {request_id}"
    )


def _recorded_line(
    style: Style, verdict: RoomVerdict, room: str, effect: str, request_id: str
) -> str:
    """A row the stopped replica had finished: its own outcome, as recorded."""
    outcome = verdict.outcome
    if outcome in (Outcome.OK, Outcome.NOOP):
        return f"{OK_MARK} {room} — {effect} — done before it stopped · {request_id}"
    if outcome is Outcome.NOT_ATTEMPTED:
        return f"{FAIL_MARK} {room} — {effect} — not attempted · {request_id}"
    if verdict.error_code is not None:
        error = f"error {verdict.error_code}: {style.text(verdict.error_info or '')}"
    else:
        error = style.text(verdict.error_info or outcome.value)
    return f"{FAIL_MARK} {room} — {effect} — {style.text(outcome.value)} ({error}) · {request_id}"


def _found_phrase(style: Style, verb: str | None, verdict: RoomVerdict) -> str:
    """What the read found instead of the wanted state."""
    found = verdict.found or {}
    account = verdict.wanted.get("Member_Account")
    who = style.literal(account) if isinstance(account, str) else "the account"
    if "in_room" in found:
        return f"{who} is still in the room"
    if "banned" in found:
        return f"{who} is {'still banned' if found['banned'] else 'not banned'}"
    if "exists" in found:
        return "the room still exists"
    differing = {k: v for k, v in found.items() if verdict.wanted.get(k) != v}
    if not differing:
        return "the room does not hold the requested values"
    return f"the room has {describe_changes(style, differing)}"
