"""`handlers.ops` and `handlers.slack_client` against the fake Slack Web API: the Slack readiness
part tells a rejected token from an unreachable Slack, and failed calls are counted."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, Counter
from slack_sdk.errors import SlackApiError

from bot import metrics
from bot.config import load_settings
from bot.readiness import NotReady, Readiness
from handlers.ops import METRICS_MAX_AGE_S, Operations, TokenRejected, slack_part
from handlers.slack_client import build_slack_client
from testkit.slack_api import FakeSlack

TOKEN = "xoxb-ops-test-token"


async def test_slack_part_accepts_a_valid_token_and_names_a_rejected_one() -> None:
    async with FakeSlack(bot_token=TOKEN) as slack:
        client = build_slack_client(
            load_settings(env_file=None, slack_bot_token=TOKEN, slack_api_url=slack.api_url)
        )
        check = slack_part(client)
        assert await check() == "token valid for team T0TEAM001"
        counted = metrics.value(
            "roombot_slack_api_errors_total", method="auth.test", error="token_revoked"
        )
        slack.fail("auth.test", "token_revoked")
        with pytest.raises(
            TokenRejected, match=r"Slack rejected SLACK_BOT_TOKEN \(token_revoked\)"
        ):
            await check()
        assert (
            metrics.value(
                "roombot_slack_api_errors_total", method="auth.test", error="token_revoked"
            )
            == counted + 1
        )
        slack.fail("auth.test", "internal_error")
        with pytest.raises(NotReady, match=r"auth.test failed \(internal_error\)") as info:
            await check()
        assert not isinstance(info.value, TokenRejected)
        api_url = slack.api_url
    with pytest.raises(NotReady, match=f"cannot reach {api_url}"):
        await check()


async def test_counting_client_passes_errors_through_unchanged() -> None:
    async with FakeSlack(bot_token=TOKEN) as slack:
        client = build_slack_client(
            load_settings(env_file=None, slack_bot_token=TOKEN, slack_api_url=slack.api_url)
        )
        before = metrics.value(
            "roombot_slack_api_errors_total", method="chat.postMessage", error="channel_not_found"
        )
        slack.private_channel("C0SECRET1")
        with pytest.raises(SlackApiError) as info:
            await client.chat_postMessage(channel="C0SECRET1", text="hi")
        assert info.value.response["error"] == "channel_not_found"
        after = metrics.value(
            "roombot_slack_api_errors_total", method="chat.postMessage", error="channel_not_found"
        )
        assert after == before + 1


def test_the_metrics_text_is_generated_at_most_once_a_second() -> None:
    registry = CollectorRegistry()
    counter = Counter("roombot_test_things", "Things.", registry=registry)
    ops = Operations(bot=None, readiness=Readiness({}), registry=registry)  # type: ignore[arg-type]
    first = ops.exposition(100.0)
    counter.inc()
    assert ops.exposition(100.0 + METRICS_MAX_AGE_S / 2) is first
    fresh = ops.exposition(100.0 + METRICS_MAX_AGE_S)
    assert b"roombot_test_things_total 1.0" in fresh


class _CountedRepr(dict[str, object]):
    """A block that counts how often it is turned into text (JSON encoding does not)."""

    reprs = 0

    def __repr__(self) -> str:
        type(self).reprs += 1
        return super().__repr__()


async def test_a_web_api_call_formats_no_debug_line_that_logging_would_drop() -> None:
    # slack_sdk builds its request and response debug lines whenever its logger's own level
    # is NOTSET; `build_slack_client` gives it an explicit one, so nothing is formatted.
    logging.getLogger("slack_sdk.web.async_base_client").setLevel(logging.NOTSET)
    async with FakeSlack(bot_token=TOKEN) as slack:
        client = build_slack_client(
            load_settings(env_file=None, slack_bot_token=TOKEN, slack_api_url=slack.api_url)
        )
        block = _CountedRepr(type="section", text={"type": "mrkdwn", "text": "hi"})
        await client.chat_postMessage(channel="C0GENERAL1", text="hi", blocks=[block])
        assert _CountedRepr.reprs == 0
        assert [c.params.get("text") for c in slack.calls_to("chat.postMessage")] == ["hi"]
