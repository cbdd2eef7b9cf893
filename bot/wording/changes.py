"""What settings and changes are, in words: "audio muted", "renamed to “Town hall”", "`bob`
banned for 2h", "seat mode free (open mic)"."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from bot.commands import Command, format_duration
from bot.models import is_seat_target
from bot.seats import describe_seat_change
from bot.wording.style import Style

TOGGLES: Final = {
    "IsAudioDisabled": ("audio muted", "audio unmuted"),
    "IsVideoDisabled": ("video disabled", "video enabled"),
    "IsMessageDisabled": ("chat disabled", "chat enabled"),
    "IsScreenSharingDisabled": ("screen sharing disabled", "screen sharing enabled"),
    "IsCloudRecordingDisabled": ("cloud recording disabled", "cloud recording enabled"),
}

SEAT_MODES: Final = {"FreeToTake": "free (open mic)", "ApplyToTake": "apply (mic on request)"}


def describe_change(style: Style, name: str, value: Any) -> str:
    """One field change in words, e.g. `IsAudioDisabled=True` → "audio muted"."""
    if name in TOGGLES:
        on, off = TOGGLES[name]
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
PAST_TENSE: Final = {
    "kick": "kicked",
    "ban": "banned",
    "unban": "unbanned",
    "destroy": "destroyed",
    "kick-seat": "taken off the seat",
}


def describe_target(style: Style, changes: dict[str, Any]) -> str:
    """What a row is about, whatever became of it: the room changes, or the account (and a ban's
    length) of a member verb. Beside the verb and the outcome, as `history` shows it."""
    account = changes.get("Member_Account")
    if is_seat_target(changes):
        return describe_seat_change(changes)
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
        return f"{PAST_TENSE.get(command.verb, command.verb)} {who}{length}"
    if command.seats:
        return describe_seat_change(
            {"Index": ", ".join(map(str, command.seats)), **command.changes}
        )
    return describe_changes(style, dict(command.changes))


def describe_effect(style: Style, verb: str | None, changes: dict[str, Any]) -> str:
    """What one target's call did: "`bob` banned for 2h", "room destroyed", or the room changes.

    `changes` is what the target's audit row records (`RoomResult.changes`, `AuditEntry.patch`).
    """
    account = changes.get("Member_Account")
    if isinstance(account, str):
        done = PAST_TENSE.get(verb or "", f"{verb} done")
        text = f"{style.literal(account)} {done}"
        duration = changes.get("Duration")
        if isinstance(duration, int):
            text += f" for {format_duration(duration)}"
        return text
    if verb == "destroy":
        return "room destroyed"
    if is_seat_target(changes):
        return describe_seat_change(changes)
    return describe_changes(style, changes)


def rooms_phrase(style: Style, rooms: Sequence[str], limit: int = 10) -> str:
    """The first `limit` rooms, then "and N more"."""
    shown = ", ".join(style.literal(r) for r in rooms[:limit])
    more = len(rooms) - limit
    return shown + (f" and {more} more" if more > 0 else "")


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
        if name not in TOGGLES and name in before:
            text += f" (was {describe_setting(style, name, before[name])})"
        parts.append(text)
    if parts:
        return ", ".join(parts)
    if reported:
        settings = ", ".join(describe_setting(style, n, v) for n, v in reported.items())
        return f"roombot did not know its settings before; now {settings}"
    return "nothing roombot knew of changed"
