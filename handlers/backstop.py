"""The Slack adapter's last line: an error no listener handled still reaches the person.

bolt calls the handler registered with `app.error` for any exception a listener (or middleware)
lets escape. It is logged once, with a fresh correlation id (`bot.logs.log_unexpected`), and
the person who clicked or typed is told that id, privately: through the request's
`response_url` when it has one (commands, interactions), else an ephemeral message where it
came from. Nothing else is done: whatever the listener had already done stands. (bolt loses
an ack given in the same instant the listener then raised; Slack then says the command failed,
and this message says why.)
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.logs import log_unexpected
from handlers import blocks
from handlers.delivery import SLACK_FAILURES, post_response_url, slack_error

log = logging.getLogger(__name__)


def _response_url(body: dict[str, Any]) -> str | None:
    url = body.get("response_url")
    if isinstance(url, str) and url:
        return url
    urls = body.get("response_urls")  # a view submission's, when the form asked for one
    if isinstance(urls, list) and urls and isinstance(urls[0], dict):
        found = urls[0].get("response_url")
        return found if isinstance(found, str) else None
    return None


def _where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(user, channel) of a command, an interaction or an event."""
    found = body.get("event")
    event: dict[str, Any] = found if isinstance(found, dict) else {}
    user = body.get("user_id") or (body.get("user") or {}).get("id") or event.get("user")
    channel = (
        body.get("channel_id") or (body.get("channel") or {}).get("id") or event.get("channel")
    )
    return (user if isinstance(user, str) else None, channel if isinstance(channel, str) else None)


async def tell_unexpected(error: Exception, body: dict[str, Any], client: AsyncWebClient) -> str:
    """Log `error` with a fresh correlation id and tell the person it came from; the id."""
    correlation_id = log_unexpected(log, "a Slack listener failed", exc=error)
    message = blocks.Message(text=blocks.unexpected_error_text(correlation_id))
    if await post_response_url(client, _response_url(body), message, in_channel=False):
        return correlation_id
    user, channel = _where(body)
    if user and channel:
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=message.text)
        except SLACK_FAILURES as exc:
            log.warning(
                "could not tell %s about error [%s]: %s", user, correlation_id, slack_error(exc)
            )
    return correlation_id


def register(app: AsyncApp) -> None:
    """Install the backstop on `app`."""

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], client: AsyncWebClient) -> None:
        await tell_unexpected(error, body, client)
