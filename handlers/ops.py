"""The operational endpoints every `roombot serve` mode listens on: `/healthz`, `/readyz`,
`/metrics`.

* `GET /healthz` — 200 while the process is alive and its event loop turns: `ok`, the background
  work in flight, how long the loop took to come back to this request (`loop_lag_ms`), and
  whether it is draining after SIGTERM (`draining`; it still answers every request then).
* `GET /readyz` — 200 when the audit database answers, Slack accepts the bot token
  (`auth.test`) and Room Engine is reachable with our credentials; else 503 naming each failing
  part (`tencent: cannot connect to …`). Checked at most every `READY_CACHE_S` seconds, from a
  cache (`bot.readiness`); never a secret in the answer.
* `GET /metrics` — Prometheus text format: `bot.metrics.REGISTRY` plus this app's work in flight.
  The text is generated at most once per `METRICS_MAX_AGE_S` (about 1.5 ms of CPU each time);
  scrapes within that second get the same text, so however eager the scrapers, it costs little.

`Operations` holds what the endpoints need (the readiness cache, a Room Engine client without
retries for the probe, the exposition registry); `add_ops_routes` puts the routes on an aiohttp
application and closes the probe client with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.readiness import (
    PART_TIMEOUT_S,
    Check,
    NotReady,
    Readiness,
    database_part,
    tencent_part,
)
from bot.tencent.client import RetryPolicy, RoomEngineClient
from handlers.slack_client import slack_error_code

if TYPE_CHECKING:
    from handlers.app import Bot

#: How long one generated /metrics text is served again (seconds).
METRICS_MAX_AGE_S: Final = 1.0

HEALTHZ_PATH: Final = "/healthz"
READYZ_PATH: Final = "/readyz"
METRICS_PATH: Final = "/metrics"

#: Slack's answers to auth.test that mean the token itself is no good (not a network problem).
REJECTED_TOKEN_ERRORS: Final = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)


class TokenRejected(NotReady):
    """Slack refused SLACK_BOT_TOKEN (invalid, revoked, expired): retrying will not help."""


def slack_part(client: AsyncWebClient) -> Check:
    """Slack accepts the bot token: `auth.test`."""

    async def check() -> str:
        try:
            answer = await client.auth_test()
        except SlackApiError as exc:
            error = slack_error_code(exc)
            if error in REJECTED_TOKEN_ERRORS:
                raise TokenRejected(f"Slack rejected SLACK_BOT_TOKEN ({error})") from None
            raise NotReady(f"auth.test failed ({error})") from None
        except (aiohttp.ClientError, OSError, SlackRequestError) as exc:
            raise NotReady(f"cannot reach {client.base_url} ({type(exc).__name__})") from None
        return f"token valid for team {answer.get('team_id') or '?'}"

    return check


class _Forward(Collector):
    """Exposes another registry's metrics (roombot's process-wide `bot.metrics.REGISTRY`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


class _WorkInFlight(Collector):
    """`roombot_work_in_flight`: this app's background jobs running or waiting."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "roombot_work_in_flight",
            "Requests acknowledged whose work is running or waiting to run.",
            value=self._bot.runtime.tasks.pending,
        )

    def describe(self) -> Iterable[Metric]:
        return []


@dataclass
class Operations:
    """What the operational endpoints need for one bot; `aclose()` releases the probe client."""

    bot: Bot
    readiness: Readiness
    registry: CollectorRegistry
    _probe: RoomEngineClient | None = field(default=None, repr=False)
    _exposition: tuple[float, bytes] | None = field(default=None, repr=False)

    def exposition(self, now: float) -> bytes:
        """The /metrics text, generated again only when the last one is `METRICS_MAX_AGE_S` old."""
        cached = self._exposition
        if cached is not None and now - cached[0] < METRICS_MAX_AGE_S:
            return cached[1]
        body = generate_latest(self.registry)
        self._exposition = (now, body)
        return body

    @classmethod
    def for_bot(cls, bot: Bot) -> Operations:
        """Readiness of the bot's audit store, Slack token and Room Engine; the exposition."""
        probe = None
        parts: dict[str, Check] = {
            "database": database_part(bot.audit),
            "slack": slack_part(bot.slack),
        }
        if bot.settings.tencent_configured:
            # One attempt, a short timeout, shared rate budget, not counted as the bot's calls.
            probe = RoomEngineClient.from_settings(
                bot.settings,
                timeout_s=PART_TIMEOUT_S,
                retry=RetryPolicy(max_attempts=1, total_budget_s=PART_TIMEOUT_S),
                count_calls=False,
            )
            parts["tencent"] = tencent_part(probe)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Forward(metrics.REGISTRY))
        registry.register(_WorkInFlight(bot))
        return cls(bot, Readiness(parts), registry, probe)

    async def aclose(self) -> None:
        """Close the probe's connections."""
        if self._probe is not None:
            await self._probe.aclose()


def add_ops_routes(web_app: web.Application, ops: Operations) -> None:
    """Serve `/healthz`, `/readyz` and `/metrics` from `web_app`; close `ops` with it."""

    async def healthz(_request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        asked = loop.time()
        await asyncio.sleep(0)  # how long until the loop comes back to us: its responsiveness
        lag = loop.time() - asked
        return web.json_response(
            {
                "ok": True,
                "in_flight": ops.bot.runtime.tasks.pending,
                "loop_lag_ms": round(lag * 1000, 3),
                "draining": ops.readiness.stopping,
            }
        )

    async def readyz(_request: web.Request) -> web.Response:
        report = await ops.readiness.report()
        return web.json_response(
            report.as_dict(time.monotonic()), status=200 if report.ready else 503
        )

    async def metrics_text(_request: web.Request) -> web.Response:
        # Probes ask /healthz, so a scrape is what keeps `roombot_ready` current: a stale answer
        # is checked again in the background (this scrape shows the previous one).
        ops.readiness.refresh_soon()
        body = ops.exposition(time.monotonic())
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def close(_app: web.Application) -> None:
        await ops.aclose()

    web_app.router.add_get(HEALTHZ_PATH, healthz)
    web_app.router.add_get(READYZ_PATH, readyz)
    web_app.router.add_get(METRICS_PATH, metrics_text)
    web_app.on_cleanup.append(close)
