"""Properties of the parser over generated input: it fails only with ParseError, canonical text
parses back to the same command, and the UTF-8 byte limits hold for any Unicode."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import VERBS, ArgForm, Command, ParseError, parse_command
from bot.commands.normalise import ODD_WHITESPACE
from bot.commands.tokens import quote
from bot.commands.verbs import VERB_WORDS
from bot.models import BOOL_FIELDS, TakeSeatMode, utf8_len

# deadline=None: a noisy CI machine must not turn a slow example into a failure.
_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters `normalise` rewrites. A parsed value never contains them, so a hand-built command
# with them cannot round-trip and the generators below leave them out.
_REWRITTEN = (
    ODD_WHITESPACE + "\u200b\u2060\ufeff" + "\u201c\u201d\u201e\u201f\u2018\u2019\u201a\u201b"
) + "\u2014\u2013"
_VALUE_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters=_REWRITTEN)
_values = st.text(_VALUE_CHARS, max_size=40)

_room_ids = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=48
).filter(lambda room: not room.startswith(("<@", "<#", "<!")))

# Pieces of text that exercise every rule: verbs, options, quotes of every kind, entities,
# markup, mentions, dashes, odd spaces, assignments and numbers.
_FRAGMENTS = st.one_of(
    st.sampled_from(
        [
            *VERB_WORDS,
            "--dry-run",
            "--reason",
            "--reason=",
            "--bogus",
            "--",
            '"',
            "'",
            "\u201c",
            "\u201d",
            "\u2019",
            "\u2014",
            "\u2014dry-run",
            "&amp;",
            "&lt;",
            "&gt;",
            "<http://x.com|x.com>",
            "<mailto:a@b.c>",
            "<@U012ABC>",
            "<#C012|gen>",
            "audio=off",
            "IsVideoDisabled=true",
            "name=",
            "custom=",
            "seat-mode=free",
            "max-members=",
            "free",
            "apply",
            "42",
            "-1",
            "2.5",
            "/room",
            "\\",
            "=",
            "\u00a0",
            "\u200b",
            "room-1",
            "room-2",
        ]
    ),
    _room_ids,
    st.text(max_size=6),
)
_SEPARATORS = st.sampled_from([" ", " ", "", "\u00a0", "  ", "\t"])


def _outcome(text: str) -> Command | ParseError:
    try:
        return parse_command(text)
    except ParseError as err:
        return err


@st.composite
def _command_like(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(_FRAGMENTS, _SEPARATORS), max_size=8))
    head = draw(st.sampled_from([*VERB_WORDS, ""]))
    return head + " " + "".join(fragment + sep for fragment, sep in parts)


@_SETTINGS
@given(st.one_of(st.text(), _command_like()))
def test_any_text_gives_a_command_or_a_parse_error(text: str) -> None:
    command = _outcome(text)  # anything but ParseError propagates and fails the test
    if isinstance(command, ParseError):
        assert command.message
        assert "\n" not in command.message
        return
    assert command.verb in VERBS
    for patch in command.patches():
        assert patch.body()["RoomInfo"]["RoomId"] in command.rooms


@_SETTINGS
@given(_command_like())
def test_parsed_text_round_trips_through_canonical_text(text: str) -> None:
    try:
        command = parse_command(text)
    except ParseError:
        return
    assert parse_command(command.canonical_text()) == command


# -- hand-built commands -----------------------------------------------------------------------


def _field_values(field: str) -> st.SearchStrategy[Any]:
    if field in BOOL_FIELDS:
        return st.booleans()
    if field == "MaxMemberCount":
        return st.integers(min_value=1, max_value=2**31 - 1)
    if field == "TakeSeatMode":
        return st.sampled_from([mode.value for mode in TakeSeatMode])
    if field == "RoomName":
        return _values.filter(lambda v: 1 <= utf8_len(v) <= 100)
    return st.text(_VALUE_CHARS, max_size=120).filter(lambda v: utf8_len(v) <= 500)


@st.composite
def _commands(draw: st.DrawFn) -> Command:
    spec = draw(st.sampled_from(list(VERBS.values())))
    if spec.form is ArgForm.TOPIC:
        return Command(spec.name, (), topic=draw(st.none() | st.sampled_from(list(VERBS))))
    many = spec.form in (ArgForm.ROOMS, ArgForm.ROOMS_SETTINGS)
    rooms = draw(st.lists(_room_ids, min_size=1, max_size=5 if many else 1, unique=True))
    if spec.sets:
        changes: dict[str, Any] = dict(spec.sets)
    elif spec.form is ArgForm.ROOMS_SETTINGS:
        fields = draw(st.lists(st.sampled_from(spec.fields), min_size=1, unique=True))
        changes = {field: draw(_field_values(field)) for field in fields}
    else:
        changes = {field: draw(_field_values(field)) for field in spec.fields}
    write = bool(changes)
    reason = draw(st.none() | _values.filter(str.strip)) if write else None
    return Command(
        spec.name,
        tuple(rooms),
        changes,
        dry_run=write and draw(st.booleans()),
        reason=reason,
    )


@_SETTINGS
@given(_commands())
def test_canonical_text_parses_to_the_same_command(command: Command) -> None:
    assert parse_command(command.canonical_text()) == command


# -- byte limits -------------------------------------------------------------------------------

# Characters of 1, 2, 3 and 4 UTF-8 bytes, so generated text lands on both sides of a limit.
_WIDE = st.sampled_from(["a", " ", "\u00e9", "\u4f1a", "\U0001f600"])


def _around(limit: int) -> st.SearchStrategy[str]:
    """Text of arbitrary Unicode that is often near `limit` bytes: a random part, then padding."""
    padding = st.text(_WIDE, min_size=limit // 4, max_size=limit // 2 + 10)
    return st.just("") | st.builds(lambda head, pad: head + pad, _values, padding)


@_SETTINGS
@given(st.text(max_size=130))
def test_a_parsed_room_name_is_always_1_to_100_bytes(name: str) -> None:
    for text in (f"rename r1 {quote(name)}", f"set r1 name={quote(name)}", f"rename r1 {name}"):
        try:
            command = parse_command(text)
        except ParseError:
            continue
        assert 1 <= utf8_len(command.changes["RoomName"]) <= 100


@_SETTINGS
@given(_around(100))
def test_room_name_limit_is_exactly_100_utf8_bytes(name: str) -> None:
    size = utf8_len(name)
    command = _outcome(f"rename r1 {quote(name)}")
    if isinstance(command, ParseError):
        assert size == 0 or size > 100
        assert ("cannot be empty" if size == 0 else f"{size} bytes") in command.message
        return
    assert command.changes == {"RoomName": name}
    assert 1 <= size <= 100


@_SETTINGS
@given(_around(500))
def test_custom_info_limit_is_exactly_500_utf8_bytes(info: str) -> None:
    size = utf8_len(info)
    command = _outcome(f"set r1 custom={quote(info)}")
    if isinstance(command, ParseError):
        assert size > 500
        assert f"{size} bytes" in command.message
        return
    assert command.changes == {"CustomInfo": info}
    assert size <= 500


@_SETTINGS
@given(st.text(max_size=200))
def test_parsed_custom_info_is_never_over_500_bytes(info: str) -> None:
    try:
        command = parse_command(f"set-custom r1 {info}")
    except ParseError:
        return
    assert utf8_len(command.changes["CustomInfo"]) <= 500
