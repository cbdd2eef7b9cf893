"""`parse_command`: command text to a `Command`, or one `ParseError` that says what and why."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from bot.models import SEAT_INDEX_MAX, account_id_problem, reason_problem, room_id_problem

from .command import Command
from .durations import (
    TIMEBOX_MAX_SECONDS,
    TIMEBOX_MIN_SECONDS,
    looks_like_duration,
    parse_duration,
)
from .errors import ParseError, did_you_mean, shown
from .limits import DEFAULT_MAX_ROOMS, MAX_ACCOUNTS, MAX_SEATS, max_command_chars
from .normalise import normalise
from .tokens import Token, raw_text, tokenise
from .values import (
    SET_KEYS,
    SHORT_KEY_OF,
    TEXT_FIELDS,
    InvalidValue,
    SettingKey,
    convert,
    lookup_key,
)
from .verbs import (
    GENERAL_USAGE,
    VERBS,
    ArgForm,
    VerbKind,
    VerbSpec,
    canonical_verb,
    unknown_verb,
)
from .window import TIME_EXAMPLES, WindowSpec, check_time

_OPTION_NAMES: Final = ("--dry-run", "--reason", "--for", "--video", "--since", "--from", "--to")
#: The options that set `timeline`'s window, by name -> `WindowSpec` field.
_WINDOW_OPTIONS: Final = {"--since": "since", "--from": "start", "--to": "end"}
_OPTIONS_HINT: Final = " — the options are --dry-run, --reason and --for"
# What Slack sends for a mention when the app escapes them: users, channels, groups, @here.
_MENTION = re.compile(r"<[@#!]")
# A word that starts a `set` assignment once one has been seen: a key-shaped name, then `=`.
# Any other word after an assignment belongs to its value (see `help set`).
_KEY_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*=")
_MEMBERS_HINT = "USER is a Room Engine account ID; `/room members ROOM` lists them"
_SEATS_HINT = "seats are numbered from 0; `/room seats ROOM` lists them"
_INTEGER = re.compile(r"[0-9]+")


@dataclass
class _Options:
    args: list[Token]
    dry_run: bool = False
    reason: str | None = None
    duration: str | None = None
    video: bool = False
    window: dict[str, str] | None = None


def parse_command(
    text: str, *, max_rooms: int = DEFAULT_MAX_ROOMS, max_timebox: int = TIMEBOX_MAX_SECONDS
) -> Command:
    """Parse `/room` command text (as Slack delivers it) into a `Command`.

    `--for DURATION` is a ban's length, or on a verb that changes room settings or seat flags
    how long the change lasts (from `TIMEBOX_MIN_SECONDS` to `max_timebox`, DESIGN §2.11).

    Empty text and `help` give the help command. Raises `ParseError` (and nothing else) when the
    text is not a valid command, before anything is sent anywhere: first of all when it is longer
    than `max_command_chars(max_rooms)`. No message quotes more than a short excerpt of the text.
    """
    limit = max_command_chars(max_rooms)
    if len(text) > limit:
        raise ParseError(
            f"the command is {len(text):,} characters long; the limit is {limit:,} "
            "(split it into several commands)",
            GENERAL_USAGE,
        )
    normalised = normalise(text)
    tokens = tokenise(normalised)
    if not tokens:
        return Command("help", ())
    spec = _verb(tokens[0])
    options = _split_options(normalised, tokens[1:], spec)
    if spec.kind is not VerbKind.WRITE:
        _refuse_options(options, spec)
    duration = _duration(options, spec, max_timebox)
    args = options.args
    if spec.form is ArgForm.TOPIC:
        return Command(spec.name, (), topic=_topic(args, spec))
    if spec.windowed:
        named = _room_ids(args, spec, max_rooms) if args else ()
        return Command(spec.name, named, window=WindowSpec(**(options.window or {})))
    changes: dict[str, Any] = {}
    accounts: tuple[str, ...] = ()
    seats: tuple[int, ...] = ()
    if spec.form is ArgForm.ANY_ROOMS and not args:
        return Command(spec.name, ())
    if spec.form in (ArgForm.ROOMS, ArgForm.ANY_ROOMS):
        rooms, changes = args, dict(spec.sets)
    elif spec.form is ArgForm.ROOM:
        rooms = _one_room(args, spec)
    elif spec.form is ArgForm.ROOMS_SETTINGS:
        rooms, changes = _settings(normalised, args, spec)
    elif spec.form is ArgForm.ROOM_USERS:
        rooms, accounts = _room_and_accounts(args, spec)
    elif spec.form is ArgForm.ROOM_SEATS:
        rooms, seats = _room_and_seats(args, spec)
        changes = dict(spec.video_sets if options.video else spec.sets)
    else:
        rooms, changes = _room_and_value(normalised, args, spec)
    return Command(
        spec.name,
        _room_ids(rooms, spec, max_rooms),
        changes,
        dry_run=options.dry_run,
        reason=options.reason,
        accounts=accounts,
        duration_s=duration,
        seats=seats,
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
    """Take `--dry-run`, `--reason` and `--for` out of the words after the verb, wherever."""
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
        elif option == "--for":
            if options.duration is not None:
                raise ParseError("`--for` is given twice; give it once", spec.usage)
            options.duration, i = _for(tokens, i, spec)
        elif option in _WINDOW_OPTIONS:
            value, i = _option_value(tokens, i, spec, option)
            options.window = _window_option(options.window, option, value, spec)
        elif option == "--video":
            if eq:
                raise ParseError("`--video` takes no value", spec.usage)
            if not spec.video_sets:
                raise ParseError(
                    f"`--video` does not apply to `{spec.name}`: it is for `mute-seat` and "
                    "`unmute-seat`",
                    spec.usage,
                )
            options.video = True
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
    problem = reason_problem(reason)
    if problem is not None:
        raise ParseError(problem, spec.usage)
    return reason, end


def _for(tokens: list[Token], after: int, spec: VerbSpec) -> tuple[str, int]:
    """The duration text of the `--for` at `tokens[after - 1]` (`--for 2h`, `--for=2h`), and the
    index of the word after it. One word: `1h30m`, or a quoted `"1h 30m"`."""
    return _option_value(tokens, after, spec, "--for", needs="a duration, e.g. --for 2h")


def _option_value(
    tokens: list[Token], after: int, spec: VerbSpec, name: str, *, needs: str | None = None
) -> tuple[str, int]:
    """The one-word value of the option `name` at `tokens[after - 1]` (`--since 2h`,
    `--since=2h`), and the index of the word after it; without one, a `ParseError` saying what
    it `needs` (by default a time)."""
    option = tokens[after - 1]
    _, eq, _ = option.prefix.partition("=")
    if eq:
        value, end = option.value[len(name) + 1 :], after
    elif after < len(tokens) and not tokens[after].is_option:
        value, end = tokens[after].value, after + 1
    else:
        value, end = "", after
    if not value.strip():
        what = needs or f"a time like {TIME_EXAMPLES}"
        raise ParseError(f"`{name}` needs {what}", spec.usage)
    return value, end


def _window_option(
    window: dict[str, str] | None, option: str, value: str, spec: VerbSpec
) -> dict[str, str]:
    if not spec.windowed:
        raise ParseError(
            f"`{option}` does not apply to `{spec.name}`: it is for `timeline`", spec.usage
        )
    window = dict(window or {})
    field = _WINDOW_OPTIONS[option]
    if field in window:
        raise ParseError(f"`{option}` is given twice; give it once", spec.usage)
    if (field == "since" and window) or (field != "since" and "since" in window):
        raise ParseError("give either `--since` or `--from`/`--to`, not both", spec.usage)
    try:
        window[field] = check_time(value, option)
    except InvalidValue as exc:
        raise ParseError(str(exc), spec.usage) from None
    return window


def _until_option(tokens: list[Token], start: int) -> list[Token]:
    end = start
    while end < len(tokens) and not tokens[end].is_option:
        end += 1
    return tokens[start:end]


def _refuse_options(options: _Options, spec: VerbSpec) -> None:
    given = (
        "--dry-run"
        if options.dry_run
        else "--reason"
        if options.reason is not None
        else "--for"
        if options.duration is not None
        else None
    )
    if given is not None:
        raise ParseError(
            f"`{given}` does not apply to `{spec.name}`: it changes nothing", spec.usage
        )


def _duration(options: _Options, spec: VerbSpec, max_timebox: int) -> int | None:
    if options.duration is None:
        if spec.needs_duration:
            raise ParseError(
                f"`{spec.name}` needs `--for DURATION`, how long the ban lasts: "
                f"e.g. `{spec.example}`",
                spec.usage,
            )
        return None
    if spec.timeboxable:
        try:
            return parse_duration(
                options.duration,
                minimum=TIMEBOX_MIN_SECONDS,
                maximum=max(max_timebox, TIMEBOX_MIN_SECONDS),
                what="a time-boxed change",
            )
        except InvalidValue as exc:
            raise ParseError(f"--for: {exc}", spec.usage) from None
    if not spec.needs_duration:
        hint = (
            ": to keep members out for a time, use `/room ban ROOM USER... --for DURATION`"
            if spec.takes_accounts and not spec.seat_verb
            else ": it cannot be undone, so it cannot be time-boxed"
        )
        raise ParseError(f"`--for` does not apply to `{spec.name}`{hint}", spec.usage)
    try:
        return parse_duration(options.duration)
    except InvalidValue as exc:
        raise ParseError(f"--for: {exc}", spec.usage) from None


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
        _refuse_assignment(rest[0], spec)
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


def _refuse_assignment(first: Token, spec: VerbSpec) -> None:
    """`rename r1 name=X` would name the room "name=X": refuse `set` syntax in a text verb."""
    match = _KEY_WORD.match(first.prefix)
    if match is None or lookup_key(match.group(0)[:-1]) is None:
        return
    raise ParseError(
        f"`{spec.name}` takes the text itself, not {shown(match.group(0))}: "
        f"e.g. `{spec.example}`, or `/room set ROOM KEY=VALUE...` "
        "(quote the text to mean it literally)",
        spec.usage,
    )


def _settings(text: str, args: list[Token], spec: VerbSpec) -> tuple[list[Token], dict[str, Any]]:
    """Rooms, then assignments: the rule `help set` states.

    Every word before the first assignment is a room (a quoted word even with `=` inside; an
    unquoted word with `=` is an assignment). After it, a word shaped `KEY=` starts the next
    assignment and any other word belongs to the value before it.
    """
    rooms: list[Token] = []
    assignments: list[tuple[Token, SettingKey, list[Token]]] = []
    for token in args:
        if not assignments and "=" not in token.prefix:
            rooms.append(token)
        elif not assignments or _KEY_WORD.match(token.prefix):
            key = token.prefix.partition("=")[0]
            assignments.append((token, _setting(key, token, bool(assignments), spec), []))
        else:
            assignments[-1][2].append(token)
    if not assignments:
        raise ParseError("`set` needs at least one KEY=VALUE, e.g. audio=off", spec.usage)
    if not rooms:
        raise ParseError(
            "`set` needs at least one room ID, before the first KEY=VALUE: "
            "e.g. `/room set room-1 audio=off`",
            spec.usage,
        )
    changes: dict[str, Any] = {}
    said: dict[str, str] = {}  # field -> the assignment that set it, for conflict messages
    for token, setting, more in assignments:
        typed = raw_text(text, [token, *more])
        value = _converted(setting, _assigned(typed, token, setting, more, spec), spec)
        field = setting.field
        if field in changes and changes[field] != value:
            raise ParseError(
                f"conflicting values for {field}: {shown(said[field])} and {shown(typed)}",
                spec.usage,
            )
        changes[field], said[field] = value, typed
    return rooms, changes


def _setting(key: str, token: Token, after_value: bool, spec: VerbSpec) -> SettingKey:
    setting = lookup_key(key)
    if setting is not None:
        return setting
    hint = (
        did_you_mean(key, [k.key for k in SET_KEYS.values()])
        or " — see `/room help set` for the keys"
    )
    where = (
        "; a word shaped KEY= always starts a new setting, so quote a value that contains one"
        if after_value
        else ""
    )
    raise ParseError(
        f"unknown setting {shown(key)} in {shown(token.value)}{hint}{where}", spec.usage
    )


def _assigned(
    typed: str, token: Token, setting: SettingKey, more: list[Token], spec: VerbSpec
) -> str:
    """The value text of one assignment: its word after `KEY=`, or, for `name` and `custom`,
    everything up to the next assignment as typed."""
    key_end = token.prefix.index("=") + 1
    if not more:
        return token.value[key_end:]
    stray = shown(more[0].value)
    if token.quoted is not None and len(token.prefix) == key_end:
        raise ParseError(
            f"{stray} follows the quoted value of {shown(token.prefix[:-1])}: a quoted value ends "
            "at its closing quote, and rooms go before the first KEY=VALUE",
            spec.usage,
        )
    if setting.field not in TEXT_FIELDS:
        raise ParseError(
            f"{stray} follows {shown(token.value)}, whose value is one word: rooms go before the "
            "first KEY=VALUE, and only `name` and `custom` values run on over spaces",
            spec.usage,
        )
    # The value as typed, spacing and quotes kept, without the space after a bare `KEY=`.
    return typed[key_end:].lstrip()


def _room_and_accounts(args: list[Token], spec: VerbSpec) -> tuple[list[Token], tuple[str, ...]]:
    if not args:
        raise ParseError(f"`{spec.name}` needs a room ID, then account IDs", spec.usage)
    room, rest = args[0], args[1:]
    if not rest:
        raise ParseError(
            f"`{spec.name}` needs at least one account ID after the room ID ({_MEMBERS_HINT})",
            spec.usage,
        )
    typed = {token.value: token for token in reversed(rest)}  # the first token of each value
    accounts = tuple(dict.fromkeys(token.value for token in rest))
    if len(accounts) > MAX_ACCOUNTS:
        raise ParseError(
            f"too many accounts: {len(accounts)} given, at most {MAX_ACCOUNTS} per command "
            "(split the request)",
            spec.usage,
        )
    for account in accounts:
        _check_account(typed[account], spec)
    return [room], accounts


def _room_and_seats(args: list[Token], spec: VerbSpec) -> tuple[list[Token], tuple[int, ...]]:
    """One room, then seat indexes: whole numbers, de-duplicated in the order given. Whether the
    room has those seats is known only from its seat list, read before any change is sent."""
    if not args:
        raise ParseError(f"`{spec.name}` needs a room ID, then seat indexes", spec.usage)
    room, rest = args[0], args[1:]
    if not rest:
        raise ParseError(
            f"`{spec.name}` needs at least one seat index after the room ID ({_SEATS_HINT})",
            spec.usage,
        )
    seats: dict[int, None] = {}
    for token in rest:
        value = token.value.strip()
        if not _INTEGER.fullmatch(value):
            raise ParseError(
                f"seat index {shown(token.value)} must be a whole number ({_SEATS_HINT})",
                spec.usage,
            )
        index = int(value)
        if index > SEAT_INDEX_MAX:
            raise ParseError(
                f"seat index {shown(value)} is too large (at most {SEAT_INDEX_MAX}; {_SEATS_HINT})",
                spec.usage,
            )
        seats.setdefault(index)
    if len(seats) > MAX_SEATS:
        raise ParseError(
            f"too many seats: {len(seats)} given, at most {MAX_SEATS} per command "
            "(split the request)",
            spec.usage,
        )
    return [room], tuple(seats)


def _check_account(token: Token, spec: VerbSpec) -> None:
    account = token.value
    if account.startswith("<@"):
        raise ParseError(f"{shown(account)}: that is a Slack user; {_MEMBERS_HINT}", spec.usage)
    if _MENTION.match(account):
        raise ParseError(
            f"{shown(account)}: that looks like a Slack mention; {_MEMBERS_HINT}", spec.usage
        )
    if not token.fully_quoted and looks_like_duration(account):
        raise ParseError(
            f"{shown(account)} looks like part of a duration: write it in one word, "
            "e.g. `--for 1h30m` (quote it if it really is an account ID)",
            spec.usage,
        )
    problem = account_id_problem(account)
    if problem is not None:
        raise ParseError(problem, spec.usage)


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
