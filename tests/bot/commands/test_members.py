"""The member verbs (issue #16): members, kick, ban, unban, banned, destroy.

Table-driven: what each text parses to, the exact body of every call it makes, and every error.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.commands import (
    BAN_MAX_SECONDS,
    MAX_ACCOUNTS,
    VERBS,
    Command,
    ParseError,
    format_duration,
    parse_command,
    parse_duration,
    render_verb_help,
)
from bot.commands.values import InvalidValue
from bot.models import DestroyCall, MemberApi, MemberCall, RoomPatch

ME = "U012ABCDEF"


def _error(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_command(text)
    return info.value


def _bodies(text: str, requester: str = ME) -> list[dict[str, Any]]:
    return [call.body() for call in parse_command(text).calls(requester)]


# -- what the text means -----------------------------------------------------------------------

PARSED: list[tuple[str, Command]] = [
    ("members room-test", Command("members", ("room-test",))),
    ("banned room-test", Command("banned", ("room-test",))),
    ("kick room-test u1", Command("kick", ("room-test",), accounts=("u1",))),
    ("kick room-test u1 u2 u1 u3", Command("kick", ("room-test",), accounts=("u1", "u2", "u3"))),
    (
        'kick room-test user_42 --reason "spam links"',
        Command("kick", ("room-test",), reason="spam links", accounts=("user_42",)),
    ),
    (
        "kick --dry-run room-test u1 --reason spam",
        Command("kick", ("room-test",), dry_run=True, reason="spam", accounts=("u1",)),
    ),
    ("KICK room-test U1 u1", Command("kick", ("room-test",), accounts=("U1", "u1"))),
    (
        "ban room-test u1 --for 2h",
        Command("ban", ("room-test",), accounts=("u1",), duration_s=7_200),
    ),
    (
        "ban room-test --for=30m u1 u2",
        Command("ban", ("room-test",), accounts=("u1", "u2"), duration_s=1_800),
    ),
    (
        "ban room-test u1 --for 1h30m --reason abuse report --dry-run",
        Command(
            "ban",
            ("room-test",),
            dry_run=True,
            reason="abuse report",
            accounts=("u1",),
            duration_s=5_400,
        ),
    ),
    (
        'ban room-test u1 --for "1h 30m"',
        Command("ban", ("room-test",), accounts=("u1",), duration_s=5_400),
    ),
    ("unban room-test u1 u2", Command("unban", ("room-test",), accounts=("u1", "u2"))),
    ("destroy room-test", Command("destroy", ("room-test",))),
    (
        'destroy room-test --dry-run --reason "incident closed"',
        Command("destroy", ("room-test",), dry_run=True, reason="incident closed"),
    ),
    # Account IDs are whatever Room Engine uses: case kept, punctuation and non-ASCII allowed.
    (
        "kick room-test alice@example.com 会议-7 a=b",
        Command("kick", ("room-test",), accounts=("alice@example.com", "会议-7", "a=b")),
    ),
    # A quoted word is an account as typed, even one shaped like a duration or an option.
    ('kick room-test "30m" "--x"', Command("kick", ("room-test",), accounts=("30m", "--x"))),
    ("kick room-test " + "a" * 32, Command("kick", ("room-test",), accounts=("a" * 32,))),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_member_verbs_parse(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


# -- the exact bodies --------------------------------------------------------------------------

BODIES: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "kick room-test u1 u2",
        [
            {
                "RoomId": "room-test",
                "MemberList_Account": ["u1", "u2"],
                "Reason": f"by {ME} via roombot",
            }
        ],
    ),
    (
        "kick room-test u1 --reason spam",
        [{"RoomId": "room-test", "MemberList_Account": ["u1"], "Reason": "spam"}],
    ),
    (
        "ban room-test u1 --for 7d",
        [
            {
                "RoomId": "room-test",
                "MemberList_Account": ["u1"],
                "Reason": f"by {ME} via roombot",
                "Duration": 604_800,
            }
        ],
    ),
    (
        "ban room-test u1 --for 90s --reason flood",
        [{"RoomId": "room-test", "MemberList_Account": ["u1"], "Reason": "flood", "Duration": 90}],
    ),
    # unban_room_member takes RoomId and MemberList_Account only; the reason is recorded, not sent.
    (
        "unban room-test u1 --reason appeal",
        [{"RoomId": "room-test", "MemberList_Account": ["u1"]}],
    ),
    ("destroy room-test --reason done", [{"RoomId": "room-test"}]),
    ("members room-test", []),
    ("banned room-test", []),
    ("show room-test", []),
    ("help ban", []),
]


@pytest.mark.parametrize(("text", "bodies"), BODIES)
def test_calls_carry_exactly_the_api_body(text: str, bodies: list[dict[str, Any]]) -> None:
    assert _bodies(text) == bodies


def test_body_key_order_is_the_api_order() -> None:
    (body,) = _bodies("ban room-test u1 --for 1m --reason x")
    assert json.dumps(body) == (
        '{"RoomId": "room-test", "MemberList_Account": ["u1"], "Reason": "x", "Duration": 60}'
    )


def test_call_types_say_which_api_they_call() -> None:
    command = parse_command("ban room-test u1 --for 1m")
    (call,) = command.calls(ME)
    assert isinstance(call, MemberCall)
    assert (call.api, call.room_id, call.accounts) == (MemberApi.BAN, "room-test", ("u1",))
    (destroy,) = parse_command("destroy room-test").calls(ME)
    assert isinstance(destroy, DestroyCall)
    assert destroy.api == "destroy_room"
    (patch,) = parse_command("mute-all room-test").calls(ME)
    assert isinstance(patch, RoomPatch)
    assert patch.api == "update_room_info"


def test_room_verbs_calls_are_their_patches_and_member_verbs_have_no_patches() -> None:
    for text in ("lockdown r1 r2", "set r1 name=X audio=off", "rename r1 A b"):
        command = parse_command(text)
        assert command.calls(ME) == command.patches()
    for text in ("kick r1 u1", "ban r1 u1 --for 1h", "unban r1 u1", "destroy r1", "members r1"):
        assert parse_command(text).patches() == []


def test_more_than_20_accounts_are_split_into_calls_of_at_most_20_in_order() -> None:
    accounts = [f"u{i}" for i in range(45)]
    calls = parse_command(f"ban room-test {' '.join(accounts)} --for 1h").calls(ME)
    assert [len(call.body()["MemberList_Account"]) for call in calls] == [20, 20, 5]
    assert [a for call in calls for a in call.body()["MemberList_Account"]] == accounts
    for call in calls:
        assert call.body()["Duration"] == 3_600
        assert call.body()["Reason"] == f"by {ME} via roombot"


def test_exactly_20_accounts_is_one_call_and_the_limit_per_command_is_100() -> None:
    assert len(parse_command("kick r1 " + " ".join(f"u{i}" for i in range(20))).calls(ME)) == 1
    most = " ".join(f"u{i}" for i in range(MAX_ACCOUNTS))
    assert len(parse_command(f"kick r1 {most} u0").calls(ME)) == 5
    err = _error(f"kick r1 {most} u{MAX_ACCOUNTS}")
    assert "too many accounts: 101 given, at most 100 per command" in err.message


def test_the_default_reason_names_the_requester() -> None:
    (call,) = parse_command("kick r1 u1").calls("U0OTHER")
    assert call.body()["Reason"] == "by U0OTHER via roombot"


# -- errors ------------------------------------------------------------------------------------

ERRORS: list[tuple[str, str, str]] = [
    # (text, a piece of the message, the usage line's verb)
    ("kick", "`kick` needs a room ID, then account IDs", "kick"),
    ("kick room-test", "`kick` needs at least one account ID after the room ID", "kick"),
    ("kick room-test", "USER is a Room Engine account ID; `/room members ROOM` lists them", "kick"),
    ("ban room-test --for 1h", "needs at least one account ID", "ban"),
    ("unban room-test --dry-run", "needs at least one account ID", "unban"),
    (
        "kick room-test <@U012ABCDEF>",
        "`<@U012ABCDEF>`: that is a Slack user; USER is a Room Engine account ID",
        "kick",
    ),
    ("ban room-test <@U012ABCDEF|alice> --for 1h", "that is a Slack user", "ban"),
    ("kick room-test <#C012|general>", "that looks like a Slack mention", "kick"),
    ("kick room-test <!here>", "that looks like a Slack mention", "kick"),
    ("kick <@U012ABCDEF> u1", "that looks like a Slack mention, not a room ID", "kick"),
    ('kick room-test ""', "an account ID cannot be empty", "kick"),
    ('kick room-test "a b"', "must be printable characters without spaces", "kick"),
    ("kick room-test " + "a" * 33, "is 33 bytes in UTF-8; the limit is 32", "kick"),
    ("kick room-test " + "会" * 11, "is 33 bytes in UTF-8", "kick"),
    ("ban room-test u1", "`ban` needs `--for DURATION`, how long the ban lasts", "ban"),
    ("ban room-test u1", "e.g. `/room ban room-test user_42 --for 2h", "ban"),
    ("ban room-test u1 --for", "`--for` needs a duration, e.g. --for 2h", "ban"),
    ("ban room-test u1 --for --dry-run", "`--for` needs a duration", "ban"),
    ("ban room-test u1 --for=", "`--for` needs a duration", "ban"),
    ("ban room-test u1 --for 1h --for 2h", "`--for` is given twice", "ban"),
    ("ban room-test u1 --for 90", "give a unit, e.g. `90s` or `30m`", "ban"),
    ("ban room-test u1 --for soon", "a duration is a number and a unit like `90s`", "ban"),
    ("ban room-test u1 --for 1.5h", "not `1.5h`", "ban"),
    ("ban room-test u1 --for 2y", "unknown unit `y` in `2y`", "ban"),
    ("ban room-test u1 --for 0s", "a ban must last at least 1s, not `0s`", "ban"),
    ("ban room-test u1 --for 366d", "a ban lasts at most 365d (a year), not `366d`", "ban"),
    ("ban room-test u1 --for 365d1s", "at most 365d", "ban"),
    ("ban room-test u1 --for 99999999999999999999d", "at most 365d", "ban"),
    ("ban room-test u1 --for 1h 30m", "`30m` looks like part of a duration", "ban"),
    ("kick room-test u1 --for 2h", "`--for` does not apply to `kick`: to keep members", "kick"),
    ("unban room-test u1 --for 2h", "`--for` does not apply to `unban`", "unban"),
    ("destroy room-test --for 2h", "`--for` does not apply to `destroy`", "destroy"),
    ("members room-test --dry-run", "`--dry-run` does not apply to `members`", "members"),
    ("banned room-test --reason x", "`--reason` does not apply to `banned`", "banned"),
    ("members room-test --for 1h", "`--for` does not apply to `members`", "members"),
    ("members room-test room-2", "`members` takes one room, got 2", "members"),
    ("banned", "`banned` needs at least one room ID", "banned"),
    ("destroy room-test room-2", "`destroy` takes one room, got 2", "destroy"),
    ("destroy", "`destroy` needs at least one room ID", "destroy"),
    ("kick room-test u1 --reason " + "x" * 1001, "the reason is 1001 bytes in UTF-8", "kick"),
    ("ban room-test u1 --for 1h --reason " + "\U0001f600" * 251, "1004 bytes", "ban"),
    ("kick room-test u1 --bogus", "unknown option `--bogus`", "kick"),
    ("ban room-test u1 --fr 1h", "did you mean `--for`", "ban"),
]


@pytest.mark.parametrize(("text", "piece", "verb"), ERRORS)
def test_member_verb_errors_say_what_and_why(text: str, piece: str, verb: str) -> None:
    err = _error(text)
    assert piece in err.message
    assert "\n" not in err.message
    assert err.usage == VERBS[verb].usage


def test_a_reason_of_exactly_1000_bytes_is_accepted() -> None:
    reason = "é" * 500
    (call,) = parse_command(f"kick r1 u1 --reason {reason}").calls(ME)
    assert call.body()["Reason"] == reason


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1_800),
        ("2h", 7_200),
        ("7d", 604_800),
        ("1w", 604_800),
        ("1h30m", 5_400),
        ("1h 30m", 5_400),
        ("1d2h3m4s", 93_784),
        ("2H", 7_200),
        ("45min", 2_700),
        ("3hours", 10_800),
        ("1 day", 86_400),
        ("30m1h", 5_400),
        ("1s", 1),
        ("365d", BAN_MAX_SECONDS),
        ("52w1d", BAN_MAX_SECONDS),
        ("0h1s", 1),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1s"),
        (90, "1m30s"),
        (3_600, "1h"),
        (5_400, "1h30m"),
        (93_784, "1d2h3m4s"),
        (604_800, "7d"),
    ],
)
def test_durations_format_in_their_canonical_form(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["", "90", "h", "1.5h", "-1h", "1h30", "2y", "0m", "366d"])
def test_not_durations(text: str) -> None:
    with pytest.raises(InvalidValue):
        parse_duration(text)


# -- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["kick", "ban", "unban"])
def test_member_verb_help_says_user_is_an_account_id_not_a_slack_user(verb: str) -> None:
    text = render_verb_help(verb)
    assert "USER is a Room Engine account ID (`Member_Account`, 1-32 bytes, no spaces)" in text
    assert "not a Slack user" in text
    assert "sent 20 to a call" in text


@pytest.mark.parametrize(
    ("verb", "pieces"),
    [
        ("kick", ["Calls `kick_user_out`", "Not undoable", "via roombot`"]),
        ("ban", ["Undo: `unban` of exactly these accounts", "`--for DURATION` is required"]),
        ("ban", ["`90s`, `30m`, `2h`, `7d`", "to 365d, sent in seconds", "via roombot`"]),
        ("unban", ["Calls `unban_room_member`", "`--reason` is only recorded"]),
        ("destroy", ["Calls `destroy_room`", "Always asks for confirmation", "Not undoable"]),
        ("members", ["`get_room_member_list`"]),
        ("banned", ["`get_banned_member_list`", "when its ban ends"]),
    ],
)
def test_member_verb_help_names_its_call_and_undo(verb: str, pieces: list[str]) -> None:
    text = render_verb_help(verb)
    for piece in pieces:
        assert piece in text
