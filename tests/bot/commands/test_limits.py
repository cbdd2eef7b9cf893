"""Issue #12 item 9: no one can make roombot parse, echo or store an absurd amount of text.

The command length is capped before anything else, messages quote only short excerpts, and
`clip_for_audit` bounds what is stored per text.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import (
    AUDIT_TEXT_MAX_CHARS,
    DEFAULT_MAX_ROOMS,
    GENERAL_USAGE,
    MAX_COMMAND_CHARS,
    ParseError,
    clip_for_audit,
    max_command_chars,
    normalise,
    parse_command,
)
from bot.commands.verbs import VERB_WORDS
from bot.models import excerpt, max_member_count_problem, room_id_problem

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _error(text: str, **kwargs: int) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_command(text, **kwargs)
    return info.value


def _rooms(count: int) -> str:
    return " ".join(f"{i:048d}" for i in range(count))  # distinct, 48 characters each


# -- the length cap ----------------------------------------------------------------------------


def test_the_cap_is_derived_from_500_rooms_of_48_bytes_and_the_largest_values() -> None:
    # 500 rooms and their spaces, a 1000-byte reason, a 100-byte name and 500 bytes of custom
    # info each escaped up to 5 times by Slack, and 1000 characters for everything else.
    assert MAX_COMMAND_CHARS == 500 * 49 + 5 * (1000 + 100 + 500) + 1000 == 33_500
    assert max_command_chars() == max_command_chars(DEFAULT_MAX_ROOMS) == MAX_COMMAND_CHARS
    assert max_command_chars(2) == MAX_COMMAND_CHARS  # a lower room limit never lowers it
    assert max_command_chars(10_000) == MAX_COMMAND_CHARS + 9_500 * 49


def test_the_largest_valid_commands_are_admitted() -> None:
    reason = "&amp;" * 1000  # 1000 bytes once unescaped, 5000 characters as Slack sends them
    lockdown = f"lockdown {_rooms(500)} --dry-run --reason {reason}"
    command = parse_command(lockdown)
    assert len(command.rooms) == 500
    assert command.reason == "&" * 1000
    name, custom = "&amp;" * 100, "&amp;" * 500
    keys = "audio=off video=off chat=off screenshare=off recording=off max-members=2147483647"
    biggest_set = (
        f"set {_rooms(500)} {keys} seat-mode=apply name={name} custom={custom} "
        f"--dry-run --reason {reason}"
    )
    assert len(biggest_set) <= MAX_COMMAND_CHARS
    command = parse_command(biggest_set)
    assert (len(command.rooms), command.changes["CustomInfo"]) == (500, "&" * 500)


def test_longer_text_is_refused_first_without_echoing_it() -> None:
    for text in ("mute-all " + "x" * 40_000, " " * (MAX_COMMAND_CHARS + 1), "z" * 10**6):
        err = _error(text)
        assert err.message == (
            f"the command is {len(text):,} characters long; the limit is 33,500 "
            "(split it into several commands)"
        )
        assert err.usage == GENERAL_USAGE
    just_over = "mute-all r1 " + " " * (MAX_COMMAND_CHARS - len("mute-all r1 ") + 1)
    assert "the limit is 33,500" in _error(just_over).message
    assert parse_command(just_over[:-1]).rooms == ("r1",)


def test_a_raised_room_limit_raises_the_cap_to_match() -> None:
    text = f"mute-all {_rooms(1_000)}"
    assert len(text) > MAX_COMMAND_CHARS
    assert "characters long" in _error(text).message
    assert len(parse_command(text, max_rooms=1_000).rooms) == 1_000


# -- messages quote excerpts only --------------------------------------------------------------

LONG = "".join(chr(0x41 + i % 26) for i in range(5_000))  # ABC…XYZABC…, 5000 characters

#: Every place input can stand, each filled with a 5000-character word.
TEMPLATES = [
    "{}",
    "mute-all {}",
    "mute-all r1 --{}",
    "--{} mute-all",
    "rename r1 {}",
    "set-custom r1 {}",
    "set-capacity r1 {}",
    "set-capacity r1 9{}",
    "seat-mode r1 {}",
    "set r1 {}=off",
    "set r1 audio={}",
    "set r1 name={}",
    "set r1 audio=off {}",
    'set r1 name="x" {}',
    "set r1 name=x {}=y",
    "set r1 audio=off audio={}",
    "help {}",
    "mute-all r1 --reason {}",
    "kick r1 {}",
    "kick r1 <@{}>",
    "kick {} u1",
    "ban r1 u1 --for {}",
    "ban r1 u1 --for 1{}",
    "ban r1 u1 --for {}1d",
    'kick r1 "a b{}"',
    "mute-all <@{}>",
    "mute-all {}会",
]


def _echoes(message: str, text: str) -> str | None:
    """A run of more than 45 characters of the message that is also in the input, if any."""
    sources = (text, normalise(text))
    for start in range(max(0, len(message) - 45)):
        window = message[start : start + 46]
        if any(window in source for source in sources):
            return window
    return None


@pytest.mark.parametrize("template", TEMPLATES)
def test_no_message_quotes_more_than_an_excerpt(template: str) -> None:
    text = template.format(LONG)
    err = _error(text)
    assert len(err.message) <= 300, err.message
    assert _echoes(err.message, text) is None, err.message
    assert LONG[:41] not in err.message


_WORDS = st.one_of(
    st.sampled_from([*VERB_WORDS, "r1", "u1", "audio=off", "name=", "--reason", "--for", "2h"]),
    st.text(min_size=50, max_size=600),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=50, max_size=600),
)


@_SETTINGS
@given(st.lists(_WORDS, min_size=1, max_size=6), st.sampled_from([" ", "=", ""]))
def test_no_message_quotes_more_than_an_excerpt_of_any_text(words: list[str], sep: str) -> None:
    text = " ".join(word if i % 2 else word + sep for i, word in enumerate(words))
    message = _message(text)
    assert len(message) <= 400
    assert _echoes(message, text) is None, message


def _message(text: str) -> str:
    try:
        parse_command(text)
    except ParseError as err:
        return err.message
    return ""


def test_model_rules_quote_excerpts_too() -> None:
    assert excerpt("abc") == "'abc'"
    assert excerpt("x" * 41) == "'" + "x" * 39 + "'…"
    problem = room_id_problem("r" * 10_000)
    assert problem == f"room ID '{'r' * 39}'… is 10000 bytes; the limit is 48"
    problem = max_member_count_problem(-(10**60))
    assert problem is not None
    assert len(problem) < 100
    problem = max_member_count_problem(10**4000)
    assert problem == "member limit a number of 13288 bits is too large (at most 2147483647)"


# -- clip_for_audit ----------------------------------------------------------------------------


def test_clip_keeps_short_text_whole() -> None:
    assert clip_for_audit("") == ""
    assert clip_for_audit("mute-all r1") == "mute-all r1"
    whole = "x" * AUDIT_TEXT_MAX_CHARS
    assert clip_for_audit(whole) == whole


def test_clip_keeps_a_head_and_says_how_much_was_cut() -> None:
    text = "mute-all " + "x" * 39_991
    clipped = clip_for_audit(text)
    assert len(clipped) == AUDIT_TEXT_MAX_CHARS == 2_000
    assert clipped.startswith("mute-all xxx")
    assert clipped.endswith("…[cut 38,029 more characters]")
    assert clipped.index("…") == 1_971  # 1,971 kept + 38,029 cut = 40,000


def test_clip_refuses_a_limit_too_small_for_its_note() -> None:
    with pytest.raises(ValueError, match="at least 64"):
        clip_for_audit("x" * 100, limit=10)


_NOTE = re.compile(r"…\[cut ([0-9,]+) more characters\]\Z")


@_SETTINGS
@given(st.text(max_size=3_000), st.integers(min_value=64, max_value=2_500))
def test_clip_is_at_most_the_limit_and_accounts_for_every_character(text: str, limit: int) -> None:
    clipped = clip_for_audit(text, limit)
    if len(text) <= limit:
        assert clipped == text
        return
    assert len(clipped) == limit
    match = _NOTE.search(clipped)
    assert match is not None
    kept = match.start()
    assert clipped[:kept] == text[:kept]
    assert kept + int(match.group(1).replace(",", "")) == len(text)
