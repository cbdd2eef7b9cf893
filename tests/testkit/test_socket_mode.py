"""The fake Socket Mode server, proven with a real bolt AsyncApp behind AsyncSocketModeHandler:
envelope in, ack out, message posted on the fake Web API."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncSay
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from testkit import (
    FakeSlack,
    FakeSocketMode,
    app_mention,
    block_actions,
    close_handler,
    slash_command,
)

BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-1-A0ROOMBOT1-test"


@dataclass
class _Connected:
    slack: FakeSlack
    socket: FakeSocketMode
    handler: AsyncSocketModeHandler
    clicks: list[dict[str, Any]]


def _build_app(slack: FakeSlack, clicks: list[dict[str, Any]]) -> AsyncApp:
    app = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url))

    @app.command("/room")
    async def _room(ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        await ack(f"working on {command['text']}")
        await client.chat_postMessage(channel=command["channel_id"], text=f"ran {command['text']}")

    @app.event("app_mention")
    async def _mention(event: dict[str, Any], say: AsyncSay) -> None:
        await say(text="on it", thread_ts=event.get("thread_ts") or event["ts"])

    @app.action("roombot_confirm")
    async def _confirm(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        clicks.append(body)

    return app


@pytest.fixture
async def connected() -> AsyncIterator[_Connected]:
    async with (
        FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack,
        FakeSocketMode() as socket,
    ):
        slack.attach_socket_mode(socket)
        clicks: list[dict[str, Any]] = []
        handler = AsyncSocketModeHandler(_build_app(slack, clicks), app_token=APP_TOKEN)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        try:
            await socket.wait_connected()
            yield _Connected(slack, socket, handler, clicks)
        finally:
            await close_handler(handler)


async def test_slash_command_envelope_is_acked_and_the_app_posts(connected: _Connected) -> None:
    slack, socket = connected.slack, connected.socket
    payload = slash_command("mute-all room-1", response_url=slack.response_url())

    envelope_id = await socket.send_envelope(type="slash_commands", payload=payload)
    ack = await socket.wait_for_ack(envelope_id)

    assert ack == {"envelope_id": envelope_id, "payload": {"text": "working on mute-all room-1"}}
    await slack.wait_for(lambda: bool(slack.messages("C0GENERAL1")))
    [message] = slack.messages("C0GENERAL1")
    assert message["text"] == "ran mute-all room-1"
    # The app got its connection URL from apps.connections.open, with the app-level token.
    [open_call] = slack.calls_to("apps.connections.open")
    assert open_call.token == APP_TOKEN


async def test_events_and_interactive_envelopes_are_acked(connected: _Connected) -> None:
    slack, socket = connected.slack, connected.socket

    mention = await socket.send_envelope(
        type="events_api", payload=app_mention("show room-1", ts="1700000005.000100")
    )
    click = await socket.send_envelope(
        type="interactive",
        payload=block_actions(
            "roombot_confirm", "state-9", message_ts="1.2", response_url=slack.response_url()
        ),
    )

    assert await socket.wait_for_ack(mention) == {"envelope_id": mention}
    assert await socket.wait_for_ack(click) == {"envelope_id": click}
    await slack.wait_for(lambda: bool(slack.thread("C0GENERAL1", "1700000005.000100")))
    assert connected.clicks[0]["actions"][0]["value"] == "state-9"
    envelope = socket.sent[0]
    assert (envelope["type"], envelope["accepts_response_payload"]) == ("events_api", False)
    assert envelope["retry_attempt"] == 0


async def test_client_reconnects_when_asked_to(connected: _Connected) -> None:
    slack, socket = connected.slack, connected.socket

    await socket.request_reconnect()
    await slack.wait_for(lambda: len(slack.calls_to("apps.connections.open")) == 2)
    await socket.wait_connected()

    envelope_id = await socket.send_envelope(
        type="slash_commands", payload=slash_command("help", response_url=slack.response_url())
    )
    assert (await socket.wait_for_ack(envelope_id))["payload"] == {"text": "working on help"}


async def test_wait_for_ack_times_out_with_a_report() -> None:
    async with FakeSocketMode() as socket:
        url = socket.issue_url()
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            hello = json.loads((await ws.receive()).data)
            assert hello["type"] == "hello"
            assert hello["connection_info"]["app_id"] == socket.app_id
            envelope_id = await socket.send_envelope(type="events_api", payload=app_mention("x"))
            with pytest.raises(AssertionError, match=envelope_id):
                await socket.wait_for_ack(envelope_id, timeout=0.1)


async def test_tickets_are_single_use() -> None:
    async with FakeSocketMode() as socket:
        url = socket.issue_url()
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url):
                pass
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await session.ws_connect(url)


async def test_connections_open_without_socket_mode_fails() -> None:
    async with FakeSlack() as slack:
        client = AsyncWebClient(token=APP_TOKEN, base_url=slack.api_url)
        with pytest.raises(SlackApiError):
            await client.apps_connections_open(app_token=APP_TOKEN)
        # A bot token is the wrong kind of token for this method, as on Slack.
        socket_mode = FakeSocketMode()
        slack.attach_socket_mode(socket_mode)
        with pytest.raises(SlackApiError) as excinfo:
            await client.apps_connections_open(app_token=BOT_TOKEN)
        assert excinfo.value.response["error"] == "not_allowed_token_type"


async def test_handler_closes_without_unclosed_session_noise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")
    async with (
        FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack,
        FakeSocketMode() as socket,
    ):
        slack.attach_socket_mode(socket)
        handler = AsyncSocketModeHandler(_build_app(slack, []), app_token=APP_TOKEN)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        await socket.wait_connected()
        await close_handler(handler)
        await slack.wait_for(lambda: socket.connections == 0)
    del handler
    gc.collect()

    noise = [r.getMessage() for r in caplog.records if "nclosed" in r.getMessage()]
    assert noise == []
