"""`--for DURATION` on the verbs whose change roombot can revert by itself (DESIGN §2.11):
accepted from 10 s to `ROOMBOT_MAX_TIMEBOX`, refused in one line everywhere else; `ban --for`
stays the ban's own length."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import VERBS, ParseError, VerbKind, parse_command
from bot.config import load_settings
from bot.defaults import MAX_TIMEBOX_S

TIMEBOXABLE = sorted(name for name, spec in VERBS.items() if spec.timeboxable)


def example(verb: str) -> str:
    """A valid command of `verb` without options."""
    return VERBS[verb].example.removeprefix("/room ").split(" --")[0]


def test_the_time_boxable_verbs_are_the_undoable_room_and_seat_changes() -> None:
    assert set(TIMEBOXABLE) >= {
        "mute-all",
        "unmute-all",
        "lockdown",
        "lift-lockdown",
        "set",
        "rename",
        "set-capacity",
        "seat-mode",
        "set-custom",
        "lock-seat",
        "unlock-seat",
        "mute-seat",
        "unmute-seat",
    }
    assert not {"kick", "kick-seat", "destroy", "ban", "unban", "show", "timers"} & set(TIMEBOXABLE)


@pytest.mark.parametrize("verb", TIMEBOXABLE)
@pytest.mark.parametrize(
    ("typed", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86_400), ("1h30m", 5400), ("10s", 10)],
)
def test_every_room_changing_verb_takes_for(verb: str, typed: str, seconds: int) -> None:
    command = parse_command(f"{example(verb)} --for {typed}")
    assert (command.duration_s, command.timebox_s) == (seconds, seconds)
    # The canonical text reads back to the same command.
    assert parse_command(command.canonical_text()) == command


def test_without_for_a_change_stays() -> None:
    assert parse_command("mute-all r1").timebox_s is None


def test_ban_for_is_the_bans_own_duration_not_a_timer() -> None:
    command = parse_command("ban r1 u1 --for 2h")
    assert (command.duration_s, command.timebox_s) == (7200, None)
    [call] = command.calls("U1")
    assert call.body()["Duration"] == 7200
    # The ban's own limits, not the time box's: 5 s is a valid ban, 30 d too.
    assert parse_command("ban r1 u1 --for 5s").duration_s == 5
    assert parse_command("ban r1 u1 --for 30d").duration_s == 30 * 86_400


BAD = [
    ("mute-all r1 --for 0s", "must last at least 10s, not `0s`"),
    ("mute-all r1 --for 9s", "must last at least 10s"),
    ("mute-all r1 --for -5m", "a duration is a number and a unit"),
    ("mute-all r1 --for 1e9s", "unknown unit `e`"),
    ("mute-all r1 --for 8d", "a time-boxed change lasts at most 7d, not `8d`"),
    ("mute-all r1 --for 99999999999999999999s", "lasts at most 7d"),
    ("mute-all r1 --for 30", "give a unit"),
    ("mute-all r1 --for", "`--for` needs a duration"),
    ("mute-all r1 --for 1m --for 2m", "`--for` is given twice"),
    ("show r1 --for 30m", "`--for` does not apply to `show`: it changes nothing"),
    ("members r1 --for 30m", "`--for` does not apply to `members`"),
    ("seats r1 --for 30m", "`--for` does not apply to `seats`"),
    ("kick r1 u1 --for 30m", "`--for` does not apply to `kick`"),
    ("kick-seat r1 u1 --for 30m", "`--for` does not apply to `kick-seat`"),
    ("destroy r1 --for 30m", "`--for` does not apply to `destroy`"),
]


@pytest.mark.parametrize(("text", "piece"), BAD)
def test_every_bad_duration_is_one_clear_line(text: str, piece: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_command(text)
    assert piece in caught.value.message
    assert "\n" not in caught.value.message


def test_the_maximum_is_the_setting() -> None:
    assert MAX_TIMEBOX_S == 7 * 86_400
    assert parse_command("mute-all r1 --for 7d").timebox_s == MAX_TIMEBOX_S
    with pytest.raises(ParseError, match="at most 1h"):
        parse_command("mute-all r1 --for 61m", max_timebox=3600)
    assert parse_command("mute-all r1 --for 1h", max_timebox=3600).timebox_s == 3600


@pytest.mark.parametrize(
    ("value", "seconds"), [("7d", 604_800), ("12h", 43_200), ("1h30m", 5400), ("600", 600)]
)
def test_roombot_max_timebox_reads_durations(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: int
) -> None:
    monkeypatch.setenv("ROOMBOT_MAX_TIMEBOX", value)
    assert load_settings().roombot_max_timebox == seconds


@pytest.mark.parametrize("value", ["5s", "0", "soon", "400d", "-1d"])
def test_roombot_max_timebox_refuses_nonsense(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from bot.config import ConfigError

    monkeypatch.setenv("ROOMBOT_MAX_TIMEBOX", value)
    with pytest.raises(ConfigError, match="ROOMBOT_MAX_TIMEBOX"):
        load_settings()


_WORDS = st.sampled_from(
    [
        *VERBS,
        "--for",
        "--for=",
        "--dry-run",
        "--reason",
        "r1",
        "u1",
        "3",
        "audio=off",
        "30m",
        "1h30m",
        "0s",
        "1e9s",
        "-5m",
        "10s",
        "8d",
        '"1h 30m"',
        "99999999999s",
        "",
    ]
)


@settings(max_examples=400, deadline=None)
@given(words=st.lists(st.one_of(_WORDS, st.text(max_size=8)), max_size=7))
def test_the_parser_never_raises_anything_but_parse_error(words: list[str]) -> None:
    text = " ".join(words)
    try:
        command = parse_command(text)
    except ParseError:
        return
    timebox = command.timebox_s
    if timebox is not None:
        assert 10 <= timebox <= MAX_TIMEBOX_S
        assert command.spec.kind is VerbKind.WRITE
        assert command.spec.timeboxable
