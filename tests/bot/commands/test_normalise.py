"""What Slack and its clients do to typed text, undone before splitting; and the splitting."""

from __future__ import annotations

import sys

import pytest

from bot.commands import Command, parse_command
from bot.commands.normalise import ODD_WHITESPACE, normalise
from bot.commands.tokens import quote, tokenise

NORMALISED = [
    # Slack's three entities, decoded once
    ("a &amp; b", "a & b"),
    ("&lt;x&gt;", "<x>"),
    ("&amp;lt;", "&lt;"),
    ("&AMP; &quot; &#38;", "&AMP; &quot; &#38;"),
    # smart quotes
    ("\u201cWeekly sync\u201d", '"Weekly sync"'),
    ("\u201eLow\u201f", '"Low"'),
    ("\u2018Weekly sync\u2019", "'Weekly sync'"),
    ("Bob\u2019s", "Bob's"),
    ("\u201a\u201b", "''"),
    # an em or en dash typed as --
    ("\u2014dry-run", "--dry-run"),
    ("x \u2014dry-run", "x --dry-run"),
    ("x \u2013reason y", "x --reason y"),
    ("x \u2014-dry-run", "x --dry-run"),
    ("x\u00a0\u2014dry-run", "x --dry-run"),
    ("Team \u2014 Sync", "Team \u2014 Sync"),
    ("a\u2014b", "a\u2014b"),
    # odd whitespace becomes a space; zero-width characters go; emoji joiners stay
    ("a\u00a0b", "a b"),
    ("a\u202fb\u2007c\u3000d", "a b c d"),
    ("a\tb\nc\r\nd", "a b c  d"),
    ("a\u2028b\u2029c\x85d", "a b c d"),
    ("a\u200bb\u2060c\ufeffd", "abcd"),
    ("\U0001f468\u200d\U0001f469", "\U0001f468\u200d\U0001f469"),
    # link markup reduced to the label
    ("<http://room.example.com|room.example.com>", "room.example.com"),
    ("<https://example.com/a?b=c|docs>", "docs"),
    ("<https://example.com/x>", "https://example.com/x"),
    ("<http://x|>", "http://x"),
    ("<mailto:ops@example.com|ops@example.com>", "ops@example.com"),
    ("<mailto:ops@example.com>", "ops@example.com"),
    ("<http://a.b|a &amp; b>", "a & b"),
    # mentions are left for the parser to refuse
    ("<@U012ABCDEF>", "<@U012ABCDEF>"),
    ("<#C012ABCDE|general>", "<#C012ABCDE|general>"),
    ("<!here>", "<!here>"),
    # a typed literal `<` arrives escaped and is not markup
    ("&lt;http://x|y&gt;", "<http://x|y>"),
    # a stray /room prefix, and the ends
    ("/room mute-all x", "mute-all x"),
    ("  /ROOM\u00a0mute-all x  ", "mute-all x"),
    ("/room", ""),
    ("/rooms x", "/rooms x"),
    ("mute-all /room", "mute-all /room"),
    # lone surrogates cannot be sent as UTF-8
    ("a\ud800b", "a\ufffdb"),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALISED)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_odd_whitespace_is_every_space_python_knows_but_the_plain_one() -> None:
    spaces = {chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace()}
    assert set(ODD_WHITESPACE) == spaces - {" "}


# -- the same cases through the parser ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rename r1 \u201cWeekly sync\u201d \u2014dry-run",
            Command("rename", ("r1",), {"RoomName": "Weekly sync"}, dry_run=True),
        ),
        (
            "rename r1 \u2018Bob\u2019s room\u2019",
            Command("rename", ("r1",), {"RoomName": "Bob's room"}),
        ),
        ("rename r1 Q&amp;A", Command("rename", ("r1",), {"RoomName": "Q&A"})),
        ("rename r1 a &lt;b&gt;", Command("rename", ("r1",), {"RoomName": "a <b>"})),
        (
            "rename\u00a0r1\u00a0Town\u00a0hall",
            Command("rename", ("r1",), {"RoomName": "Town hall"}),
        ),
        (
            "rename r1 Team \u2014 Sync",
            Command("rename", ("r1",), {"RoomName": "Team \u2014 Sync"}),
        ),
        (
            "mute-all <http://room.example.com|room.example.com>",
            Command("mute-all", ("room.example.com",), {"IsAudioDisabled": True}),
        ),
        (
            "set-custom r1 <mailto:ops@example.com|ops@example.com>",
            Command("set-custom", ("r1",), {"CustomInfo": "ops@example.com"}),
        ),
        (
            "/room mute-all r1 \u2013reason \u201cspam bot\u201d",
            Command("mute-all", ("r1",), {"IsAudioDisabled": True}, reason="spam bot"),
        ),
        (
            "set r1 name=\u201cTown hall\u201d audio=off",
            Command("set", ("r1",), {"RoomName": "Town hall", "IsAudioDisabled": True}),
        ),
        (
            "mute-all\u3000r1\u200b\u00a0r2",
            Command("mute-all", ("r1", "r2"), {"IsAudioDisabled": True}),
        ),
        ("\u201cmute-all\u201d r1", Command("mute-all", ("r1",), {"IsAudioDisabled": True})),
    ],
)
def test_slack_client_input_parses_as_meant(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


# -- splitting into words -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a  b\tc", ["a", "b", "c"]),
        ('"a b" c', ["a b", "c"]),
        ("'a b' c", ["a b", "c"]),
        ("Bob's room", ["Bob's", "room"]),
        ("'Bob's room'", ["Bob's room"]),
        ('"unclosed a b', ['"unclosed', "a", "b"]),
        ('a"b c"', ['a"b', 'c"']),
        ('name="a b" x', ["name=a b", "x"]),
        ("k='a b'", ["k=a b"]),
        ('"a\\"b"', ['a"b']),
        ('"a\\\\" b', ["a\\", "b"]),
        ('"C:\\path"', ["C:\\path"]),
        ("'a\\' b", ["a\\", "b"]),
        ('"abc"def x"', ['abc"def x']),
        ('"abc"def x', ['"abc"def', "x"]),
        ('""', [""]),
        ("", []),
    ],
)
def test_tokenise(text: str, words: list[str]) -> None:
    assert [token.value for token in tokenise(text)] == words


def test_tokenise_marks_options_and_quoted_words() -> None:
    tokens = tokenise('--dry-run "--dry-run" -- --5 --reason="x y"')
    assert [t.is_option for t in tokens] == [True, False, False, False, True]
    assert [t.fully_quoted for t in tokens] == [False, True, False, False, False]
    assert tokens[-1].prefix == "--reason="
    assert tokens[-1].quoted == "x y"


def test_tokenise_is_fast_on_many_quotes_that_never_close() -> None:
    # O(n^2) scanning would take minutes here; the precomputed closers keep it linear-ish.
    text = '="x ' * 50_000
    assert len(tokenise(text)) == 50_000


@pytest.mark.parametrize(
    "value",
    ["plain", "a b", 'say "hi"', "back\\slash\\", "&amp; &lt; <x>", "it's", "--dry-run", ""],
)
def test_quote_round_trips_through_normalise_and_tokenise(value: str) -> None:
    (token,) = tokenise(normalise(quote(value) + " "))
    assert token.value == value
    assert token.fully_quoted
