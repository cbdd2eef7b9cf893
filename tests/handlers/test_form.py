"""The `/room` form: its view within Slack's limits, the command text its fields become (read by
the real parser), and which field a refusal lands on."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import VERBS, Command, ParseError, VerbKind, parse_command
from bot.commands.normalise import ODD_WHITESPACE
from bot.outcomes import Rejected
from bot.policy import Decision, Denial
from handlers import blocks
from handlers.form import (
    BLOCK_DURATION,
    BLOCK_OPTIONS,
    BLOCK_REASON,
    BLOCK_ROOMS,
    BLOCK_VALUE,
    BLOCK_VERB,
    FieldError,
    FormContext,
    FormInput,
    command_text,
    field_error,
    field_of,
    form_channel,
    form_problem,
    form_view,
    offered_verbs,
)
from testkit.slack_api import view_problems
from testkit.slack_payloads import view_state

_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTEXT = FormContext(
    channel_id="C0GENERAL1", response_url="https://hooks.slack.com/commands/T/1/a"
)
EVERY_VERB = offered_verbs(frozenset(VERBS))

# What `normalise` rewrites even inside quotes (odd spaces, invisible characters, dashes that
# start a word, smart quotes: see test_smart_quotes_in_a_value_cannot_end_it_early): typed text
# loses it too, so a value cannot keep it either way.
_REWRITTEN = (
    ODD_WHITESPACE
    + "\u200b\u2060\ufeff\u2014\u2013"
    + "\u201c\u201d\u201e\u201f\u2018\u2019\u201a\u201b"
)
_texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters=_REWRITTEN))
_room_ids = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=48
).filter(lambda room: not room.startswith(("<@", "<#", "<!")))


def _parsed(form: FormInput) -> object:
    return parse_command(command_text(form))


def _command_or_error(form: FormInput) -> Command | str:
    """The command the form stands for, or the parser's message refusing it."""
    try:
        return parse_command(command_text(form))
    except ParseError as exc:
        return exc.message


# -- the view ------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", [None, *EVERY_VERB])
def test_the_form_for_every_verb_is_one_slack_takes(verb: str | None) -> None:
    view = form_view(EVERY_VERB, CONTEXT, verb)
    assert view_problems(view, "modal") == []
    assert len(view["blocks"]) <= blocks.MAX_VIEW_BLOCKS
    assert json.loads(view["private_metadata"]) == {
        "c": CONTEXT.channel_id,
        "u": CONTEXT.response_url,
    }


def test_the_picker_offers_only_what_the_user_may_run_within_100_options() -> None:
    assert offered_verbs(frozenset({"show", "mute-all", "help", "unknown"})) == ["mute-all", "show"]
    assert "help" not in EVERY_VERB
    assert len(EVERY_VERB) <= blocks.MAX_OPTIONS
    many = [*EVERY_VERB] * 10  # more than Slack allows: the form still opens
    view = form_view(many, CONTEXT)
    [picker] = [b for b in view["blocks"] if b.get("block_id") == BLOCK_VERB]
    assert len(picker["element"]["options"]) == blocks.MAX_OPTIONS
    assert all(
        len(o["text"]["text"]) <= blocks.MAX_OPTION_TEXT_CHARS for o in picker["element"]["options"]
    )


def test_the_form_shows_the_fields_a_verb_needs() -> None:
    def ids(verb: str | None) -> list[str]:
        return [
            b["block_id"] for b in form_view(EVERY_VERB, CONTEXT, verb)["blocks"] if "block_id" in b
        ]

    assert ids(None) == [BLOCK_VERB, BLOCK_ROOMS, BLOCK_REASON, BLOCK_OPTIONS]
    assert ids("mute-all") == [BLOCK_VERB, BLOCK_ROOMS, BLOCK_REASON, BLOCK_OPTIONS]
    assert ids("rename") == [BLOCK_VERB, BLOCK_ROOMS, BLOCK_VALUE, BLOCK_REASON, BLOCK_OPTIONS]
    assert ids("ban") == [
        BLOCK_VERB,
        BLOCK_ROOMS,
        BLOCK_VALUE,
        BLOCK_DURATION,
        BLOCK_REASON,
        BLOCK_OPTIONS,
    ]
    assert ids("show") == [BLOCK_VERB, BLOCK_ROOMS]  # reads take no reason and no dry run
    view = form_view(EVERY_VERB, CONTEXT, "set-custom")
    [value] = [b for b in view["blocks"] if b.get("block_id") == BLOCK_VALUE]
    assert value["optional"] is True  # empty clears the custom info


def test_metadata_stays_within_3000_characters_and_is_read_back() -> None:
    huge = FormContext(
        channel_id="C0GENERAL1", response_url="https://hooks.slack.com/" + "x" * 4000
    )
    metadata = huge.encode()
    assert len(metadata) <= blocks.MAX_PRIVATE_METADATA_CHARS
    assert FormContext.decode(metadata) == FormContext(channel_id="C0GENERAL1")
    assert FormContext.decode(CONTEXT.encode()) == CONTEXT
    for junk in ("", "not json", "[]", '{"c": 5}', '{"c": ""}'):
        assert FormContext.decode(junk) is None
    assert form_channel(form_view(EVERY_VERB, CONTEXT)) == "C0GENERAL1"
    assert form_channel({"private_metadata": "someone else's"}) is None


def test_reading_a_submitted_form() -> None:
    view = form_view(EVERY_VERB, CONTEXT, "ban")
    state = view_state(
        view,
        {
            "verb": "ban",
            "rooms": "room-test",
            "value": "user_1\nuser_2",
            "duration": "2h",
            "options": ["dry_run"],
        },
    )
    form = FormInput.from_state(state["values"])
    assert form == FormInput(
        verb="ban",
        rooms="room-test",
        value="user_1\nuser_2",
        duration="2h",
        reason="",
        dry_run=True,
    )
    # A field the form did not have is None; one left empty is "".
    shown = FormInput.from_state(view_state(form_view(EVERY_VERB, CONTEXT, "show"), {})["values"])
    assert shown == FormInput(verb=None, rooms="", value=None, duration=None, reason=None)


# -- the command text ----------------------------------------------------------------------------


def test_each_kind_of_verb_becomes_the_typed_command() -> None:
    def parsed(**fields: object) -> object:
        return parse_command(command_text(FormInput(**fields)))  # type: ignore[arg-type]

    assert parsed(verb="mute-all", rooms="room-1\n room-2", reason="abuse report") == parse_command(
        "mute-all room-1 room-2 --reason 'abuse report'"
    )
    assert parsed(verb="set-capacity", rooms="r1", value=" 200 ") == parse_command(
        "set-capacity r1 200"
    )
    assert parsed(verb="seat-mode", rooms="r1", value="apply") == parse_command(
        "seat-mode r1 apply"
    )
    assert parsed(verb="set-custom", rooms="r1", value="") == parse_command('set-custom r1 ""')
    assert parsed(
        verb="set", rooms="r1 r2", value="audio=off\nname=Town <hall> & co"
    ) == parse_command("set r1 r2 audio=off name=Town &lt;hall&gt; &amp; co")
    assert parsed(verb="ban", rooms="r1", value="u1 2h", duration="1h30m") == parse_command(
        'ban r1 u1 "2h" --for 1h30m'
    )
    assert parsed(verb="destroy", rooms="r1", dry_run=True) == parse_command("destroy r1 --dry-run")
    assert parsed(verb="lock-seat", rooms="town-hall", value=" 2\n3 ") == parse_command(
        "lock-seat town-hall 2 3"
    )
    assert parsed(verb="kick-seat", rooms="town-hall", value="staff-1") == parse_command(
        "kick-seat town-hall staff-1"
    )


def test_smart_quotes_in_a_value_cannot_end_it_early() -> None:
    command = parse_command(
        command_text(
            FormInput(
                verb="rename", rooms="r1", value="the “big” room", reason="he said ‘stop’ now"
            )
        )
    )
    assert command.changes == {"RoomName": 'the "big" room'}
    assert command.reason == "he said 'stop' now"


@_SETTINGS
@given(name=_texts, reason=_texts)
def test_any_name_and_reason_reach_the_parser_as_typed(name: str, reason: str) -> None:
    form = FormInput(verb="rename", rooms="room-test", value=name, reason=reason)
    command = _command_or_error(form)
    if isinstance(command, str):
        # Refused only for what the value or reason itself breaks (too long, empty...).
        assert field_of(form, command, max_rooms=500) in (BLOCK_VALUE, BLOCK_REASON)
        return
    assert command.rooms == ("room-test",)
    assert command.changes == {"RoomName": name}
    assert command.reason == (reason if reason.strip() else None)
    assert command.dry_run is False  # nothing typed in a field becomes an option


@_SETTINGS
@given(
    rooms=st.lists(_room_ids, min_size=1, max_size=30),
    accounts=st.lists(_room_ids, min_size=1, max_size=5),
)
def test_any_room_ids_and_accounts_reach_the_parser_as_typed(
    rooms: list[str], accounts: list[str]
) -> None:
    command = parse_command(command_text(FormInput(verb="mute-all", rooms=" ".join(rooms))))
    assert command.rooms == tuple(dict.fromkeys(rooms))
    form = FormInput(verb="unban", rooms=rooms[0], value="\n".join(accounts))
    unban = _command_or_error(form)
    if isinstance(unban, str):
        assert field_of(form, unban, max_rooms=500) == BLOCK_VALUE  # e.g. a 33-byte account
        return
    assert unban.accounts == tuple(dict.fromkeys(accounts))


# -- where a refusal lands -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "block_id"),
    [
        (FormInput(verb="mute-all", rooms="room-1 " + "r" * 49), BLOCK_ROOMS),
        (FormInput(verb="mute-all", rooms=" ".join(f"r{i}" for i in range(501))), BLOCK_ROOMS),
        (FormInput(verb="mute-all", rooms="<@U0ALICE01>"), BLOCK_ROOMS),
        (FormInput(verb="rename", rooms="r1", value="n" * 101), BLOCK_VALUE),
        (FormInput(verb="rename", rooms="r1", value=""), BLOCK_VALUE),
        (FormInput(verb="set-capacity", rooms="r1", value="lots"), BLOCK_VALUE),
        (FormInput(verb="set-capacity", rooms="r1", value=""), BLOCK_VALUE),
        (FormInput(verb="seat-mode", rooms="r1", value="sometimes"), BLOCK_VALUE),
        (FormInput(verb="set", rooms="r1", value="volume=11"), BLOCK_VALUE),
        (FormInput(verb="kick", rooms="r1", value="<@U0ALICE01>"), BLOCK_VALUE),
        (FormInput(verb="lock-seat", rooms="r1", value="two"), BLOCK_VALUE),
        (FormInput(verb="mute-seat", rooms="r1", value=""), BLOCK_VALUE),
        (FormInput(verb="ban", rooms="r1", value="u1", duration="forever"), BLOCK_DURATION),
        (FormInput(verb="ban", rooms="r1", value="u1", duration=""), BLOCK_DURATION),
        (FormInput(verb="mute-all", rooms="r1", reason="r" * 1001), BLOCK_REASON),
        (FormInput(verb="show", rooms="r1", reason="curious"), BLOCK_REASON),
        (FormInput(verb="show", rooms="r1", dry_run=True), BLOCK_OPTIONS),
    ],
)
def test_a_parse_error_lands_on_its_field_with_the_parsers_message(
    form: FormInput, block_id: str
) -> None:
    with pytest.raises(ParseError) as refused:
        _parsed(form)
    rejected = Rejected(message=refused.value.message, usage=refused.value.usage)
    assert field_error(form, rejected, "", max_rooms=500) == FieldError(
        block_id, refused.value.message
    )


def test_a_value_missing_from_the_form_is_reported_on_the_picker() -> None:
    # The form was submitted before it was redrawn for `rename`: no value field to blame.
    form = FormInput(verb="rename", rooms="r1", value=None)
    with pytest.raises(ParseError) as refused:
        _parsed(form)
    assert field_of(form, refused.value.message, max_rooms=500) == BLOCK_VERB


def test_refusals_that_are_not_the_parsers_land_on_the_picker() -> None:
    form = FormInput(verb="mute-all", rooms="r1")
    denial = Denial(verb="mute-all", user_id="U0MALLORY", channel_id="C0GENERAL1")
    denied = field_error(form, Rejected.by_policy(Decision.deny(denial)), "", max_rooms=500)
    assert denied.block_id == BLOCK_VERB
    assert denied.text.startswith(
        "You (U0MALLORY) are not allowed to run `mute-all` in this channel."
    )
    assert "<@" not in denied.text  # plain text: a field error shows no mrkdwn
    store = Rejected(message="the audit store that keeps confirmations is not working")
    assert field_error(form, store, "", max_rooms=500) == FieldError(BLOCK_VERB, store.message)
    assert field_error(form, None, "error id abc123", max_rooms=500) == FieldError(
        BLOCK_VERB, "error id abc123"
    )


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        (FormInput(verb=None, rooms="r1"), FieldError(BLOCK_VERB, "Pick a command.")),
        (FormInput(verb="help", rooms="r1"), FieldError(BLOCK_VERB, "Pick a command.")),
        (
            FormInput(verb="mute-all", rooms="  \n"),
            FieldError(BLOCK_ROOMS, "`mute-all` needs a room ID."),
        ),
        (
            FormInput(verb="rename", rooms="r1 r2", value="x"),
            FieldError(BLOCK_ROOMS, "`rename` takes one room, got 2."),
        ),
        (
            FormInput(verb="kick", rooms="r1 r2", value="u1"),
            FieldError(BLOCK_ROOMS, "`kick` takes one room, got 2."),
        ),
        (
            FormInput(verb="mute-all", rooms="r1", value="room-2"),
            FieldError(BLOCK_VALUE, "`mute-all` takes no value: leave this empty."),
        ),
        (FormInput(verb="mute-all", rooms="r1 r2"), None),
        (FormInput(verb="mute-all", rooms="r1", value=""), None),
        (FormInput(verb="timeline", rooms=""), None),  # no room: every room
        (FormInput(verb="timeline", rooms="r1 r2"), None),
    ],
)
def test_what_the_typed_language_cannot_express_is_caught_first(
    form: FormInput, problem: FieldError | None
) -> None:
    # `rename r1 r2 x` would rename r1 to "r2 x", and `mute-all r1 room-2` mute room-2 too:
    # the form refuses rather than let a field spill into another.
    assert form_problem(form) == problem


def test_every_verb_the_form_offers_is_a_real_verb() -> None:
    assert all(VERBS[v].kind is not VerbKind.HELP for v in EVERY_VERB)
