"""How Slack shows time-boxed changes (`--for`): the result's note and buttons, a room card's
"until" line, the App Home's list of the user's timers."""

from __future__ import annotations

import json
import time

from bot.commands import parse_command
from bot.models import RoomInfo, RoomSnapshot
from bot.outcomes import (
    Access,
    Activity,
    Actor,
    PendingTimer,
    RoomResult,
    RoomView,
    RunKind,
    RunResult,
    Source,
)
from handlers import blocks
from handlers.card_blocks import room_card
from handlers.home_view import home_view

ALICE = "U0ALICE01"


def _timer(due: float) -> PendingTimer:
    return PendingTimer(
        request_key="t" * 32,
        reverts="r" * 32,
        command=parse_command("mute-all room-1 --for 30m"),
        user_id=ALICE,
        due=due,
        channel_id="C1",
    )


def _run(*, revert_key: str | None, reverts_at: float | None) -> RunResult:
    command = parse_command("mute-all room-1 --for 30m")
    return RunResult(
        command=command,
        actor=Actor(user_id=ALICE, source=Source.SLASH),
        request_key="k" * 32,
        results=[
            RoomResult(
                "room-1",
                {"IsAudioDisabled": True},
                previous={"IsAudioDisabled": False},
                request_id="Id-1",
            )
        ],
        kind=RunKind.REQUEST,
        reverts_at=reverts_at,
        revert_key=revert_key,
    )


def test_a_timeboxed_result_says_when_it_ends_and_offers_the_three_buttons() -> None:
    due = time.time() + 1800
    [message] = blocks.result_messages(_run(revert_key="t" * 32, reverts_at=due))
    assert "⏰ This change reverts at " in message.text
    assert ", in 30 min" in message.text or ", in 29 min" in message.text
    actions = next(b for b in message.blocks if b["type"] == "actions")
    ids = {e["action_id"]: e["value"] for e in actions["elements"]}
    assert {a: ids[a] for a in blocks.TIMER_ACTIONS} == dict.fromkeys(
        blocks.TIMER_ACTIONS, "t" * 32
    )
    assert blocks.ACTION_UNDO in ids


def test_a_timeboxed_change_whose_timer_was_not_recorded_says_it_stays() -> None:
    [message] = blocks.result_messages(_run(revert_key=None, reverts_at=None))
    assert "could not be recorded" in message.text
    assert "this change stays until someone undoes it" in message.text
    assert blocks.ACTION_KEEP not in json.dumps(message.blocks)


def test_a_room_card_says_until_when() -> None:
    room = RoomInfo.model_validate({"RoomId": "room-1", "IsAudioDisabled": True})
    view = RoomView(
        room_id="room-1",
        snapshot=RoomSnapshot(room=room, request_id="Id-" + "0" * 32),
        timers=(_timer(time.time() + 600),),
    )
    text = json.dumps(room_card(view, 0, ["room-1"]))
    assert "audio muted until " in text
    assert "(in 10 min)" in text or "(in 9 min)" in text
    assert f"<@{ALICE}>" in text


def test_the_app_home_lists_the_users_timers() -> None:
    access = Access(user_id=ALICE, everywhere=("mute-all", "show"), only_in=())
    activity = Activity(user_id=ALICE, timers=(_timer(time.time() + 3600),))
    text = json.dumps(home_view(access, activity))
    assert "Your time-boxed changes" in text
    assert "audio muted until" in text
    assert "Your time-boxed changes" not in json.dumps(home_view(access, Activity(user_id=ALICE)))
