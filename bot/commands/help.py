"""Help text, generated from `VERBS` so it always says what the parser accepts."""

from __future__ import annotations

from collections.abc import Callable

from bot.models import ACCOUNT_ID_MAX_BYTES, MAX_ACCOUNTS_PER_CALL, REASON_MAX_BYTES

from .durations import BAN_MAX_SECONDS, DURATION_EXAMPLES
from .limits import MAX_ACCOUNTS, MAX_SEATS
from .values import SHORT_KEY_OF
from .verbs import GENERAL_USAGE, VERBS, VerbKind, VerbSpec, canonical_verb, unknown_verb

_OPTIONS_HELP = (
    "`--dry-run` shows what would be sent without sending it. `--reason TEXT` is recorded "
    "with the change: one quoted string, or the rest of the line up to the next option "
    f"(at most {REASON_MAX_BYTES} UTF-8 bytes)."
)

_SET_RULES = (
    "Rooms come first: every word before the first KEY=VALUE is a room, and none after it is.",
    "A `name` or `custom` value runs on over spaces, as typed, up to the next word shaped "
    '`KEY=` or the end: `name=Incident bridge` names the room "Incident bridge", and '
    '`custom={"a": 1}` is one value. Quote a value that has a word shaped `KEY=` in it '
    '(`name="a b=c"`); a quoted value ends at its closing quote.',
    "Every other value is one word; a word after it is an error, not a room.",
    "A word shaped `KEY=` with an unknown KEY is an error, never part of a value. "
    "`--dry-run` and `--reason` are options wherever they stand; quote a value that contains "
    "them.",
)

_ACCOUNT_HELP = (
    f"USER is a Room Engine account ID (`Member_Account`, 1-{ACCOUNT_ID_MAX_BYTES} bytes, no "
    "spaces), not a Slack user: `/room members ROOM` lists them."
)
_USER_HELP = (
    f"{_ACCOUNT_HELP} At most {MAX_ACCOUNTS} a command, sent {MAX_ACCOUNTS_PER_CALL} to a call."
)
_DEFAULT_REASON_HELP = (
    "The API requires a reason: without `--reason`, roombot sends `by <your Slack user ID> "
    "via roombot`."
)

_SEAT_HELP = (
    "INDEX is a seat number, from 0, as `/room seats ROOM` lists them; at most "
    f"{MAX_SEATS} a command. The room's seat list is read once before any change: a seat it "
    "does not have is refused, and each `lock_seat` carries the seat's other two flags as read, "
    "so nothing else changes."
)
_SEAT_BAN_HELP = (
    "The ban belongs to whoever sits on the seat: it ends when they leave it, and a seat nobody "
    "sits on is refused (Tencent would ignore it)."
)

# What each member and room-removal verb adds to its help: its call and whether it can be undone.
_API_LINES: dict[str, tuple[str, ...]] = {
    "members": ("Reads `get_room_member_list`: each member's account ID, role and name card.",),
    "banned": ("Reads `get_banned_member_list`: each banned account and when its ban ends.",),
    "kick": (
        "Calls `kick_user_out`. " + _USER_HELP,
        _DEFAULT_REASON_HELP,
        "Not undoable: kicked members may join again on their own.",
    ),
    "ban": (
        "Calls `ban_room_member`: the members leave and cannot enter until the ban ends. "
        + _USER_HELP,
        f"`--for DURATION` is required: {DURATION_EXAMPLES} (parts add up; units s, m, h, d, "
        f"w), from 1s to {BAN_MAX_SECONDS // 86_400}d, sent in seconds.",
        _DEFAULT_REASON_HELP,
        "Undo: `unban` of exactly these accounts.",
    ),
    "unban": (
        "Calls `unban_room_member`. " + _USER_HELP,
        "The API takes no reason: `--reason` is only recorded.",
        "Not undoable: to keep them out again, `ban` them again.",
    ),
    "seats": (
        "Reads `get_seat_list`: each seat's number (from 0), who sits on it, and whether it is "
        "locked or has audio or video forbidden.",
    ),
    "lock-seat": (
        "Calls `lock_seat` with `ForbidTaken: true` for each seat: whoever sits there is taken "
        "off it first (and stays in the room). " + _SEAT_HELP,
        "Undo: unlocks the seats again (whoever was taken off is not put back).",
    ),
    "unlock-seat": (
        "Calls `lock_seat` with `ForbidTaken: false` for each seat. " + _SEAT_HELP,
        "Undo: locks them again, unless a seat changed since.",
    ),
    "mute-seat": (
        "Calls `lock_seat` with `ForbidAudio: true` (with `--video`, `ForbidVideo: true`) for "
        "each seat. " + _SEAT_BAN_HELP + " " + _SEAT_HELP,
        "Undo: allows it again, unless a seat changed since.",
    ),
    "unmute-seat": (
        "Calls `lock_seat` with `ForbidAudio: false` (with `--video`, `ForbidVideo: false`) for "
        "each seat. " + _SEAT_HELP,
        "Undo: forbids it again, unless a seat changed since.",
    ),
    "kick-seat": (
        "Calls `kick_user_off_seat` for each account: it leaves its seat and stays in the room; "
        "an account on no seat is refused with error 100206. " + _ACCOUNT_HELP,
        "The reason goes to Tencent as `Data`, which its clients may show the user; without "
        "`--reason`, roombot sends `by <your Slack user ID> via roombot`.",
        "Not undoable: they may take a seat again (lock the seat to stop that).",
    ),
    "destroy": (
        "Calls `destroy_room`: the room ends for everyone in it. Always asks for confirmation. "
        "The API takes no reason: `--reason` is only recorded.",
        "Not undoable: the room and its settings are gone.",
    ),
}


def render_help(allowed: Callable[[str], bool] | None = None) -> str:
    """The overview of every verb `allowed` accepts (all when None): usage and summary per verb.

    Plain lines with backticks, so it reads as Slack mrkdwn and in a terminal alike.
    """
    specs = [spec for spec in VERBS.values() if allowed is None or allowed(spec.name)]
    if not specs:
        return "You may not run any `/room` commands."
    writes = any(spec.kind is VerbKind.WRITE for spec in specs)
    # Options only matter to someone who may change rooms.
    usage = GENERAL_USAGE if writes else GENERAL_USAGE.partition(" [")[0]
    lines = [f"Usage: `{usage}`", ""]
    lines += [f"`{spec.synopsis}` — {spec.summary}" for spec in specs]
    lines.append("")
    if writes:
        lines.append(_OPTIONS_HELP)
    lines.append("`/room help VERB` explains one command, with an example.")
    return "\n".join(lines)


def render_verb_help(verb: str) -> str:
    """Usage, summary, what it changes, aliases and an example of one verb (name or alias).

    Raises `ParseError` with a suggestion for an unknown verb.
    """
    name = canonical_verb(verb)
    if name is None:
        raise unknown_verb(verb, VERBS["help"].usage)
    spec = VERBS[name]
    lines = [f"`{spec.usage}`", f"{spec.summary}."]
    lines += _changes_lines(spec)
    if spec.aliases:
        lines.append("Also: " + ", ".join(f"`{alias}`" for alias in spec.aliases))
    lines.append(f"Example: `{spec.example}`")
    return "\n".join(lines)


def _changes_lines(spec: VerbSpec) -> list[str]:
    if spec.name in _API_LINES:
        return list(_API_LINES[spec.name])
    if spec.sets:
        sent = ", ".join(f"`{field}: {str(value).lower()}`" for field, value in spec.sets)
        return [f"Sends {sent} for each room."]
    if spec.kind is not VerbKind.WRITE:
        return []
    if len(spec.fields) == 1:
        return [f"Sends `{spec.fields[0]}` for the room."]
    short = ", ".join(f"`{key.key}`" for key in SHORT_KEY_OF.values())
    api = ", ".join(f"`{field}`" for field in spec.fields)
    return [
        f"Keys: {short}; or the API field names {api} (any case).",
        "`audio`, `video`, `chat`, `screenshare` and `recording` take on/off (also true/false, "
        "yes/no, enabled/disabled): `audio=off` disables audio. The API's `Is…Disabled` fields "
        "take true/false as the API means them.",
        *_SET_RULES,
        "Only the fields you name are sent.",
    ]
