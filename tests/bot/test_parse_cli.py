"""`roombot parse [--as USER_ID] TEXT...`: the body of each call on stdout, one a line; bad input
exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bot.cli import main


def _parse(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, list[str], list[str]]:
    code = main(["parse", *words])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_done_when_example_as_a_real_process() -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "parse", "mute-all room-test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": true}}\n'
    assert result.stderr == ""


def test_one_line_per_room_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _parse(capsys, "lockdown r2 r1 r2")
    assert code == 0
    assert err == []
    assert [json.loads(line) for line in out] == [
        {
            "RoomInfo": {
                "RoomId": room,
                "IsVideoDisabled": True,
                "IsAudioDisabled": True,
                "IsMessageDisabled": True,
                "IsScreenSharingDisabled": True,
            }
        }
        for room in ("r2", "r1")
    ]


def test_words_are_joined_so_quoting_the_whole_text_is_optional(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _parse(capsys, "rename", "r1", "Weekly", "sync") == _parse(
        capsys, "rename r1 Weekly sync"
    )


def test_options_after_the_verb_reach_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _parse(capsys, "set", "r1", "audio=off", "--dry-run", "--reason", "abuse")
    assert code == 0
    assert out == ['{"RoomInfo": {"RoomId": "r1", "IsAudioDisabled": true}}']


def test_non_ascii_is_printed_as_is(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _parse(capsys, "rename r1 会议室 \U0001f680")
    assert code == 0
    assert out == ['{"RoomInfo": {"RoomId": "r1", "RoomName": "会议室 \U0001f680"}}']


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("show r1 r2", {"verb": "show", "rooms": ["r1", "r2"], "topic": None}),
        ("history r1", {"verb": "history", "rooms": ["r1"], "topic": None}),
        ("help mute-chat", {"verb": "help", "rooms": [], "topic": "disable-chat"}),
        ("help", {"verb": "help", "rooms": [], "topic": None}),
        ("members r1", {"verb": "members", "rooms": ["r1"], "topic": None}),
        ("banned r1", {"verb": "banned", "rooms": ["r1"], "topic": None}),
        ("seats town-hall", {"verb": "seats", "rooms": ["town-hall"], "topic": None}),
    ],
)
def test_read_and_help_verbs_print_the_parsed_command(
    capsys: pytest.CaptureFixture[str], text: str, expected: dict[str, object]
) -> None:
    code, out, _ = _parse(capsys, text)
    assert code == 0
    (line,) = out
    assert json.loads(line) == {
        **expected,
        "accounts": [],
        "seats": [],
        "changes": {},
        "duration_s": None,
        "dry_run": False,
        "reason": None,
    }


@pytest.mark.parametrize(
    ("text", "message", "usage"),
    [
        ("frobnicate r1", "unknown command `frobnicate`", "/room VERB ROOM..."),
        ("rename r1", "needs the new name", "/room rename ROOM NAME..."),
        ("set-capacity r1 abc", "positive whole number", "/room set-capacity ROOM N"),
        ("mute-all <@U012ABCDEF>", "that looks like a Slack mention", "/room mute-all ROOM..."),
        ("ban r1 u1", "`ban` needs `--for DURATION`", "/room ban ROOM USER... --for DURATION"),
        ("kick r1 <@U012ABCDEF>", "that is a Slack user", "/room kick ROOM USER..."),
    ],
)
def test_invalid_input_is_one_stderr_line_with_usage_and_exit_2(
    capsys: pytest.CaptureFixture[str], text: str, message: str, usage: str
) -> None:
    code, out, err = _parse(capsys, text)
    assert code == 2
    assert out == []
    (line,) = err
    assert line.startswith("roombot parse: ")
    assert message in line
    assert f" — usage: {usage}" in line


def test_room_limit_comes_from_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROOMBOT_MAX_ROOMS", "2")
    code, out, err = _parse(capsys, "mute-all a b c")
    assert code == 2
    assert out == []
    assert "too many rooms: 3 given, at most 2 per command" in err[0]
    assert _parse(capsys, "mute-all a b")[0] == 0


# -- member verbs (issue #16) ------------------------------------------------------------------


def test_member_verbs_print_each_call_body_with_the_default_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _parse(capsys, "ban room-test u1 u2 --for 2h")
    assert (code, err) == (0, [])
    assert out == [
        '{"RoomId": "room-test", "MemberList_Account": ["u1", "u2"], '
        '"Reason": "by U0OPERATOR via roombot", "Duration": 7200}'
    ]


def test_as_names_the_requester_in_the_default_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _parse(capsys, "--as", "U012ABCDEF", "kick", "room-test", "u1")
    assert code == 0
    assert [json.loads(line) for line in out] == [
        {"RoomId": "room-test", "MemberList_Account": ["u1"], "Reason": "by U012ABCDEF via roombot"}
    ]


def test_a_given_reason_wins_and_unban_and_destroy_send_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _parse(capsys, "kick r1 u1 --reason spam")[1] == [
        '{"RoomId": "r1", "MemberList_Account": ["u1"], "Reason": "spam"}'
    ]
    assert _parse(capsys, "unban r1 u1 --reason appeal")[1] == [
        '{"RoomId": "r1", "MemberList_Account": ["u1"]}'
    ]
    assert _parse(capsys, "destroy r1 --reason done")[1] == ['{"RoomId": "r1"}']


def test_more_than_20_accounts_print_one_line_per_call_of_at_most_20(
    capsys: pytest.CaptureFixture[str],
) -> None:
    accounts = [f"u{i}" for i in range(41)]
    code, out, _ = _parse(capsys, "kick", "r1", *accounts)
    assert code == 0
    bodies = [json.loads(line) for line in out]
    assert [body["MemberList_Account"] for body in bodies] == [
        accounts[:20],
        accounts[20:40],
        accounts[40:],
    ]


def test_room_verbs_keep_their_room_info_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _parse(capsys, "--as", "U012ABCDEF", "set room-test name=Incident bridge")
    assert code == 0
    assert out == ['{"RoomInfo": {"RoomId": "room-test", "RoomName": "Incident bridge"}}']


def test_a_malformed_as_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _parse(capsys, "--as", "alice", "kick", "r1", "u1")
    assert (code, out) == (2, [])
    assert err == [
        "roombot parse: --as: malformed Slack user ID 'alice' (expected e.g. U012ABCDEF)"
    ]


def test_the_default_requester_is_the_consoles_local_operator() -> None:
    from bot.cli import PARSE_REQUESTER
    from bot.console import OPERATOR_ID

    assert PARSE_REQUESTER == OPERATOR_ID == "U0OPERATOR"
