"""The Slack Web API client roombot uses: slack_sdk's `AsyncWebClient`, counting its failures.

Every Web API method goes through `api_call`, so one override sees every failed call, whoever
made it (delivery, the middleware, readiness, user-group lookups): it counts it in
`roombot_slack_api_errors_total{method,error}` and lets the exception go on unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot import metrics


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
