"""Signed Slack payloads: checked against slack_sdk's verifier and fed to a real bolt AsyncApp
served over HTTP (its `/slack/events` endpoint), which must accept and route each of them."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond, AsyncSay
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from testkit import (
    FakeSlack,
    app_mention,
    block_actions,
    form_body,
    interactive_body,
    sign,
    slash_command,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-bot-token"

# The slash command fields the Slack reference lists (Enterprise Grid ones come only on Grid).
SLASH_FIELDS = {
    "token",
    "team_id",
    "team_domain",
    "channel_id",
    "channel_name",
    "user_id",
    "user_name",
    "command",
    "text",
    "api_app_id",
    "is_enterprise_install",
    "response_url",
    "trigger_id",
}


# -- signatures --------------------------------------------------------------------------------


def test_signature_matches_slack_sdk_and_verifies() -> None:
    body = form_body(slash_command("mute-all room-1", response_url="http://127.0.0.1:1/r"))
    headers = sign(body, SECRET, timestamp=1_700_000_000)

    verifier = SignatureVerifier(SECRET)
    expected = verifier.generate_signature(timestamp="1700000000", body=body)
    assert headers == {"X-Slack-Signature": expected, "X-Slack-Request-Timestamp": "1700000000"}
    assert headers["X-Slack-Signature"].startswith("v0=")
    assert verifier.is_valid_request(body, sign(body, SECRET))


def test_signature_fails_for_another_body_secret_or_stale_time() -> None:
    body = b"text=hello"
    verifier = SignatureVerifier(SECRET)

    assert not verifier.is_valid_request(body + b"!", sign(body, SECRET))
    assert not verifier.is_valid_request(body, sign(body, "another-secret"))
    assert not verifier.is_valid_request(body, sign(body, SECRET, int(time.time()) - 301))


# -- payload shapes ----------------------------------------------------------------------------


def test_slash_command_has_every_field_slack_sends_as_strings() -> None:
    fields = slash_command("set room-1 audio=off", response_url="http://127.0.0.1:1/r/x")

    assert set(fields) == SLASH_FIELDS
    assert all(isinstance(value, str) for value in fields.values())
    assert fields["command"] == "/room"
    assert fields["text"] == "set room-1 audio=off"
    assert fields["is_enterprise_install"] == "false"
    assert fields["user_id"] == "U0ALICE01"
    assert fields["response_url"] == "http://127.0.0.1:1/r/x"
    assert fields["trigger_id"] != slash_command("x", response_url="u")["trigger_id"]


def test_slash_command_overrides_replace_and_add_fields() -> None:
    fields = slash_command(
        "help",
        response_url="u",
        channel_id="D0DIRECT01",
        channel_name="directmessage",
        enterprise_id="E0GRID0001",
    )
    assert fields["channel_id"] == "D0DIRECT01"
    assert fields["channel_name"] == "directmessage"
    assert fields["enterprise_id"] == "E0GRID0001"


def test_form_body_encodes_like_slack() -> None:
    body = form_body({"text": "rename room-1 Ops & “War” room", "command": "/room"})
    assert parse_qs(body.decode()) == {
        "text": ["rename room-1 Ops & “War” room"],
        "command": ["/room"],
    }


def test_app_mention_envelope() -> None:
    envelope = app_mention("mute-all room-1", user="U0BOB0001", channel="C0OPS00001", ts="1.5")

    assert envelope["type"] == "event_callback"
    assert envelope["event_id"].startswith("Ev")
    assert isinstance(envelope["event_time"], int)
    assert envelope["authorizations"][0]["user_id"] == "UBOT0001"
    event = envelope["event"]
    assert event["type"] == "app_mention"
    assert event["text"] == "<@UBOT0001> mute-all room-1"
    assert (event["user"], event["channel"], event["ts"], event["event_ts"]) == (
        "U0BOB0001",
        "C0OPS00001",
        "1.5",
        "1.5",
    )
    assert "thread_ts" not in event
    section = event["blocks"][0]["elements"][0]["elements"]
    assert section[0] == {"type": "user", "user_id": "UBOT0001"}
    assert app_mention("x")["event_id"] != app_mention("x")["event_id"]


def test_app_mention_in_thread_and_explicit_mention_position() -> None:
    event = app_mention("hey <@UBOT0001> show room-1", thread_ts="1700000000.000100")["event"]
    assert event["text"] == "hey <@UBOT0001> show room-1"
    assert event["thread_ts"] == "1700000000.000100"


def test_block_actions_payload_and_body() -> None:
    payload = block_actions(
        "roombot_confirm",
        "opaque-state",
        user_id="U0ALICE01",
        channel_id="C0GENERAL1",
        message_ts="1700000000.000200",
        thread_ts="1700000000.000100",
        response_url="http://127.0.0.1:1/response/b",
    )

    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U0ALICE01"
    [action] = payload["actions"]
    assert (action["action_id"], action["value"], action["type"]) == (
        "roombot_confirm",
        "opaque-state",
        "button",
    )
    assert payload["container"]["message_ts"] == "1700000000.000200"
    assert payload["container"]["thread_ts"] == "1700000000.000100"
    assert payload["message"]["thread_ts"] == "1700000000.000100"
    decoded = parse_qs(interactive_body(payload).decode())
    assert json.loads(decoded["payload"][0]) == payload
    ephemeral = block_actions("a", "v", message_ts="1.2", response_url="u", is_ephemeral=True)
    assert "message" not in ephemeral


# -- a real bolt app accepts them over HTTP ----------------------------------------------------


@dataclass
class _Seen:
    commands: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Bolt:
    url: str
    slack: FakeSlack
    seen: _Seen


@pytest.fixture
async def bolt() -> AsyncIterator[_Bolt]:
    async with FakeSlack(bot_token=BOT_TOKEN) as slack:
        app = AsyncApp(
            signing_secret=SECRET,
            client=AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url),
        )
        seen = _Seen()

        @app.command("/room")
        async def _room(ack: AsyncAck, command: dict[str, Any]) -> None:
            seen.commands.append(command)
            await ack(f"got {command['text']}")

        @app.event("app_mention")
        async def _mention(event: dict[str, Any], say: AsyncSay) -> None:
            seen.mentions.append(event)
            await say(text="on it", thread_ts=event.get("thread_ts") or event["ts"])

        @app.action("roombot_confirm")
        async def _confirm(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
            await ack()
            seen.actions.append(body)
            await respond(text="confirmed", replace_original=False)

        runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            yield _Bolt(f"http://127.0.0.1:{port}/slack/events", slack, seen)
        finally:
            await runner.cleanup()


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.text()


async def test_bolt_accepts_a_signed_slash_command(bolt: _Bolt) -> None:
    fields = slash_command("mute-all room-1 --reason drill", response_url=bolt.slack.response_url())
    body = form_body(fields)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, SECRET)}

    status, text = await _post(bolt.url, body, headers)

    assert (status, text) == (200, "got mute-all room-1 --reason drill")
    assert bolt.seen.commands == [fields]
    # bolt authorised the request with auth.test against the fake.
    assert len(bolt.slack.calls_to("auth.test")) == 1


async def test_bolt_rejects_a_tampered_or_stale_request(bolt: _Bolt) -> None:
    body = form_body(slash_command("lockdown room-1", response_url=bolt.slack.response_url()))
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    tampered = body.replace(b"room-1", b"room-2")
    assert (await _post(bolt.url, tampered, {**form, **sign(body, SECRET)}))[0] == 401
    stale = sign(body, SECRET, int(time.time()) - 600)
    assert (await _post(bolt.url, body, {**form, **stale}))[0] == 401
    assert bolt.seen.commands == []


async def test_bolt_routes_a_signed_app_mention_and_replies_in_thread(bolt: _Bolt) -> None:
    envelope = app_mention("show room-1", ts="1700000001.000100")
    body = json.dumps(envelope).encode()
    headers = {"Content-Type": "application/json", **sign(body, SECRET)}

    status, _ = await _post(bolt.url, body, headers)

    assert status == 200
    await bolt.slack.wait_for(lambda: bool(bolt.slack.messages("C0GENERAL1")))
    assert bolt.seen.mentions == [envelope["event"]]
    [reply] = bolt.slack.messages("C0GENERAL1")
    assert (reply["text"], reply["thread_ts"]) == ("on it", "1700000001.000100")


async def test_bolt_routes_a_signed_button_click_and_responds(bolt: _Bolt) -> None:
    payload = block_actions(
        "roombot_confirm",
        "state-123",
        message_ts="1700000000.000200",
        response_url=bolt.slack.response_url("click"),
    )
    body = interactive_body(payload)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, SECRET)}

    status, _ = await _post(bolt.url, body, headers)

    assert status == 200
    await bolt.slack.wait_for(lambda: bool(bolt.slack.response_posts))
    assert bolt.seen.actions[0]["actions"][0]["value"] == "state-123"
    [(key, posted)] = bolt.slack.response_posts
    assert key == "click"
    assert posted["text"] == "confirmed"
