"""`parse_command`: command text to a `Command`, or one `ParseError` that says what and why."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from bot.models import room_id_problem

from .command import Command
from .errors import ParseError, did_you_mean, shown
from .normalise import normalise
from .tokens import Token, raw_text, tokenise
from .values import SET_KEYS, SHORT_KEY_OF, InvalidValue, SettingKey, convert, lookup_key
from .verbs import (
    GENERAL_USAGE,
    VERBS,
    ArgForm,
    VerbKind,
    VerbSpec,
    canonical_verb,
    unknown_verb,
)

#: How many rooms one command may name unless the caller says otherwise.
DEFAULT_MAX_ROOMS: Final = 500

_OPTION_NAMES: Final = ("--dry-run", "--reason")
_OPTIONS_HINT: Final = " — the options are --dry-run and --reason"
# What Slack sends for a mention when the app escapes them: users, channels, groups, @here.
_MENTION = re.compile(r"<[@#!]")


@dataclass
class _Options:
    args: list[Token]
    dry_run: bool = False
    reason: str | None = None


def parse_command(text: str, *, max_rooms: int = DEFAULT_MAX_ROOMS) -> Command:
    """Parse `/room` command text (as Slack delivers it) into a `Command`.

    Empty text and `help` give the help command. Raises `ParseError` (and nothing else) when the
    text is not a valid command, before anything is sent anywhere.
    """
    normalised = normalise(text)
    tokens = tokenise(normalised)
    if not tokens:
        return Command("help", ())
    spec = _verb(tokens[0])
    options = _split_options(normalised, tokens[1:], spec)
    if spec.kind is not VerbKind.WRITE:
        _refuse_options(options, spec)
    args = options.args
    if spec.form is ArgForm.TOPIC:
        return Command(spec.name, (), topic=_topic(args, spec))
    changes: dict[str, Any]
    if spec.form is ArgForm.ROOMS:
        rooms, changes = args, dict(spec.sets)
    elif spec.form is ArgForm.ROOM:
        rooms, changes = _one_room(args, spec), {}
    elif spec.form is ArgForm.ROOMS_SETTINGS:
        rooms, changes = _settings(args, spec)
    else:
        rooms, changes = _room_and_value(normalised, args, spec)
    return Command(
        spec.name,
        _room_ids(rooms, spec, max_rooms),
        changes,
        dry_run=options.dry_run,
        reason=options.reason,
    )


def _verb(token: Token) -> VerbSpec:
    name = canonical_verb(token.value)
    if name is not None:
        return VERBS[name]
    if token.is_option:
        raise ParseError(
            f"the command comes first, before options like {shown(token.value)}", GENERAL_USAGE
        )
    raise unknown_verb(token.value, GENERAL_USAGE)


def _split_options(text: str, tokens: list[Token], spec: VerbSpec) -> _Options:
    """Take `--dry-run` and `--reason` out of the words after the verb, wherever they are."""
    options = _Options(args=[])
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.is_option:
            options.args.append(token)
            continue
        name, eq, _ = token.prefix.partition("=")
        option = name.lower()
        if option == "--dry-run":
            if eq:
                raise ParseError("`--dry-run` takes no value", spec.usage)
            options.dry_run = True
        elif option == "--reason":
            if options.reason is not None:
                raise ParseError("`--reason` is given twice; give it once", spec.usage)
            options.reason, i = _reason(text, tokens, i, spec)
        else:
            hint = did_you_mean(option, _OPTION_NAMES) or _OPTIONS_HINT
            raise ParseError(
                f"unknown option {shown(token.value)}{hint} (quote a value that starts with --)",
                spec.usage,
            )
    return options


def _reason(text: str, tokens: list[Token], after: int, spec: VerbSpec) -> tuple[str, int]:
    """The text of the `--reason` at `tokens[after - 1]`, and the index of the word after it.

    One quoted string, or else every word up to the next option or the end, so that
    `--reason abuse report` needs no quotes (and cannot quietly turn `report` into a room).
    """
    option = tokens[after - 1]
    name, eq, _ = option.prefix.partition("=")
    if eq and option.quoted is not None and option.prefix == name + eq:
        reason, end = option.quoted, after  # --reason="abuse report"
    elif eq:
        # --reason=abuse report: the rest of this word and the words after it, as typed.
        words = _until_option(tokens, after)
        stop = words[-1].end if words else option.end
        reason, end = text[option.start + len(name) + 1 : stop].strip(), after + len(words)
    elif after < len(tokens) and tokens[after].fully_quoted:
        reason, end = tokens[after].value, after + 1
    else:
        words = _until_option(tokens, after)
        reason, end = raw_text(text, words), after + len(words)
    if not reason.strip():
        raise ParseError("`--reason` needs some text, e.g. --reason abuse report", spec.usage)
    return reason, end


def _until_option(tokens: list[Token], start: int) -> list[Token]:
    end = start
    while end < len(tokens) and not tokens[end].is_option:
        end += 1
    return tokens[start:end]


def _refuse_options(options: _Options, spec: VerbSpec) -> None:
    given = "--dry-run" if options.dry_run else "--reason" if options.reason is not None else None
    if given is not None:
        raise ParseError(
            f"`{given}` does not apply to `{spec.name}`: it changes nothing", spec.usage
        )


def _topic(args: list[Token], spec: VerbSpec) -> str | None:
    if not args:
        return None
    if len(args) > 1:
        raise ParseError("`help` takes at most one command name", spec.usage)
    topic = canonical_verb(args[0].value)
    if topic is None:
        raise unknown_verb(args[0].value, spec.usage)
    return topic


def _one_room(args: list[Token], spec: VerbSpec) -> list[Token]:
    if len(args) > 1:
        raise ParseError(f"`{spec.name}` takes one room, got {len(args)}", spec.usage)
    return args


def _room_and_value(
    text: str, args: list[Token], spec: VerbSpec
) -> tuple[list[Token], dict[str, Any]]:
    field = spec.fields[0]
    setting = SHORT_KEY_OF[field]
    if not args:
        raise ParseError(f"`{spec.name}` needs a room ID", spec.usage)
    room, rest = args[0], args[1:]
    if not rest:
        what = 'the text (`""` clears it)' if field == "CustomInfo" else f"the new {setting.key}"
        raise ParseError(f"`{spec.name}` needs {what} after the room ID", spec.usage)
    if spec.form is ArgForm.ROOM_TEXT:
        raw = rest[0].value if len(rest) == 1 and rest[0].fully_quoted else raw_text(text, rest)
    elif len(rest) > 1:
        raise ParseError(
            f"`{spec.name}` takes one room and one value; for several rooms use "
            f"`/room set ROOM... {setting.key}=VALUE`",
            spec.usage,
        )
    else:
        raw = rest[0].value
    return [room], {field: _converted(setting, raw, spec)}


def _settings(args: list[Token], spec: VerbSpec) -> tuple[list[Token], dict[str, Any]]:
    rooms: list[Token] = []
    changes: dict[str, Any] = {}
    said: dict[str, str] = {}  # field -> the assignment that set it, for conflict messages
    for token in args:
        key, eq, _ = token.prefix.partition("=")
        if not eq:  # a quoted word is always a room, even one with `=` inside
            rooms.append(token)
            continue
        setting = lookup_key(key)
        if setting is None:
            hint = (
                did_you_mean(key, [k.key for k in SET_KEYS.values()])
                or " — see `/room help set` for the keys"
            )
            raise ParseError(
                f"unknown setting {shown(key)} in {shown(token.value)}{hint}", spec.usage
            )
        field = setting.field
        value = _converted(setting, token.value[len(key) + 1 :], spec)
        if field in changes and changes[field] != value:
            raise ParseError(
                f"conflicting values for {field}: {shown(said[field])} and {shown(token.value)}",
                spec.usage,
            )
        changes[field], said[field] = value, token.value
    if not changes:
        raise ParseError("`set` needs at least one KEY=VALUE, e.g. audio=off", spec.usage)
    return rooms, changes


def _converted(setting: SettingKey, raw: str, spec: VerbSpec) -> Any:
    try:
        return convert(setting, raw)
    except InvalidValue as exc:
        raise ParseError(str(exc), spec.usage) from None


def _room_ids(tokens: list[Token], spec: VerbSpec, max_rooms: int) -> tuple[str, ...]:
    rooms = tuple(dict.fromkeys(token.value for token in tokens))
    if not rooms:
        raise ParseError(f"`{spec.name}` needs at least one room ID", spec.usage)
    if len(rooms) > max_rooms:
        raise ParseError(
            f"too many rooms: {len(rooms)} given, at most {max_rooms} per command "
            "(split the request)",
            spec.usage,
        )
    for room in rooms:
        if _MENTION.match(room):
            raise ParseError(
                f"{shown(room)}: that looks like a Slack mention, not a room ID", spec.usage
            )
        problem = room_id_problem(room)
        if problem is not None:
            raise ParseError(problem, spec.usage)
    return rooms
