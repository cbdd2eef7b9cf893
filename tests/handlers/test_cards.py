"""Room cards: state at a glance, the toggles the asker may use, and Block Kit's limits for 500
rooms, long names and every verb (checked with the same rules the fake Slack applies)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.audit import Source
from bot.commands import VERBS, parse_command
from bot.commands.tokens import word
from bot.models import RoomInfo, RoomSnapshot, Seat, SeatList
from bot.outcomes import Actor, Failure, FailureKind, NeedsConfirmation, RoomView
from handlers import blocks, card_blocks
from handlers.card_blocks import CardClick, CardPrompt, show_message
from testkit.slack_api import block_problems

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EVERY_VERB = frozenset(VERBS)
LOCKDOWN = ("IsAudioDisabled", "IsVideoDisabled", "IsMessageDisabled", "IsScreenSharingDisabled")


def _view(
    room_id: str = "room-test",
    *,
    name: str | None = None,
    allowed: frozenset[str] = EVERY_VERB,
    **fields: Any,
) -> RoomView:
    room = RoomInfo.model_validate(
        {
            "RoomId": room_id,
            "RoomName": room_id if name is None else name,
            "MemberCount": 3,
            "MaxMemberCount": 100,
            **fields,
        }
    )
    return RoomView(
        room_id=room_id,
        snapshot=RoomSnapshot(room=room, request_id="Id-" + "0" * 32),
        allowed_verbs=allowed,
    )


def _seated(view: RoomView, *seats: Seat) -> RoomView:
    listed = SeatList(view.room_id, seats, "Id-" + "1" * 32)
    return RoomView(
        room_id=view.room_id,
        snapshot=view.snapshot,
        allowed_verbs=view.allowed_verbs,
        seats=listed,
    )


def _buttons(message_blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for b in message_blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "button"
    ]


def _check_limits(message: blocks.Message) -> None:
    assert block_problems(message.blocks) == []
    assert len(message.blocks) <= blocks.MAX_BLOCKS
    assert len(message.text) <= blocks.MAX_TEXT_CHARS
    for button in _buttons(message.blocks):
        assert len(button["action_id"]) <= blocks.MAX_ACTION_ID_CHARS
        assert len(button["value"]) <= blocks.MAX_VALUE_CHARS
        assert len(button["text"]["text"]) <= blocks.MAX_BUTTON_TEXT_CHARS


# -- what a card offers --------------------------------------------------------------------------


def test_a_card_offers_the_toggle_that_flips_each_setting() -> None:
    on = show_message([_view()])
    assert [b["text"]["text"] for b in _buttons(on.blocks)] == [
        "Mute all",
        "Disable chat",
        "Disable video",
        "Disable screen sharing",
        "Lockdown",
    ]
    locked: dict[str, Any] = dict.fromkeys(LOCKDOWN, True)
    off = show_message([_view(**locked)])
    assert [b["text"]["text"] for b in _buttons(off.blocks)] == [
        "Unmute all",
        "Enable chat",
        "Enable video",
        "Enable screen sharing",
        "Lift lockdown",
    ]
    # Partly locked down: lockdown is still offered (it sets what is not yet set).
    partly = show_message([_view(IsAudioDisabled=True)])
    labels = [b["text"]["text"] for b in _buttons(partly.blocks)]
    assert labels[0] == "Unmute all"
    assert labels[-1] == "Lockdown"


def test_a_card_offers_only_the_verbs_the_asker_may_run() -> None:
    message = show_message([_view(allowed=frozenset({"mute-all", "show", "lift-lockdown"}))])
    assert [b["action_id"] for b in _buttons(message.blocks)] == ["roombot_card.mute-all"]
    assert _buttons(show_message([_view(allowed=frozenset({"show"}))]).blocks) == []
    assert _buttons(show_message([_view(allowed=frozenset())]).blocks) == []  # e.g. the console


def test_a_room_that_could_not_be_read_has_a_card_without_buttons() -> None:
    failure = Failure(
        kind=FailureKind.API, message="room not exist", hint="check the ID", code=100004
    )
    ghost = RoomView(room_id="ghost", failure=failure, allowed_verbs=EVERY_VERB)
    message = show_message([_view(), ghost])
    assert "error 100004" in message.text
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    assert actions["block_id"] == "roombot_card_0"


def test_a_card_lists_the_rooms_seats_under_its_state() -> None:
    view = _seated(
        _view("town-hall"),
        Seat(0, "host"),
        Seat(1, "heckler", video_forbidden=True),
        Seat(2, "speaker", audio_forbidden=True),
        Seat(3, locked=True),
    )
    message = show_message([view])
    section, seats, actions = message.blocks
    assert (section["type"], seats["type"], actions["type"]) == ("section", "context", "actions")
    line = seats["elements"][0]["text"]
    assert line == (
        "Seats (3/4 taken, 1 locked): 0 · `host`; 1 · `heckler` · 🚫 video forbidden; "
        "2 · `speaker` · 🚫 audio forbidden; 3 · empty · 🔒 locked"
    )
    assert line in message.text
    _check_limits(message)


def test_seats_that_could_not_be_read_leave_the_card_whole_and_say_why() -> None:
    failure = Failure(kind=FailureKind.API, message="", hint="retry later", code=100001)
    base = _view("town-hall")
    view = RoomView(
        room_id="town-hall",
        snapshot=base.snapshot,
        allowed_verbs=EVERY_VERB,
        seats_failure=failure,
    )
    message = show_message([view])
    _, seats, _ = message.blocks
    assert seats["elements"][0]["text"].startswith("Seats could not be read: error 100001")
    assert len(_buttons(message.blocks)) == 5  # the room's toggles are all there


def test_a_room_without_seats_or_whose_seats_were_not_read_has_no_seats_line() -> None:
    for view in (_view(), _seated(_view())):
        assert [b["type"] for b in show_message([view]).blocks] == ["section", "actions"]


def test_ten_cards_of_a_hundred_seats_each_fit_with_the_rest_counted() -> None:
    rooms = [f"{i:02d}" + "x" * 46 for i in range(card_blocks.MAX_CARDS)]
    views = [
        _seated(
            _view(r, name="é" * 50, CustomInfo="c" * 500),
            *(Seat(i, f"{i:03d}" + "a" * 29, locked=i % 7 == 0) for i in range(100)),
        )
        for r in rooms
    ]
    message = show_message(views)
    _check_limits(message)
    seats = [b for b in message.blocks if b["type"] == "context"]
    assert len(seats) == card_blocks.MAX_CARDS
    assert all("…and 84 more (`seats " in b["elements"][0]["text"] for b in seats)


def test_a_button_carries_its_verb_room_and_every_carded_room() -> None:
    message = show_message([_view("room-1"), _view("room-2")])
    values = {CardClick.decode(b["value"]) for b in _buttons(message.blocks)}
    assert CardClick("mute-all", "room-2", ("room-1", "room-2")) in values
    assert {c.room for c in values if c is not None} == {"room-1", "room-2"}
    for junk in ("", "not json", "[]", '{"v": 1}', '{"v": "a", "r": "b", "s": [1]}'):
        assert CardClick.decode(junk) is None
    assert CardClick.decode('{"v":"mute-all","r":"r1","s":[]}') == CardClick(
        "mute-all", "r1", ("r1",)
    )


def test_a_prompt_in_a_cards_place_carries_its_key_and_the_carded_rooms() -> None:
    # JSON doubles these characters
    rooms = tuple(f"{i:02d}" + '"\\' * 23 for i in range(card_blocks.MAX_CARDS))
    command = parse_command("lockdown " + " ".join(word(r) for r in rooms))
    actor = Actor(user_id="U0ALICE01", source=Source.BUTTON, channel_id="C0GENERAL1")
    needs = NeedsConfirmation(command=command, actor=actor, key="f" * 32, reason="why")

    message = card_blocks.card_confirmation(needs, rooms)

    _check_limits(message)
    confirm, cancel = _buttons(message.blocks)
    assert (confirm["action_id"], cancel["action_id"]) == (
        card_blocks.ACTION_CARD_CONFIRM,
        card_blocks.ACTION_CARD_CANCEL,
    )
    assert CardPrompt.decode(confirm["value"]) == CardPrompt("f" * 32, rooms)
    assert cancel["value"] == confirm["value"]
    # Without card rooms it is the ordinary prompt, whose buttons carry only the key.
    plain = _buttons(blocks.confirmation_message(needs).blocks)
    assert [(b["action_id"], b["value"]) for b in plain] == [
        (blocks.ACTION_CONFIRM, "f" * 32),
        (blocks.ACTION_CANCEL, "f" * 32),
    ]
    for junk in ("", "f" * 32, "[]", '{"k": "", "s": ["r"]}', '{"k": "a", "s": []}', '{"k": 1}'):
        assert CardPrompt.decode(junk) is None


# -- limits --------------------------------------------------------------------------------------


def test_ten_rooms_of_48_bytes_with_100_byte_names_fit_as_cards() -> None:
    rooms = [f"{i:02d}" + '"\\' * 23 for i in range(card_blocks.MAX_CARDS)]  # JSON doubles these
    views = [_view(r, name="é" * 50, CustomInfo="c" * 500) for r in rooms]
    message = show_message(views)
    _check_limits(message)
    assert len(_buttons(message.blocks)) == 5 * card_blocks.MAX_CARDS
    assert all(len(r) == 48 for r in rooms)


def test_500_rooms_are_listed_one_line_each_within_the_limits() -> None:
    views = [
        _view(f"room-{i:03d}-" + "x" * 39, name="n" * 100, IsAudioDisabled=i % 2 == 0)
        for i in range(500)
    ]
    message = show_message(views)
    _check_limits(message)
    assert _buttons(message.blocks) == []
    listed = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    assert all(f"`{v.room_id}`" in listed for v in views)
    assert "⛔ audio off" in listed


def test_what_does_not_fit_is_counted_not_dropped_silently() -> None:
    hint = "the room does not exist or was destroyed — check the ID " * 5
    failure = Failure(kind=FailureKind.API, message="room not exist", hint=hint, code=100004)
    views = [RoomView(room_id=f"ghost-{i:03d}-" + "x" * 38, failure=failure) for i in range(500)]
    message = show_message(views)
    _check_limits(message)
    listed = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    shown = [v.room_id for v in views if v.room_id in listed]
    assert 0 < len(shown) < 500
    assert shown == [v.room_id for v in views[: len(shown)]]  # in order, none skipped
    note = message.blocks[-1]
    assert note["type"] == "context"
    assert f"{500 - len(shown)} more rooms not shown" in note["elements"][0]["text"]


def test_a_name_with_a_line_break_stays_on_its_line() -> None:
    line = card_blocks.room_summary_line(_view("r1", name="Town\nhall <!channel>"))
    assert "\n" not in line
    assert "&lt;!channel&gt;" in line


_room_ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=48)
_names = st.text(st.characters(exclude_categories=["Cs"]), max_size=100)


@_SETTINGS
@given(
    rooms=st.lists(st.tuples(_room_ids, _names), min_size=1, max_size=40, unique_by=lambda r: r[0]),
    flags=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_any_room_ids_and_names_fit_slacks_limits(
    rooms: list[tuple[str, str]], flags: list[bool]
) -> None:
    state: dict[str, Any] = dict(zip(LOCKDOWN, flags, strict=True))
    views = [_view(room, name=name, **state) for room, name in rooms]
    message = show_message(views)
    _check_limits(message)
    for button in _buttons(message.blocks):
        click = CardClick.decode(button["value"])
        assert click is not None
        assert click.rooms == tuple(room for room, _ in rooms)
        assert button["action_id"] == card_blocks.card_action_id(click.verb)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_card_action_id_is_short(verb: str) -> None:
    assert len(card_blocks.card_action_id(verb)) <= blocks.MAX_ACTION_ID_CHARS


# -- a card's button can only be a card's toggle on one of its rooms (issue 27, item 3) -----------


@pytest.mark.parametrize(
    "value",
    [
        {"v": "kick room-x alice bob --reason", "r": "room-x"},
        {"v": "kick", "r": "room-x", "s": ["room-x"]},
        {"v": "destroy", "r": "room-x", "s": ["room-x"]},
        {"v": "set", "r": "room-x", "s": ["room-x"]},
        {"v": "mute-all", "r": "room-x room-y", "s": ["room-x room-y"]},
        {"v": "mute-all", "r": "room-y", "s": ["room-x"]},
        {"v": "mute-all", "r": "room-x", "s": [f"r{i}" for i in range(11)] + ["room-x"]},
        {"v": "mute-all", "r": "", "s": [""]},
        {"v": "mute-all --dry-run", "r": "room-x", "s": ["room-x"]},
    ],
)
def test_a_value_outside_the_closed_set_is_not_a_click(value: dict[str, Any]) -> None:
    import json

    assert CardClick.decode(json.dumps(value)) is None


def test_the_buttons_own_verb_only() -> None:
    value = CardClick("mute-all", "room-x", ("room-x",)).encode()
    assert CardClick.decode(value, card_blocks.card_action_id("mute-all")) is not None
    assert CardClick.decode(value, card_blocks.card_action_id("unmute-all")) is None


json_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=30)


@given(
    st.dictionaries(
        st.sampled_from(["v", "r", "s", "k"]),
        json_leaves | st.lists(json_leaves, max_size=12),
        max_size=4,
    )
)
def test_whatever_the_value_a_click_is_a_toggle_on_one_carded_room(data: dict[str, Any]) -> None:
    import json

    from bot.models import room_id_problem

    click = CardClick.decode(json.dumps(data))
    if click is None:
        return
    assert click.verb in card_blocks.CARD_VERBS
    assert room_id_problem(click.room) is None
    assert click.room in click.rooms
    assert len(click.rooms) <= card_blocks.MAX_CARDS
