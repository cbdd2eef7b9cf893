"""The /room command language: every verb and alias, every `set` key, every validation error.

Expectations are written out here, not derived from `VERBS`, so a wrong table entry fails.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.commands import (
    DEFAULT_MAX_ROOMS,
    VERBS,
    ArgForm,
    Command,
    ParseError,
    VerbKind,
    canonical_verb,
    parse_command,
)
from bot.models import PATCH_FIELDS

AUDIO = {"IsAudioDisabled": True}
LOCKED = {
    "IsAudioDisabled": True,
    "IsVideoDisabled": True,
    "IsMessageDisabled": True,
    "IsScreenSharingDisabled": True,
}

#: word typed -> (canonical verb, the patch it sends)
TOGGLES: dict[str, tuple[str, dict[str, bool]]] = {
    "mute-all": ("mute-all", AUDIO),
    "mute-audio": ("mute-all", AUDIO),
    "disable-audio": ("mute-all", AUDIO),
    "unmute-all": ("unmute-all", {"IsAudioDisabled": False}),
    "unmute-audio": ("unmute-all", {"IsAudioDisabled": False}),
    "enable-audio": ("unmute-all", {"IsAudioDisabled": False}),
    "disable-video": ("disable-video", {"IsVideoDisabled": True}),
    "enable-video": ("enable-video", {"IsVideoDisabled": False}),
    "disable-chat": ("disable-chat", {"IsMessageDisabled": True}),
    "mute-chat": ("disable-chat", {"IsMessageDisabled": True}),
    "enable-chat": ("enable-chat", {"IsMessageDisabled": False}),
    "unmute-chat": ("enable-chat", {"IsMessageDisabled": False}),
    "disable-screenshare": ("disable-screenshare", {"IsScreenSharingDisabled": True}),
    "enable-screenshare": ("enable-screenshare", {"IsScreenSharingDisabled": False}),
    "disable-recording": ("disable-recording", {"IsCloudRecordingDisabled": True}),
    "enable-recording": ("enable-recording", {"IsCloudRecordingDisabled": False}),
    "lockdown": ("lockdown", LOCKED),
    "lift-lockdown": ("lift-lockdown", {k: False for k in LOCKED}),
}

CANONICAL_NAMES = [
    "mute-all",
    "unmute-all",
    "disable-video",
    "enable-video",
    "disable-chat",
    "enable-chat",
    "disable-screenshare",
    "enable-screenshare",
    "disable-recording",
    "enable-recording",
    "lockdown",
    "lift-lockdown",
    "rename",
    "set-capacity",
    "seat-mode",
    "set-custom",
    "set",
    "show",
    "history",
    "timers",
    "timeline",
    "members",
    "kick",
    "ban",
    "unban",
    "banned",
    "destroy",
    "seats",
    "lock-seat",
    "unlock-seat",
    "mute-seat",
    "unmute-seat",
    "kick-seat",
    "help",
]


def _bodies(command: Command) -> list[dict[str, Any]]:
    return [patch.body() for patch in command.patches()]


def _error(text: str, **kwargs: Any) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_command(text, **kwargs)
    return info.value


# -- the verb table ----------------------------------------------------------------------------


def test_canonical_names_are_the_design_table_in_help_order() -> None:
    assert list(VERBS) == CANONICAL_NAMES


@pytest.mark.parametrize(("word", "expected"), [(w, v[0]) for w, v in TOGGLES.items()])
def test_canonical_verb_maps_every_toggle_alias(word: str, expected: str) -> None:
    assert canonical_verb(word) == expected
    assert canonical_verb(word.upper()) == expected
    assert canonical_verb(word.replace("-", "_")) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("rename", "rename"),
        ("set-capacity", "set-capacity"),
        ("max-members", "set-capacity"),
        ("seat-mode", "seat-mode"),
        ("set-custom", "set-custom"),
        ("custom-info", "set-custom"),
        ("set", "set"),
        ("show", "show"),
        ("history", "history"),
        ("help", "help"),
        ("frobnicate", None),
        ("", None),
    ],
)
def test_canonical_verb_maps_value_and_read_verbs(word: str, expected: str | None) -> None:
    assert canonical_verb(word) == expected


def test_spec_kinds_room_counts_and_fields() -> None:
    for name in CANONICAL_NAMES[:12]:
        spec = VERBS[name]
        assert spec.kind is VerbKind.WRITE
        assert spec.multi_room
        assert spec.form is ArgForm.ROOMS
        assert dict(spec.sets) == TOGGLES[name][1]
        assert set(spec.fields) == set(TOGGLES[name][1])
    assert VERBS["rename"].fields == ("RoomName",)
    assert VERBS["set-capacity"].fields == ("MaxMemberCount",)
    assert VERBS["seat-mode"].fields == ("TakeSeatMode",)
    assert VERBS["set-custom"].fields == ("CustomInfo",)
    assert VERBS["set"].fields == tuple(PATCH_FIELDS)
    for name in ("rename", "set-capacity", "seat-mode", "set-custom", "history"):
        assert not VERBS[name].multi_room
    assert VERBS["set"].multi_room
    assert VERBS["show"].multi_room
    assert VERBS["show"].kind is VerbKind.READ
    assert VERBS["history"].kind is VerbKind.READ
    assert VERBS["help"].kind is VerbKind.HELP
    for name in ("show", "history", "help"):
        assert VERBS[name].fields == ()


def test_every_verb_names_the_api_command_it_calls_and_whether_it_can_be_undone() -> None:
    for name in CANONICAL_NAMES[:17]:
        assert VERBS[name].api == "update_room_info"
        assert VERBS[name].undoable
        assert VERBS[name].undo_verb is None
    expected = {
        # verb: (kind, api, undoable, undo verb, asks for confirmation)
        "show": (VerbKind.READ, "get_room_info", False, None, False),
        "history": (VerbKind.READ, None, False, None, False),
        "members": (VerbKind.READ, "get_room_member_list", False, None, False),
        "kick": (VerbKind.WRITE, "kick_user_out", False, None, False),
        "ban": (VerbKind.WRITE, "ban_room_member", True, "unban", False),
        "unban": (VerbKind.WRITE, "unban_room_member", False, None, False),
        "banned": (VerbKind.READ, "get_banned_member_list", False, None, False),
        "destroy": (VerbKind.WRITE, "destroy_room", False, None, True),
        "seats": (VerbKind.READ, "get_seat_list", False, None, False),
        # Seat flags are undone like room settings: back to the values read before.
        "lock-seat": (VerbKind.WRITE, "lock_seat", True, None, False),
        "unlock-seat": (VerbKind.WRITE, "lock_seat", True, None, False),
        "mute-seat": (VerbKind.WRITE, "lock_seat", True, None, False),
        "unmute-seat": (VerbKind.WRITE, "lock_seat", True, None, False),
        "kick-seat": (VerbKind.WRITE, "kick_user_off_seat", False, None, False),
        "help": (VerbKind.HELP, None, False, None, False),
    }
    for name, (kind, api, undoable, undo_verb, confirm) in expected.items():
        spec = VERBS[name]
        assert (spec.kind, spec.api, spec.undoable, spec.undo_verb, spec.confirm) == (
            kind,
            api,
            undoable,
            undo_verb,
            confirm,
        ), name
        assert spec.multi_room == (name == "show")
    assert [name for name, spec in VERBS.items() if spec.needs_duration] == ["ban"]
    assert [name for name, spec in VERBS.items() if spec.takes_accounts] == [
        "kick",
        "ban",
        "unban",
        "kick-seat",
    ]
    assert [name for name, spec in VERBS.items() if spec.takes_seats] == [
        "lock-seat",
        "unlock-seat",
        "mute-seat",
        "unmute-seat",
    ]


def test_usage_lines_show_options_only_for_write_verbs() -> None:
    assert (
        VERBS["mute-all"].usage
        == "/room mute-all ROOM... [--for DURATION] [--dry-run] [--reason TEXT]"
    )
    assert (
        VERBS["rename"].usage
        == "/room rename ROOM NAME... [--for DURATION] [--dry-run] [--reason TEXT]"
    )
    assert VERBS["show"].usage == "/room show ROOM..."
    assert VERBS["history"].usage == "/room history ROOM"
    assert VERBS["help"].usage == "/room help [VERB]"
    assert VERBS["kick"].usage == "/room kick ROOM USER... [--dry-run] [--reason TEXT]"
    assert VERBS["ban"].usage == "/room ban ROOM USER... --for DURATION [--dry-run] [--reason TEXT]"
    assert VERBS["destroy"].usage == "/room destroy ROOM [--dry-run] [--reason TEXT]"
    assert VERBS["members"].usage == "/room members ROOM"
    assert VERBS["banned"].usage == "/room banned ROOM"


# -- toggles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "expected"), list(TOGGLES.items()))
def test_toggle_single_room(word: str, expected: tuple[str, dict[str, bool]]) -> None:
    verb, patch = expected
    command = parse_command(f"{word} room-test")
    assert command == Command(verb, ("room-test",), patch)
    assert _bodies(command) == [{"RoomInfo": {"RoomId": "room-test", **patch}}]


@pytest.mark.parametrize(("word", "expected"), list(TOGGLES.items()))
def test_toggle_many_rooms_deduplicated_in_order(
    word: str, expected: tuple[str, dict[str, bool]]
) -> None:
    command = parse_command(f"{word} r3 r1 r3 r2 r1")
    assert command.verb == expected[0]
    assert command.rooms == ("r3", "r1", "r2")
    assert [b["RoomInfo"]["RoomId"] for b in _bodies(command)] == ["r3", "r1", "r2"]


def test_room_ids_are_case_sensitive_so_not_deduplicated_across_case() -> None:
    assert parse_command("mute-all Room room").rooms == ("Room", "room")


def test_verb_is_case_insensitive() -> None:
    assert parse_command("MUTE-ALL room-test") == parse_command("mute-all room-test")


def test_done_when_example_body_is_exact() -> None:
    (body,) = _bodies(parse_command("mute-all room-test"))
    assert json.dumps(body) == '{"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": true}}'


# -- value verbs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verb", "changes"),
    [
        ("rename r1 Weekly sync", "rename", {"RoomName": "Weekly sync"}),
        ('rename r1 "Weekly sync"', "rename", {"RoomName": "Weekly sync"}),
        ("rename r1 'Weekly sync'", "rename", {"RoomName": "Weekly sync"}),
        ('rename r1 "  two  spaces "', "rename", {"RoomName": "  two  spaces "}),
        ("rename r1 Bob's room", "rename", {"RoomName": "Bob's room"}),
        ("rename r1 'Bob's room'", "rename", {"RoomName": "Bob's room"}),
        ('rename r1 The "Best" Room', "rename", {"RoomName": 'The "Best" Room'}),
        ("rename r1 Team -- Sync", "rename", {"RoomName": "Team -- Sync"}),
        ('rename r1 "Sync --dry-run x"', "rename", {"RoomName": "Sync --dry-run x"}),
        ("rename r1 会议室 A", "rename", {"RoomName": "会议室 A"}),
        ("set-capacity r1 200", "set-capacity", {"MaxMemberCount": 200}),
        ("max-members r1 007", "set-capacity", {"MaxMemberCount": 7}),
        ("set-capacity r1 2147483647", "set-capacity", {"MaxMemberCount": 2147483647}),
        ("seat-mode r1 free", "seat-mode", {"TakeSeatMode": "FreeToTake"}),
        ("seat-mode r1 apply", "seat-mode", {"TakeSeatMode": "ApplyToTake"}),
        ("seat-mode r1 FreeToTake", "seat-mode", {"TakeSeatMode": "FreeToTake"}),
        ("seat-mode r1 applytotake", "seat-mode", {"TakeSeatMode": "ApplyToTake"}),
        ("seat-mode r1 APPLY", "seat-mode", {"TakeSeatMode": "ApplyToTake"}),
        ("set-custom r1 hello world", "set-custom", {"CustomInfo": "hello world"}),
        ("custom-info r1 x", "set-custom", {"CustomInfo": "x"}),
        ('set-custom r1 {"tier": "gold"}', "set-custom", {"CustomInfo": '{"tier": "gold"}'}),
        ('set-custom r1 ""', "set-custom", {"CustomInfo": ""}),
    ],
)
def test_value_verbs(text: str, verb: str, changes: dict[str, Any]) -> None:
    command = parse_command(text)
    assert command == Command(verb, ("r1",), changes)
    assert _bodies(command) == [{"RoomInfo": {"RoomId": "r1", **changes}}]


def test_rename_with_options_around_the_name() -> None:
    command = parse_command("rename r1 --dry-run Weekly sync --reason typo")
    assert command.changes == {"RoomName": "Weekly sync"}
    assert command.dry_run
    assert command.reason == "typo"


def test_rename_keeps_the_spacing_typed_inside_a_name() -> None:
    assert parse_command("rename r1 A   B").changes == {"RoomName": "A   B"}


# -- set ---------------------------------------------------------------------------------------

SET_CASES: list[tuple[str, dict[str, Any]]] = [
    ('name="Town hall"', {"RoomName": "Town hall"}),
    ("name=Standup", {"RoomName": "Standup"}),
    ("max-members=50", {"MaxMemberCount": 50}),
    ("max_members=50", {"MaxMemberCount": 50}),
    ("audio=off", {"IsAudioDisabled": True}),
    ("audio=on", {"IsAudioDisabled": False}),
    ("video=off", {"IsVideoDisabled": True}),
    ("chat=off", {"IsMessageDisabled": True}),
    ("screenshare=off", {"IsScreenSharingDisabled": True}),
    ("recording=off", {"IsCloudRecordingDisabled": True}),
    ("custom=abc", {"CustomInfo": "abc"}),
    ('custom=""', {"CustomInfo": ""}),
    ("custom=", {"CustomInfo": ""}),
    ("custom=a=b", {"CustomInfo": "a=b"}),
    ("seat-mode=apply", {"TakeSeatMode": "ApplyToTake"}),
    ("RoomName=X", {"RoomName": "X"}),
    ("roomname=X", {"RoomName": "X"}),
    ("MaxMemberCount=9", {"MaxMemberCount": 9}),
    ("IsVideoDisabled=true", {"IsVideoDisabled": True}),
    ("ISAUDIODISABLED=true", {"IsAudioDisabled": True}),
    ("isaudiodisabled=false", {"IsAudioDisabled": False}),
    ("IsMessageDisabled=yes", {"IsMessageDisabled": True}),
    ("IsScreenSharingDisabled=on", {"IsScreenSharingDisabled": True}),
    ("IsCloudRecordingDisabled=off", {"IsCloudRecordingDisabled": False}),
    ("CustomInfo=x", {"CustomInfo": "x"}),
    ("TakeSeatMode=FreeToTake", {"TakeSeatMode": "FreeToTake"}),
]


@pytest.mark.parametrize(("assignment", "changes"), SET_CASES)
def test_set_every_key(assignment: str, changes: dict[str, Any]) -> None:
    command = parse_command(f"set r1 {assignment}")
    assert command == Command("set", ("r1",), changes)
    assert _bodies(command) == [{"RoomInfo": {"RoomId": "r1", **changes}}]


def test_set_covers_every_patch_field_both_ways() -> None:
    short = {field for _, changes in SET_CASES[:15] for field in changes}
    api = {field for _, changes in SET_CASES[15:] for field in changes}
    assert short == set(PATCH_FIELDS) == api


@pytest.mark.parametrize(
    ("word", "enabled"),
    [
        ("on", True),
        ("ON", True),
        ("true", True),
        ("yes", True),
        ("enabled", True),
        ("off", False),
        ("Off", False),
        ("false", False),
        ("no", False),
        ("disabled", False),
    ],
)
def test_feature_keys_say_whether_the_feature_is_enabled(word: str, enabled: bool) -> None:
    assert parse_command(f"set r1 audio={word}").changes == {"IsAudioDisabled": not enabled}


@pytest.mark.parametrize(
    ("word", "flag"),
    [("true", True), ("yes", True), ("on", True), ("false", False), ("no", False), ("off", False)],
)
def test_api_field_names_take_the_fields_own_value(word: str, flag: bool) -> None:
    assert parse_command(f"set r1 IsAudioDisabled={word}").changes == {"IsAudioDisabled": flag}


def test_set_many_rooms_then_keys_sends_exactly_those_fields() -> None:
    command = parse_command('set r1 r2 r1 audio=off name="Incident bridge" chat=off --dry-run')
    assert command.rooms == ("r1", "r2")
    assert command.dry_run
    assert _bodies(command) == [
        {
            "RoomInfo": {
                "RoomId": room,
                "RoomName": "Incident bridge",
                "IsAudioDisabled": True,
                "IsMessageDisabled": True,
            }
        }
        for room in ("r1", "r2")
    ]


# Issue #12 item 1: rooms come before the first KEY=VALUE; after it, a `name` or `custom` value
# runs on to the next word shaped KEY=. Each of these sent a change to a stray "room" before.
RUN_ON_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("set room-test name=Incident bridge", {"RoomName": "Incident bridge"}),
    ('set room-test custom={"a": 1}', {"CustomInfo": '{"a": 1}'}),
    ('set room-test custom={"a=b": 1}', {"CustomInfo": '{"a=b": 1}'}),
    (
        'set room-test custom={"a": 1, "b": "two words", "c": "x=y"} audio=off',
        {"CustomInfo": '{"a": 1, "b": "two words", "c": "x=y"}', "IsAudioDisabled": True},
    ),
    (
        "set room-test name=Incident bridge chat=off",
        {"RoomName": "Incident bridge", "IsMessageDisabled": True},
    ),
    (
        "set room-test audio=off name=Incident bridge",
        {"RoomName": "Incident bridge", "IsAudioDisabled": True},
    ),
    ("set room-test name=Incident   bridge", {"RoomName": "Incident   bridge"}),
    ("set room-test name= Incident bridge", {"RoomName": "Incident bridge"}),
    ('set room-test custom= {"a": 1}', {"CustomInfo": '{"a": 1}'}),
    ("set room-test name=Bob's room", {"RoomName": "Bob's room"}),
    ('set room-test name=The "Best" room', {"RoomName": 'The "Best" room'}),
    ("set room-test name=a=b c", {"RoomName": "a=b c"}),
    ("set room-test name=Team -- Sync", {"RoomName": "Team -- Sync"}),
    ('set room-test name="Incident bridge" audio=off', {"RoomName": "Incident bridge", **AUDIO}),
    ('set room-test name="a b=c"', {"RoomName": "a b=c"}),
    ("set room-test name=See https://x.test/?a=b", {"RoomName": "See https://x.test/?a=b"}),
    # The rule cuts both ways: a room typed after a name is part of the name (help says so,
    # and `--dry-run` / `roombot parse` show it) — never a second room.
    ("set room-test name=Incident room-2", {"RoomName": "Incident room-2"}),
]


@pytest.mark.parametrize(("text", "changes"), RUN_ON_VALUES)
def test_set_text_values_run_on_to_the_next_key(text: str, changes: dict[str, Any]) -> None:
    command = parse_command(text)
    assert command == Command("set", ("room-test",), changes)
    assert _bodies(command) == [{"RoomInfo": {"RoomId": "room-test", **changes}}]


def test_set_options_end_a_value_wherever_they_stand() -> None:
    command = parse_command("set room-test name=Incident bridge --reason typo fix")
    assert command.changes == {"RoomName": "Incident bridge"}
    assert command.reason == "typo fix"
    command = parse_command("set room-test --dry-run name=Incident bridge --dry-run")
    assert (command.changes, command.dry_run) == ({"RoomName": "Incident bridge"}, True)


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ("set r1 audio=off r2", "`r2` follows `audio=off`, whose value is one word"),
        ("set r1 max-members=50 r2", "rooms go before the first KEY=VALUE"),
        ("set r1 seat-mode=free r2", "only `name` and `custom` values run on"),
        ('set r1 name="Incident bridge" r2', "`r2` follows the quoted value of `name`"),
        ("set r1 custom='x' r2", "a quoted value ends at its closing quote"),
        ("set audio=off r1", "`set` needs at least one room ID, before the first KEY=VALUE"),
        ("set name=Incident bridge", "needs at least one room ID"),
        ("set r1 name=Incident bridge adio=off", "unknown setting `adio` in `adio=off`"),
        ("set r1 name=Incident bridge adio=off", "did you mean `audio`"),
        ("set r1 name=a x=y", "a word shaped KEY= always starts a new setting, so quote"),
        ("set r1 name=A audio=off name=B", "conflicting values for RoomName: `name=A` and"),
    ],
)
def test_set_stray_words_are_errors_not_rooms(text: str, piece: str) -> None:
    err = _error(text)
    assert piece in err.message
    assert err.usage == VERBS["set"].usage


def test_set_help_states_the_rule() -> None:
    from bot.commands import render_verb_help

    text = render_verb_help("set")
    assert "every word before the first KEY=VALUE is a room, and none after it is" in text
    assert '`name=Incident bridge` names the room "Incident bridge"' in text
    assert "a word after it is an error, not a room" in text


@pytest.mark.parametrize(
    ("text", "changes"),
    [
        # The value verbs take one room, then the value: no word can become a second room.
        ("rename room-test Incident bridge", {"RoomName": "Incident bridge"}),
        ('set-custom room-test {"a": 1}', {"CustomInfo": '{"a": 1}'}),
        ('rename room-test "name=Incident bridge"', {"RoomName": "name=Incident bridge"}),
        ("rename room-test Incident name=bridge", {"RoomName": "Incident name=bridge"}),
    ],
)
def test_value_verbs_take_the_rest_of_the_line_as_the_value(
    text: str, changes: dict[str, Any]
) -> None:
    assert parse_command(text) == Command(text.split()[0], ("room-test",), changes)


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ("rename room-test name=Incident bridge", "`rename` takes the text itself, not `name=`"),
        ("rename room-test audio=off", "not `audio=`"),
        ('set-custom room-test custom={"a": 1}', "`set-custom` takes the text itself"),
        ("set-capacity room-test 100 room-2", "takes one room and one value"),
        ("seat-mode room-test apply room-2", "takes one room and one value"),
    ],
)
def test_value_verbs_refuse_set_syntax_and_extra_rooms(text: str, piece: str) -> None:
    assert piece in _error(text).message


def test_set_accepts_the_same_value_twice() -> None:
    command = parse_command("set r1 audio=off IsAudioDisabled=true")
    assert command.changes == {"IsAudioDisabled": True}


def test_set_quoted_word_with_equals_is_a_room() -> None:
    assert parse_command('set "a=b" audio=off').rooms == ("a=b",)


# -- partial means partial ---------------------------------------------------------------------


def test_patch_body_is_partial_with_json_booleans_and_no_nulls() -> None:
    (body,) = _bodies(parse_command("disable-chat r1"))
    text = json.dumps(body)
    assert text == '{"RoomInfo": {"RoomId": "r1", "IsMessageDisabled": true}}'
    assert "null" not in text


def test_read_and_help_commands_have_no_patches_or_changes() -> None:
    for text in ("show r1", "history r1", "help"):
        command = parse_command(text)
        assert command.patches() == []
        assert command.changes == {}


# -- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rooms", "dry_run", "reason"),
    [
        ("mute-all r1 --dry-run", ("r1",), True, None),
        ("mute-all --dry-run r1", ("r1",), True, None),
        ("mute-all --DRY-RUN r1", ("r1",), True, None),
        ("mute-all r1 --reason spam", ("r1",), False, "spam"),
        ("mute-all r1 --reason abuse report", ("r1",), False, "abuse report"),
        ("mute-all r1 --reason abuse report --dry-run", ("r1",), True, "abuse report"),
        ('mute-all --reason "abuse report" r1 r2', ("r1", "r2"), False, "abuse report"),
        ("mute-all --reason 'abuse report' r1", ("r1",), False, "abuse report"),
        ("mute-all r1 --reason=spam", ("r1",), False, "spam"),
        ("mute-all r1 --reason=abuse report", ("r1",), False, "abuse report"),
        ('mute-all r1 --reason="abuse report" r2', ("r1", "r2"), False, "abuse report"),
        ('mute-all r1 --reason "say \\"hi\\""', ("r1",), False, 'say "hi"'),
        ("mute-all r1 --reason ticket #42 --dry-run", ("r1",), True, "ticket #42"),
    ],
)
def test_dry_run_and_reason_anywhere_after_the_verb(
    text: str, rooms: tuple[str, ...], dry_run: bool, reason: str | None
) -> None:
    command = parse_command(text)
    assert (command.rooms, command.dry_run, command.reason) == (rooms, dry_run, reason)


def test_options_do_not_change_the_body() -> None:
    plain = _bodies(parse_command("lockdown r1"))
    assert _bodies(parse_command("lockdown r1 --dry-run --reason x")) == plain


def test_quoted_option_is_a_plain_word() -> None:
    assert parse_command('mute-all "--dry-run"').rooms == ("--dry-run",)


# -- help, show, history -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "/room", "/room help", "?", "--help"])
def test_empty_text_and_help_give_help(text: str) -> None:
    assert parse_command(text) == Command("help", ())


@pytest.mark.parametrize(
    ("text", "topic"),
    [("help mute-all", "mute-all"), ("help mute-chat", "disable-chat"), ("help SET", "set")],
)
def test_help_verb_sets_the_canonical_topic(text: str, topic: str) -> None:
    assert parse_command(text) == Command("help", (), topic=topic)


def test_show_takes_many_rooms_and_history_one() -> None:
    assert parse_command("show r1 r2 r1") == Command("show", ("r1", "r2"))
    assert parse_command("history r1") == Command("history", ("r1",))


# -- errors: what was wrong, why, and the usage line -------------------------------------------

ERRORS: list[tuple[str, str, str | None]] = [
    # (text, a piece of the message, the usage line's verb or None for the general one)
    ("frobnicate r1", "unknown command `frobnicate`", None),
    ("mute-al r1", "unknown command `mute-al` — did you mean `mute-all`", None),
    ("lockdwn r1", "did you mean `lockdown`", None),
    ("--dry-run mute-all r1", "the command comes first", None),
    ("help frobnicate", "unknown command `frobnicate`", "help"),
    ("help mute-al", "did you mean `mute-all`", "help"),
    ("help mute-all set", "at most one command", "help"),
    ("mute-all", "`mute-all` needs at least one room ID", "mute-all"),
    ("mute-all --dry-run", "needs at least one room ID", "mute-all"),
    ("show", "needs at least one room ID", "show"),
    ('mute-all ""', "a room ID cannot be empty", "mute-all"),
    ("mute-all " + "r" * 49, "is 49 bytes; the limit is 48", "mute-all"),
    ("mute-all 会议", "printable ASCII without spaces", "mute-all"),
    ("mute-all café", "printable ASCII without spaces", "mute-all"),
    ('mute-all "a b"', "printable ASCII without spaces", "mute-all"),
    ("mute-all <@U012ABCDEF>", "that looks like a Slack mention, not a room ID", "mute-all"),
    ("mute-all <@U012ABCDEF|alice>", "that looks like a Slack mention, not a room ID", "mute-all"),
    ("show <#C012ABCDE|general>", "that looks like a Slack mention, not a room ID", "show"),
    ("mute-all <!here>", "that looks like a Slack mention, not a room ID", "mute-all"),
    ("history r1 r2", "`history` takes one room, got 2", "history"),
    ("rename", "`rename` needs a room ID", "rename"),
    ("rename r1", "`rename` needs the new name", "rename"),
    ("rename r1 --dry-run", "`rename` needs the new name", "rename"),
    ('rename r1 ""', "a room name cannot be empty", "rename"),
    ("rename r1 " + "会" * 34, "room name is 102 bytes in UTF-8; the limit is 100 bytes", "rename"),
    ("rename r1 " + "\U0001f600" * 26, "104 bytes", "rename"),
    ("set r1 name=" + "a" * 101, "room name is 101 bytes", "set"),
    ("set-custom r1", '`set-custom` needs the text (`""` clears it)', "set-custom"),
    (
        "set-custom r1 " + "x" * 501,
        "custom info is 501 bytes in UTF-8; the limit is 500",
        "set-custom",
    ),
    ("set r1 custom=" + "é" * 251, "custom info is 502 bytes", "set"),
    ("set-capacity r1", "needs the new max-members", "set-capacity"),
    ("set-capacity r1 0", "positive whole number, not 0", "set-capacity"),
    ("set-capacity r1 -5", "positive whole number, not -5", "set-capacity"),
    ("set-capacity r1 2.5", "positive whole number, not `2.5`", "set-capacity"),
    ("set-capacity r1 abc", "positive whole number, not `abc`", "set-capacity"),
    ("set-capacity r1 1e3", "positive whole number, not `1e3`", "set-capacity"),
    ("set-capacity r1 2147483648", "too large", "set-capacity"),
    ("set-capacity r1 " + "9" * 5000, "far too large", "set-capacity"),
    ("set r1 max-members=0", "positive whole number", "set"),
    ("set-capacity r1 r2 100", "takes one room and one value", "set-capacity"),
    ("seat-mode r1", "needs the new seat-mode", "seat-mode"),
    ("seat-mode r1 open", "seat mode must be `free` or `apply`", "seat-mode"),
    ("seat-mode r1 r2 free", "`/room set ROOM... seat-mode=VALUE`", "seat-mode"),
    ("set r1 seat-mode=sometimes", "seat mode must be `free` or `apply`", "set"),
    ("set r1", "`set` needs at least one KEY=VALUE", "set"),
    ("set audio=off", "`set` needs at least one room ID", "set"),
    ("set audio=off r1", "needs at least one room ID, before the first KEY=VALUE", "set"),
    ("set r1 audio=on audio=off", "conflicting values for IsAudioDisabled", "set"),
    ("set r1 audio=off IsAudioDisabled=false", "`audio=off` and `IsAudioDisabled=false`", "set"),
    ("set r1 name=A name=B", "conflicting values for RoomName", "set"),
    ("set r1 adio=off", "unknown setting `adio` in `adio=off` — did you mean `audio`", "set"),
    ("set r1 isaudiodisable=true", "did you mean `IsAudioDisabled`", "set"),
    ("set r1 =off", "unknown setting", "set"),
    ("set r1 audio=maybe", "audio must be on/off", "set"),
    ("set r1 IsAudioDisabled=enabled", "is ambiguous", "set"),
    ("set r1 IsVideoDisabled=disabled", "or video=on/off", "set"),
    ("mute-all r1 --force", "unknown option `--force`", "mute-all"),
    ("mute-all r1 --dryrun", "did you mean `--dry-run`", "mute-all"),
    ("mute-all r1 --dry-run=yes", "`--dry-run` takes no value", "mute-all"),
    ("mute-all r1 --reason", "`--reason` needs some text", "mute-all"),
    ("mute-all r1 --reason --dry-run", "`--reason` needs some text", "mute-all"),
    ('mute-all r1 --reason ""', "`--reason` needs some text", "mute-all"),
    ("mute-all r1 --reason=", "`--reason` needs some text", "mute-all"),
    ("mute-all r1 --reason a --reason b", "`--reason` is given twice", "mute-all"),
    ("show r1 --dry-run", "`--dry-run` does not apply to `show`", "show"),
    ("history r1 --reason x", "`--reason` does not apply to `history`", "history"),
    ("help --dry-run", "does not apply to `help`", "help"),
    ("show r1 --for 2h", "`--for` does not apply to `show`", "show"),
    ("mute-all r1 --for 5s", "a time-boxed change must last at least 10s", "mute-all"),
    ("mute-all r1 --reason " + "x" * 1001, "the reason is 1001 bytes in UTF-8", "mute-all"),
    ("mute-all r1 --reason " + "会" * 334, "the reason is 1002 bytes", "mute-all"),
]


@pytest.mark.parametrize(("text", "piece", "usage_verb"), ERRORS)
def test_errors_say_what_and_why_with_the_usage_line(
    text: str, piece: str, usage_verb: str | None
) -> None:
    err = _error(text)
    assert piece in err.message
    assert str(err) == err.message
    assert "\n" not in err.message
    expected_usage = (
        VERBS[usage_verb].usage if usage_verb else "/room VERB ROOM... [--dry-run] [--reason TEXT]"
    )
    assert err.usage == expected_usage


def test_an_unknown_verb_without_close_match_points_at_help() -> None:
    assert "`/room help`" in _error("xyzzy r1").message


def test_long_input_is_shortened_in_messages() -> None:
    err = _error("frobnicate" * 50)
    assert len(err.message) < 150


# -- room limit --------------------------------------------------------------------------------


def test_default_limit_is_500_rooms_after_deduplication() -> None:
    assert DEFAULT_MAX_ROOMS == 500
    rooms = " ".join(f"r{i}" for i in range(500))
    assert len(parse_command(f"mute-all {rooms} r0 r1").rooms) == 500
    err = _error(f"mute-all {rooms} r500")
    assert "too many rooms: 501 given, at most 500 per command" in err.message


def test_room_limit_is_configurable_and_applies_to_every_multi_room_verb() -> None:
    assert parse_command("show a b c", max_rooms=3).rooms == ("a", "b", "c")
    for text in ("show a b c d", "set a b c d audio=off", "lockdown a b c d"):
        assert "at most 3 per command" in _error(text, max_rooms=3).message
