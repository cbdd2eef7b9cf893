"""The `/room` command language: text in, `Command` out. Pure: no I/O, no Slack types.

`parse_command(text)` normalises what Slack clients do to typed text, splits it into words, and
returns a `Command` (canonical verb, rooms, the partial RoomInfo patch, the accounts and ban
duration of a member verb, `dry_run`, `reason`) or raises one `ParseError` with a one-line message
and the relevant usage line. `Command.calls(requester)` gives the exact Room Engine calls.
`VERBS` is the one table the parser, the help text and the permission policy read.
"""

from __future__ import annotations

from .command import Command
from .durations import BAN_MAX_SECONDS, format_duration, parse_duration
from .errors import ParseError
from .help import render_help, render_verb_help
from .limits import (
    AUDIT_TEXT_MAX_CHARS,
    DEFAULT_MAX_ROOMS,
    MAX_ACCOUNTS,
    MAX_COMMAND_CHARS,
    clip_for_audit,
    max_command_chars,
)
from .normalise import normalise
from .parser import parse_command
from .values import SET_KEYS, InvalidValue, SettingKey
from .verbs import GENERAL_USAGE, VERBS, ArgForm, VerbKind, VerbSpec, canonical_verb

__all__ = [
    "AUDIT_TEXT_MAX_CHARS",
    "BAN_MAX_SECONDS",
    "DEFAULT_MAX_ROOMS",
    "GENERAL_USAGE",
    "MAX_ACCOUNTS",
    "MAX_COMMAND_CHARS",
    "SET_KEYS",
    "VERBS",
    "ArgForm",
    "Command",
    "InvalidValue",
    "ParseError",
    "SettingKey",
    "VerbKind",
    "VerbSpec",
    "canonical_verb",
    "clip_for_audit",
    "format_duration",
    "max_command_chars",
    "normalise",
    "parse_command",
    "parse_duration",
    "render_help",
    "render_verb_help",
]
