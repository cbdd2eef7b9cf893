"""The `/room` command language: text in, `Command` out. Pure: no I/O, no Slack types.

`parse_command(text)` normalises what Slack clients do to typed text, splits it into words, and
returns a `Command` (canonical verb, rooms, the partial RoomInfo patch, `dry_run`, `reason`) or
raises one `ParseError` with a one-line message and the relevant usage line. `VERBS` is the one
table the parser, the help text and the permission policy read.
"""

from __future__ import annotations

from .command import Command
from .errors import ParseError
from .help import render_help, render_verb_help
from .normalise import normalise
from .parser import DEFAULT_MAX_ROOMS, parse_command
from .values import SET_KEYS, SettingKey
from .verbs import GENERAL_USAGE, VERBS, ArgForm, VerbKind, VerbSpec, canonical_verb

__all__ = [
    "DEFAULT_MAX_ROOMS",
    "GENERAL_USAGE",
    "SET_KEYS",
    "VERBS",
    "ArgForm",
    "Command",
    "ParseError",
    "SettingKey",
    "VerbKind",
    "VerbSpec",
    "canonical_verb",
    "normalise",
    "parse_command",
    "render_help",
    "render_verb_help",
]
