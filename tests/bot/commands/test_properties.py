"""Properties of the parser over generated input: it fails only with ParseError, canonical text
parses back to the same command, the UTF-8 byte limits hold for any Unicode, member calls never
carry more than 20 accounts, and durations round-trip."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import (
    BAN_MAX_SECONDS,
    MAX_ACCOUNTS,
    VERBS,
    ArgForm,
    Command,
    InvalidValue,
    ParseError,
    VerbKind,
    format_duration,
    parse_command,
    parse_duration,
)
from bot.commands.normalise import ODD_WHITESPACE
from bot.commands.tokens import quote
from bot.commands.verbs import VERB_WORDS
from bot.commands.window import WindowSpec
from bot.models import (
    BOOL_FIELDS,
    SEAT_INDEX_MAX,
    MemberCall,
    TakeSeatMode,
    account_id_problem,
    utf8_len,
)

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
            "u1",
            "user_42",
            "--for",
            "--for=",
            "--video",
            "--video=x",
            "0",
            "007",
            "town-hall",
            "2h",
            "1h30m",
            "30m",
            "0s",
            "bridge",
            '{"a":',
            "1}",
            '{"a=b":',
            "x=y",
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
    for call in command.calls("U012ABCDEF"):  # building a call validates it
        assert call.room_id in command.rooms


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


_account_ids = st.text(
    st.characters(
        exclude_categories=["Cs", "Cc", "Cf", "Co", "Cn", "Zs", "Zl", "Zp"],
        exclude_characters=_REWRITTEN,
    ),
    min_size=1,
    max_size=32,
).filter(lambda a: account_id_problem(a) is None and not a.startswith(("<@", "<#", "<!")))


@st.composite
def _commands(draw: st.DrawFn) -> Command:
    spec = draw(st.sampled_from(list(VERBS.values())))
    if spec.form is ArgForm.TOPIC:
        return Command(spec.name, (), topic=draw(st.none() | st.sampled_from(list(VERBS))))
    if spec.takes_seats:
        sets = draw(
            st.sampled_from([spec.sets, spec.video_sets] if spec.video_sets else [spec.sets])
        )
        indexes = st.integers(min_value=0, max_value=SEAT_INDEX_MAX)
        return Command(
            spec.name,
            (draw(_room_ids),),
            dict(sets),
            dry_run=draw(st.booleans()),
            reason=draw(st.none() | _values.filter(str.strip)),
            seats=tuple(draw(st.lists(indexes, min_size=1, max_size=12, unique=True))),
        )
    if spec.takes_accounts or spec.api == "destroy_room":
        accounts = draw(st.lists(_account_ids, min_size=1, max_size=25, unique=True))
        return Command(
            spec.name,
            (draw(_room_ids),),
            dry_run=draw(st.booleans()),
            reason=draw(st.none() | _values.filter(str.strip)),
            accounts=tuple(accounts) if spec.takes_accounts else (),
            duration_s=(
                draw(st.integers(min_value=1, max_value=BAN_MAX_SECONDS))
                if spec.needs_duration
                else None
            ),
        )
    if spec.windowed:
        times = st.sampled_from(["2h", "1d", "1h30m", "14:05", "2026-12-07", "2026-12-07T14:05Z"])
        since = draw(st.none() | times)
        start, end = (None, None) if since else (draw(st.none() | times), draw(st.none() | times))
        return Command(
            spec.name,
            tuple(draw(st.lists(_room_ids, max_size=5, unique=True))),
            window=WindowSpec(since=since, start=start, end=end),
        )
    many = spec.form in (ArgForm.ROOMS, ArgForm.ROOMS_SETTINGS)
    rooms = draw(st.lists(_room_ids, min_size=1, max_size=5 if many else 1, unique=True))
    if spec.sets:
        changes: dict[str, Any] = dict(spec.sets)
    elif spec.form is ArgForm.ROOMS_SETTINGS:
        fields = draw(st.lists(st.sampled_from(spec.fields), min_size=1, unique=True))
        changes = {field: draw(_field_values(field)) for field in fields}
    else:
        changes = {field: draw(_field_values(field)) for field in spec.fields}
    write = spec.kind is VerbKind.WRITE
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


# -- member calls and durations ----------------------------------------------------------------


@_SETTINGS
@given(
    st.lists(_account_ids, min_size=1, max_size=MAX_ACCOUNTS, unique=True),
    st.sampled_from(["kick", "ban", "unban"]),
    st.none() | _values.filter(str.strip),
)
def test_a_member_call_never_carries_more_than_20_accounts(
    accounts: list[str], verb: str, reason: str | None
) -> None:
    command = Command(
        verb,
        ("room-test",),
        reason=reason,
        accounts=tuple(accounts),
        duration_s=3_600 if verb == "ban" else None,
    )
    calls = command.calls("U012ABCDEF")
    assert all(isinstance(call, MemberCall) for call in calls)
    bodies = [call.body() for call in calls]
    assert all(1 <= len(body["MemberList_Account"]) <= 20 for body in bodies)
    assert len(bodies) == -(-len(accounts) // 20)  # as few calls as the limit allows
    assert [a for body in bodies for a in body["MemberList_Account"]] == accounts
    if verb != "unban":
        assert {body["Reason"] for body in bodies} == {reason or "by U012ABCDEF via roombot"}


@_SETTINGS
@given(st.integers(min_value=1, max_value=BAN_MAX_SECONDS))
def test_durations_round_trip(seconds: int) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert parse_command(f"ban r1 u1 --for {text}").duration_s == seconds


_UNITS = st.sampled_from(["s", "m", "h", "d", "w", "min", "hours", "Days", "SEC"])


@_SETTINGS
@given(st.lists(st.tuples(st.integers(0, 400), _UNITS, st.sampled_from(["", " "])), min_size=1))
def test_any_typed_duration_means_what_its_canonical_form_means(
    parts: list[tuple[int, str, str]],
) -> None:
    text = "".join(f"{count}{unit}{space}" for count, unit, space in parts)
    try:
        seconds = parse_duration(text)
    except InvalidValue:
        return
    assert 1 <= seconds <= BAN_MAX_SECONDS
    assert parse_duration(format_duration(seconds)) == seconds


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
