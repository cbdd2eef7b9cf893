"""What reads show, in words: a room (`show`), its history, changes made outside roombot (alerts
and history lines), and the members and banned listings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from bot.audit import AuditEntry, Outcome, Source
from bot.callbacks import OUTSIDE_CREATE, OUTSIDE_DESTROY, OUTSIDE_SEATS, row_events
from bot.commands import format_duration
from bot.outcomes import BannedView, ChangeKind, MembersView, OutsideChange, RoomView
from bot.wording.alerts import seat_events_phrase
from bot.wording.changes import SEAT_MODES, describe_outside, describe_target
from bot.wording.results import read_failure_line, request_id_phrase
from bot.wording.style import CORE, OUTSIDE_MARK, WARN_MARK, Style

_STATUS_FLAGS: Final = (
    ("audio", "is_audio_disabled", "muted"),
    ("video", "is_video_disabled", "disabled"),
    ("chat", "is_message_disabled", "disabled"),
    ("screen sharing", "is_screen_sharing_disabled", "disabled"),
    ("recording", "is_cloud_recording_disabled", "disabled"),
)


def outside_summary(entry: AuditEntry) -> str:
    """A change made outside roombot (its audit row) in one core sentence: the account, the
    time and what it did, e.g. "by `ops-admin` at 12:03:04 UTC (audio unmuted)"."""
    when = datetime.fromtimestamp(entry.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"by `{entry.user_id}` at {when} ({_outside_history(CORE, entry)})"


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


def outside_change_line(style: Style, change: OutsideChange) -> str:
    """An alert's line for one change made outside roombot: the room, who, how, and what."""
    room = style.literal(change.room_id)
    who = style.literal(change.operator)
    via = f" via {style.text(change.platform)}" if change.platform else ""
    if change.kind is ChangeKind.DESTROYED:
        line = f"{WARN_MARK} {room} was destroyed outside roombot by {who}{via}"
    elif change.kind is ChangeKind.CREATED:
        line = f"{room} was created outside roombot by {who}{via}"
    elif change.kind is ChangeKind.SEATS:
        what = seat_events_phrase(style, change.seats)
        line = f"{WARN_MARK} {room}'s seats were changed outside roombot by {who}{via}: {what}"
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
    if entry.verb == OUTSIDE_SEATS:
        return seat_events_phrase(style, row_events(entry))
    if entry.outcome is Outcome.NOOP:
        return "nothing roombot knew of changed"
    previous = entry.previous or {}
    patch = entry.patch or {}
    changed = {k: v for k, v in patch.items() if k in previous}
    reported = {k: v for k, v in patch.items() if k not in previous}
    return describe_outside(style, changed, previous, reported)


def history_head(style: Style, room_id: str, count: int) -> str:
    """The line above a room's history: "Last audit entry for R:" or "Last N audit entries
    for R, newest first:"."""
    if count == 1:
        return f"Last audit entry for {style.literal(room_id)}:"
    return f"Last {count} audit entries for {style.literal(room_id)}, newest first:"


def history_line(style: Style, entry: AuditEntry, approval: str | None = None) -> str:
    """One audit entry as `history` lists it; a change made outside roombot is marked, with
    the Room Engine account that made it; `approval` says who asked and who approved or denied
    a request that awaited a second person."""
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
    approved = f" · {style.text(approval)}" if approval else ""
    return (
        f"{when} · {style.user(entry.user_id)} · {verb} · {what} · "
        f"{style.strong(style.text(outcome))}{rid}{approved}"
    )


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
