"""The Slack Web API client as roombot uses it: `SLACK_API_URL`, a shared session, and 429s
retried only when Slack asks for a wait roombot is willing to make.

slack_sdk's `AsyncRateLimitErrorRetryHandler` sleeps whatever `Retry-After` says: an hour, if
Slack says an hour, holding a request (and one of the few background job slots) all that time.
`CappedRateLimitRetryHandler` retries only waits up to `MAX_RETRY_AFTER_S`; beyond that the call
fails at once with Slack's `ratelimited` error, and delivery falls back to another way (the
response_url, an ephemeral message) and says so.

Every Web API method goes through `api_call`, so `CountingWebClient` sees every failed call,
whoever made it (delivery, the middleware, readiness, user-group lookups): it counts it in
`roombot_slack_api_errors_total{method,error}` and lets the exception go on unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot import metrics
from bot.config import Settings

#: The longest `Retry-After` (seconds) roombot waits out before retrying a Web API call.
MAX_RETRY_AFTER_S: Final = 10.0


def retry_after_s(response: HttpResponse) -> float | None:
    """The `Retry-After` of a response in seconds, or None when absent or unreadable."""
    for name, values in response.headers.items():
        if name.lower() == "retry-after":
            try:
                return float(values[0])
            except (ValueError, IndexError):
                return None
    return None


class CappedRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """Retries a 429 like slack_sdk does, but only when `Retry-After` is at most `max_wait_s`."""

    def __init__(self, max_retry_count: int = 2, max_wait_s: float = MAX_RETRY_AFTER_S) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_s = max_wait_s

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = retry_after_s(response)
        return wait is not None and 0 <= wait <= self.max_wait_s


def slack_error_code(exc: SlackApiError) -> str:
    """Slack's `error` of a failed call, or `http_error` when the answer was not the Web API's."""
    data = getattr(exc.response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return "http_error"


class CountingWebClient(AsyncWebClient):
    """An `AsyncWebClient` whose failed calls are counted by method and Slack error."""

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            metrics.count_slack_error(api_method, slack_error_code(exc))
            raise
        except TimeoutError:
            metrics.count_slack_error(api_method, "timeout")
            raise
        except (aiohttp.ClientError, OSError, SlackRequestError, asyncio.IncompleteReadError):
            metrics.count_slack_error(api_method, "transport")
            raise


def sdk_logger() -> logging.Logger:
    """slack_sdk's Web API logger, with an explicit level (its effective one, normally WARNING).

    slack_sdk decides whether to build its debug lines from the logger's own `level`, not its
    effective one: on a logger left at NOTSET (0 <= DEBUG) it formats the whole request and
    response (blocks included) into two strings on every call, which the level then drops. That
    was about a third of what slack_sdk added to a call over aiohttp's own cost.
    """
    logger = logging.getLogger("slack_sdk.web.async_base_client")
    if logger.level == logging.NOTSET:
        logger.setLevel(logger.getEffectiveLevel())
    return logger


def build_slack_client(
    settings: Settings, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """The Web API client: `SLACK_API_URL`, short `Retry-After` waits honoured on HTTP 429,
    failures counted (`CountingWebClient`).

    Pass a long-lived `session` to reuse connections: without one, slack_sdk opens (and closes)
    a new connection for every call, which was most of roombot's CPU per command.
    """
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = CountingWebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=15,
        session=session,
        logger=sdk_logger(),
    )
    handlers: list[AsyncRetryHandler] = [CappedRateLimitRetryHandler()]
    client.retry_handlers.extend(handlers)
    return client
