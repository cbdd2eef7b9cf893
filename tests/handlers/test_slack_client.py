"""The Web API client's direct path for the per-command calls (`chat.postMessage`,
`chat.update`): what reaches Slack, Slack's refusals and the retries are those of slack_sdk's
own path, against the fake Slack Web API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.config import load_settings
from handlers.slack_client import CountingWebClient, build_slack_client
from testkit.slack_api import FakeSlack

TOKEN = "xoxb-direct-test-token"
CHANNEL = "C0DIRECT01"
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*muted* room-1"}}]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def _client(slack: FakeSlack, session: aiohttp.ClientSession) -> AsyncWebClient:
    settings = load_settings(env_file=None, slack_bot_token=TOKEN, slack_api_url=slack.api_url)
    client = build_slack_client(settings, session)
    assert isinstance(client, CountingWebClient)
    return client


async def _post_and_update(client: AsyncWebClient) -> tuple[Any, Any]:
    posted = await client.chat_postMessage(
        channel=CHANNEL, text="muted room-1", blocks=BLOCKS, thread_ts=None
    )
    updated = await client.chat_update(
        channel=CHANNEL, ts=posted["ts"], text="✅ done", blocks=BLOCKS
    )
    return posted, updated


async def test_slack_receives_what_slack_sdks_own_path_sends(
    slack: FakeSlack, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = AsyncWebClient(token=TOKEN, base_url=slack.api_url, session=session)
    by_sdk = await _post_and_update(sdk)
    sdk_calls = list(slack.calls)

    async def not_sent_by_sdk(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the per-command calls take the direct path")

    monkeypatch.setattr(AsyncWebClient, "_send", not_sent_by_sdk)
    direct = await _post_and_update(_client(slack, session))
    direct_calls = slack.calls[len(sdk_calls) :]

    def seen(calls: list[Any]) -> list[tuple[str, dict[str, Any], str | None]]:
        # The update names the message its own post made: its ts differs between the two runs.
        return [
            (c.method, {k: v for k, v in c.params.items() if k != "ts"}, c.token) for c in calls
        ]

    assert seen(direct_calls) == seen(sdk_calls)
    assert [c.method for c in direct_calls] == ["chat.postMessage", "chat.update"]
    assert direct_calls[0].token == TOKEN
    for ours, theirs in zip(direct, by_sdk, strict=True):
        assert ours.status_code == theirs.status_code == 200
        assert ours["ok"] is True
        assert ours["channel"] == theirs["channel"] == CHANNEL
    assert direct[1]["ts"] == direct[0]["ts"]


async def test_a_refusal_is_slacks_error_and_is_counted(
    slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    client = _client(slack, session)
    before = metrics.value(
        "roombot_slack_api_errors_total", method="chat.update", error="message_not_found"
    )
    slack.fail("chat.update", "message_not_found")
    with pytest.raises(SlackApiError) as info:
        await client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    assert info.value.response["error"] == "message_not_found"
    assert info.value.response.status_code == 200
    after = metrics.value(
        "roombot_slack_api_errors_total", method="chat.update", error="message_not_found"
    )
    assert after == before + 1


async def test_a_short_rate_limit_is_waited_out_and_the_call_retried(
    slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    client = _client(slack, session)
    slack.rate_limit("chat.postMessage", retry_after=0, times=1)
    posted = await client.chat_postMessage(channel=CHANNEL, text="hi")
    assert posted["ok"] is True
    assert [c.method for c in slack.calls] == ["chat.postMessage", "chat.postMessage"]


async def test_a_long_rate_limit_fails_at_once_with_slacks_error(
    slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    client = _client(slack, session)
    slack.rate_limit("chat.postMessage", retry_after=3600, times=5)
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel=CHANNEL, text="hi")
    assert info.value.response["error"] == "ratelimited"
    assert info.value.response.status_code == 429
    assert len(slack.calls) == 1


async def test_a_dropped_connection_is_retried_once_like_slack_sdk_does(
    slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    client = _client(slack, session)
    slack.disconnect("chat.postMessage", times=1, applied=False)
    assert (await client.chat_postMessage(channel=CHANNEL, text="hi"))["ok"] is True
    before = metrics.value(
        "roombot_slack_api_errors_total", method="chat.postMessage", error="transport"
    )
    slack.disconnect("chat.postMessage", times=2, applied=False)
    with pytest.raises(aiohttp.ClientError):
        await client.chat_postMessage(channel=CHANNEL, text="hi")
    after = metrics.value(
        "roombot_slack_api_errors_total", method="chat.postMessage", error="transport"
    )
    assert after == before + 1
    assert [c.method for c in slack.calls] == ["chat.postMessage"] * 4
