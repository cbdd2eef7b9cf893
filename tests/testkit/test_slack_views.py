"""The fake Slack's views (views.open / update / publish), its DMs, and the view payloads, driven
by slack_sdk's real AsyncWebClient as roombot drives them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from testkit import (
    ALICE,
    FakeSlack,
    app_home_opened,
    view_block_actions,
    view_state,
    view_submission,
)
from testkit.slack_api import block_problems, view_problems

BOT_TOKEN = "xoxb-test-bot-token"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)


def _error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return str(excinfo.value.response["error"])


def _messages(excinfo: pytest.ExceptionInfo[SlackApiError]) -> list[str]:
    return list(excinfo.value.response["response_metadata"]["messages"])


def _modal(**extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "form",
        "title": {"type": "plain_text", "text": "A form"},
        "submit": {"type": "plain_text", "text": "Run"},
        "private_metadata": '{"c":"C0GENERAL1"}',
        "blocks": [
            {
                "type": "input",
                "block_id": "verb",
                "label": {"type": "plain_text", "text": "Command"},
                "element": {
                    "type": "static_select",
                    "action_id": "pick",
                    "options": [
                        {"text": {"type": "plain_text", "text": v}, "value": v}
                        for v in ("mute-all", "show")
                    ],
                },
            },
            {
                "type": "input",
                "block_id": "rooms",
                "label": {"type": "plain_text", "text": "Rooms"},
                "element": {"type": "plain_text_input", "action_id": "rooms", "max_length": 3000},
            },
            {
                "type": "input",
                "block_id": "options",
                "optional": True,
                "label": {"type": "plain_text", "text": "Options"},
                "element": {
                    "type": "checkboxes",
                    "action_id": "opts",
                    "options": [
                        {"text": {"type": "plain_text", "text": "Dry run"}, "value": "dry"}
                    ],
                },
            },
        ],
        **extra,
    }


# -- views.open and its trigger_id ---------------------------------------------------------------


async def test_views_open_takes_an_issued_trigger_once_and_keeps_the_view(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    trigger = slack.issue_trigger_id()
    opened = await client.views_open(trigger_id=trigger, view=_modal())

    view = opened["view"]
    assert view["id"].startswith("V")
    assert view["hash"]
    assert view["private_metadata"] == '{"c":"C0GENERAL1"}'
    assert view["state"] == {"values": {}}
    assert slack.view(view["id"]) == view
    assert slack.latest_view() == view
    [call] = slack.calls_to("views.open")
    assert call.params["trigger_id"] == trigger

    with pytest.raises(SlackApiError) as again:
        await client.views_open(trigger_id=trigger, view=_modal())
    assert _error(again) == "exchanged_trigger_id"


async def test_views_open_refuses_an_unknown_or_expired_trigger() -> None:
    async with FakeSlack(trigger_ttl_s=0.05) as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        with pytest.raises(SlackApiError) as unknown:
            await client.views_open(trigger_id="12345.98765.abcd", view=_modal())
        assert _error(unknown) == "invalid_arguments"
        assert _messages(unknown) == ["invalid `trigger_id`"]

        trigger = slack.issue_trigger_id()
        await asyncio.sleep(0.1)
        with pytest.raises(SlackApiError) as late:
            await client.views_open(trigger_id=trigger, view=_modal())
        assert _error(late) == "expired_trigger_id"


async def test_views_need_no_scope(slack: FakeSlack) -> None:
    async with FakeSlack(scopes=()) as bare:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=bare.api_url)
        await client.views_open(trigger_id=bare.issue_trigger_id(), view=_modal())
        await client.views_publish(user_id=ALICE, view={"type": "home", "blocks": []})


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"title": {"type": "plain_text", "text": "x" * 25}}, "/view/title/text"),
        ({"private_metadata": "m" * 3001}, "/view/private_metadata"),
        ({"callback_id": "c" * 256}, "/view/callback_id"),
        ({"type": "home"}, "/view/type"),
        (
            {"blocks": [{"type": "divider", "block_id": f"b{i}"} for i in range(101)]},
            "/view/blocks",
        ),
        (
            {"blocks": [{"type": "divider", "block_id": "same"}] * 2},
            "/view/blocks/1/block_id",
        ),
    ],
)
async def test_views_open_checks_the_modal_against_slacks_limits(
    slack: FakeSlack, client: AsyncWebClient, change: dict[str, Any], pointer: str
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client.views_open(trigger_id=slack.issue_trigger_id(), view=_modal(**change))
    assert _error(refused) == "invalid_arguments"
    assert any(f"[json-pointer:{pointer}]" in m for m in _messages(refused)), _messages(refused)


def test_the_view_checks_cover_inputs_selects_and_checkboxes() -> None:
    modal = _modal()
    assert view_problems(modal, "modal") == []
    modal["blocks"][0]["element"]["initial_option"] = {
        "text": {"type": "plain_text", "text": "x"},
        "value": "x",
    }
    modal["blocks"][1]["element"]["max_length"] = 3001
    modal["blocks"][1]["label"]["text"] = "l" * 2001
    checkbox = modal["blocks"][2]["element"]["options"][0]
    checkbox["text"]["text"] = "t" * 76
    checkbox["value"] = "v" * 151
    del modal["submit"]

    problems = "\n".join(view_problems(modal, "modal"))

    for pointer in (
        "/view/blocks/0/element/initial_option]",
        "/view/blocks/1/element/max_length]",
        "/view/blocks/1/label/text]",
        "/view/blocks/2/element/options/0/text/text]",
        "/view/blocks/2/element/options/0/value]",
        "/view]",
    ):
        assert pointer in problems, problems


def test_a_select_menu_offers_at_most_100_options() -> None:
    modal = _modal()
    modal["blocks"][0]["element"]["options"] = [
        {"text": {"type": "plain_text", "text": f"verb {i}"}, "value": f"v{i}"} for i in range(101)
    ]
    assert view_problems(modal, "modal") == [
        "must provide 1 to 100 items [json-pointer:/view/blocks/0/element/options]"
    ]


def test_block_checks_find_duplicate_action_ids_in_one_block() -> None:
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Go"},
        "action_id": "go",
        "value": "1",
    }
    assert block_problems([{"type": "actions", "elements": [button, button]}]) == [
        "duplicate action_id [json-pointer:/blocks/0/elements]"
    ]


# -- views.update and views.publish --------------------------------------------------------------


async def test_views_update_replaces_the_view_and_checks_its_hash(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    opened = (await client.views_open(trigger_id=slack.issue_trigger_id(), view=_modal()))["view"]

    updated = await client.views_update(
        view_id=opened["id"], hash=opened["hash"], view=_modal(callback_id="form2")
    )

    assert updated["view"]["id"] == opened["id"]
    assert updated["view"]["hash"] != opened["hash"]
    assert slack.latest_view()["callback_id"] == "form2"
    with pytest.raises(SlackApiError) as stale:
        await client.views_update(view_id=opened["id"], hash=opened["hash"], view=_modal())
    assert _error(stale) == "hash_conflict"
    with pytest.raises(SlackApiError) as unknown:
        await client.views_update(view_id="V0NOPE", view=_modal())
    assert _error(unknown) == "not_found"


async def test_views_publish_keeps_one_home_tab_per_user(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    assert slack.home_view(ALICE) is None
    first = await client.views_publish(user_id=ALICE, view={"type": "home", "blocks": []})
    home = {"type": "home", "blocks": [{"type": "divider"}]}
    second = await client.views_publish(user_id=ALICE, view=home)

    assert second["view"]["id"] == first["view"]["id"]
    published = slack.home_view(ALICE)
    assert published is not None
    assert published["blocks"] == [{"type": "divider"}]
    with pytest.raises(SlackApiError) as modal:
        await client.views_publish(user_id=ALICE, view=_modal())
    assert _error(modal) == "invalid_arguments"
    with pytest.raises(SlackApiError) as nobody:
        await client.views_publish(user_id="not-a-user", view=home)
    assert _error(nobody) == "invalid_arguments"


# -- DMs -----------------------------------------------------------------------------------------


async def test_a_post_to_a_user_id_lands_in_the_apps_dm(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=ALICE, text="your room")

    dm = slack.dm_channel(ALICE)
    assert dm.startswith("D")
    assert posted["channel"] == dm
    [stored] = slack.messages(dm)
    assert stored["text"] == "your room"
    await client.chat_update(channel=dm, ts=posted["ts"], text="updated")
    assert slack.messages(dm)[0]["text"] == "updated"


# -- payloads ------------------------------------------------------------------------------------


def test_view_state_is_what_slack_sends_for_a_filled_in_form() -> None:
    state = view_state(_modal(), {"verb": "mute-all", "rooms": "room-test", "options": ["dry"]})
    values = state["values"]
    assert values["verb"]["pick"]["selected_option"]["value"] == "mute-all"
    assert values["rooms"]["rooms"] == {"type": "plain_text_input", "value": "room-test"}
    assert [o["value"] for o in values["options"]["opts"]["selected_options"]] == ["dry"]

    empty = view_state(_modal(), {})["values"]
    assert empty["rooms"]["rooms"]["value"] is None
    assert empty["verb"]["pick"]["selected_option"] is None
    assert empty["options"]["opts"]["selected_options"] == []


def test_view_state_refuses_what_no_one_could_submit() -> None:
    with pytest.raises(ValueError, match="no input block"):
        view_state(_modal(), {"reason": "x"})
    with pytest.raises(ValueError, match="not offered"):
        view_state(_modal(), {"verb": "destroy"})


def test_view_submission_and_block_actions_carry_the_view_and_the_user() -> None:
    view = {**_modal(), "id": "V0FORM0001", "hash": "1.2"}
    submitted = view_submission(view, {"rooms": "room-test"}, user_id="U0BOB0001")
    assert submitted["type"] == "view_submission"
    assert submitted["user"]["id"] == "U0BOB0001"
    assert submitted["view"]["private_metadata"] == view["private_metadata"]
    assert submitted["view"]["state"]["values"]["rooms"]["rooms"]["value"] == "room-test"
    json.dumps(submitted)  # JSON all the way down, as Slack posts it

    picked = view_block_actions(view, "pick", value="show")
    assert picked["container"] == {"type": "view", "view_id": "V0FORM0001"}
    assert picked["actions"][0]["selected_option"]["value"] == "show"
    assert "channel" not in picked
    assert "response_url" not in picked
    with pytest.raises(ValueError, match="no element"):
        view_block_actions(view, "nope")


def test_app_home_opened_is_an_event_callback_for_the_user() -> None:
    envelope = app_home_opened("U0BOB0001")
    event = envelope["event"]
    assert envelope["type"] == "event_callback"
    assert event == {
        "type": "app_home_opened",
        "user": "U0BOB0001",
        "channel": "D0BOB0001",
        "tab": "home",
        "event_ts": event["event_ts"],
    }
    assert app_home_opened(tab="messages")["event"]["tab"] == "messages"
