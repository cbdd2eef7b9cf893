"""`handlers.middleware`: who is asking, taken from Slack's envelope and nowhere else.

Payloads come from `testkit.slack_payloads`, built exactly as Slack sends them.
"""

from __future__ import annotations

from typing import Any

import pytest
from slack_bolt.context.async_context import AsyncBoltContext

from bot.outcomes import Actor, Source
from handlers import blocks
from handlers.form import FormContext, form_view
from handlers.middleware import actor_from_body, actor_of, attach_actor
from testkit.slack_payloads import (
    ALICE,
    GENERAL,
    TEAM_ID,
    app_home_opened,
    app_mention,
    block_actions,
    slash_command,
    view_block_actions,
    view_submission,
)

BOB = "U0BOB0001"
INCIDENT = "C0INCIDENT"
RESPONSE_URL = "https://hooks.slack.com/commands/T0TEAM001/1/abc"


def test_a_slash_command_is_asked_by_its_user_id() -> None:
    body = slash_command("mute-all room-test", response_url=RESPONSE_URL)
    assert actor_from_body(body) == Actor(
        user_id=ALICE, source=Source.SLASH, team_id=TEAM_ID, channel_id=GENERAL
    )


def test_an_app_mention_is_asked_by_the_events_user_in_its_channel() -> None:
    envelope = app_mention("mute-all room-test", channel=INCIDENT)
    assert actor_from_body(envelope) == Actor(
        user_id=ALICE, source=Source.MENTION, team_id=TEAM_ID, channel_id=INCIDENT
    )


def test_a_button_click_is_asked_by_whoever_clicked() -> None:
    payload = block_actions(
        "roombot_undo", "key", user_id=BOB, message_ts="1.000001", response_url=RESPONSE_URL
    )
    assert actor_from_body(payload) == Actor(
        user_id=BOB, source=Source.BUTTON, team_id=TEAM_ID, channel_id=GENERAL
    )


def test_the_user_comes_only_from_the_envelope() -> None:
    # Text and values that name someone else grant nothing: the envelope's user is the actor.
    slash = slash_command(f"mute-all room-test user_id={BOB} <@{BOB}>", response_url=RESPONSE_URL)
    mention = app_mention(f"<@{BOB}> mute-all room-test")
    click = block_actions(
        "roombot_confirm", BOB, message_ts="1.000002", response_url=RESPONSE_URL, user_id=ALICE
    )
    click["message"]["user"] = BOB
    for body in (slash, mention, click):
        actor = actor_from_body(body)
        assert actor is not None
        assert actor.user_id == ALICE


def test_a_mention_in_a_thread_keeps_its_channel() -> None:
    envelope = app_mention("show room-test", channel=INCIDENT, thread_ts="1.000003")
    actor = actor_from_body(envelope)
    assert actor is not None
    assert actor.channel_id == INCIDENT


def _other_event() -> dict[str, Any]:
    envelope = app_mention("hello")
    envelope["event"]["type"] = "message"
    return envelope


def _mention_without_user() -> dict[str, Any]:
    envelope = app_mention("mute-all room-test")
    del envelope["event"]["user"]
    return envelope


def _slash_without_user() -> dict[str, str]:
    body = slash_command("mute-all room-test", response_url=RESPONSE_URL)
    body["user_id"] = ""
    return body


def _click_without_user() -> dict[str, Any]:
    payload = block_actions("a", "v", message_ts="1.000004", response_url=RESPONSE_URL)
    del payload["user"]
    return payload


def _view_submission_without_user() -> dict[str, Any]:
    payload = view_submission(_form(), {"rooms": "room-test"})
    del payload["user"]
    return payload


def _home_opened_without_user() -> dict[str, Any]:
    envelope = app_home_opened()
    del envelope["event"]["user"]
    return envelope


def _form(channel: str = INCIDENT) -> dict[str, Any]:
    """The /room form as Slack holds it after views.open: the view plus its id."""
    view = form_view(["mute-all"], FormContext(channel_id=channel, response_url=RESPONSE_URL))
    return {**view, "id": "V0FORM0001", "hash": "1.1"}


def test_a_form_submission_is_asked_in_the_channel_the_form_was_opened_from() -> None:
    body = view_submission(_form(INCIDENT), {"verb": "mute-all", "rooms": "room-test"}, user_id=BOB)
    assert actor_from_body(body) == Actor(
        user_id=BOB, source=Source.MODAL, team_id=TEAM_ID, channel_id=INCIDENT
    )


def test_a_pick_inside_the_form_is_the_forms_not_a_button() -> None:
    body = view_block_actions(_form(INCIDENT), "roombot_form_verb", value="mute-all")
    actor = actor_from_body(body)
    assert actor == Actor(user_id=ALICE, source=Source.MODAL, team_id=TEAM_ID, channel_id=INCIDENT)


def test_a_view_without_roombots_metadata_has_no_channel() -> None:
    view = {**_form(), "private_metadata": '{"c": ["not", "a", "channel"]}'}
    actor = actor_from_body(view_submission(view, {}))
    assert actor is not None
    assert actor.channel_id is None


def test_a_click_on_the_home_tab_is_a_button_in_no_channel() -> None:
    home = {
        "type": "home",
        "id": "V0HOME0001",
        "blocks": [
            {
                "type": "section",
                "block_id": "b",
                "text": {"type": "mrkdwn", "text": "`room-test`"},
                "accessory": blocks.button("Show", "roombot_home_show", "room-test"),
            }
        ],
    }
    actor = actor_from_body(view_block_actions(home, "roombot_home_show", user_id=BOB))
    assert actor == Actor(user_id=BOB, source=Source.BUTTON, team_id=TEAM_ID, channel_id=None)


def test_opening_the_home_tab_is_asked_by_its_user_in_no_channel() -> None:
    # The event names the user's DM with the app, but the Home tab is in no channel: policy
    # guardrails must not treat the DM as one.
    actor = actor_from_body(app_home_opened(BOB))
    assert actor == Actor(user_id=BOB, source=Source.HOME, team_id=TEAM_ID, channel_id=None)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty"),
        pytest.param({"type": "url_verification", "challenge": "x"}, id="url_verification"),
        pytest.param(_other_event(), id="message-event"),
        pytest.param(_mention_without_user(), id="mention-without-user"),
        pytest.param(_slash_without_user(), id="slash-without-user"),
        pytest.param(_click_without_user(), id="click-without-user"),
        pytest.param(_view_submission_without_user(), id="view-submission-without-user"),
        pytest.param(_home_opened_without_user(), id="home-opened-without-user"),
        pytest.param({"user_id": ALICE, "text": "mute-all room-test"}, id="no-command-field"),
    ],
)
def test_anything_else_has_no_actor(body: dict[str, Any]) -> None:
    assert actor_from_body(body) is None


async def test_attach_actor_puts_the_actor_where_listeners_read_it() -> None:
    context = AsyncBoltContext()
    called: list[bool] = []

    async def next_() -> None:
        called.append(True)

    await attach_actor(
        slash_command("show room-test", response_url=RESPONSE_URL, user_id=BOB), context, next_
    )
    assert called == [True]
    assert actor_of(context).user_id == BOB


async def test_a_request_without_an_actor_still_reaches_its_listener() -> None:
    context = AsyncBoltContext()
    called: list[bool] = []

    async def next_() -> None:
        called.append(True)

    await attach_actor({"type": "url_verification"}, context, next_)
    assert called == [True]
    with pytest.raises(LookupError, match="attach_actor"):
        actor_of(context)
