"""Alerts about changes made outside roombot (room settings, seats) and Tencent's rate
warnings: posted to `ROOMBOT_ALERT_CHANNEL` with bursts coalesced, and the Show button those
messages carry.

Slack accepts about one message per second per channel, so `AlertPoster` posts at most one
message every `ALERT_INTERVAL_S`: the first change after a quiet spell goes out at once, and
whatever arrives while it waits for its turn goes into the next message (listing the first
`blocks.ALERT_MAX_LISTED`, counting the rest). A storm of changes is a few messages, not a
flood, and every change is in the audit trail whatever the channel shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.outcomes import Actor, OutsideChange, RateWarning
from bot.presenter import Presenter
from handlers import blocks
from handlers.blocks import Message
from handlers.delivery import SLACK_FAILURES, ThreadReporter, slack_error
from handlers.middleware import actor_of
from handlers.runtime import SlackRuntime

log = logging.getLogger(__name__)

#: Seconds between two alert messages (Slack: about one message per second per channel).
ALERT_INTERVAL_S: Final = 1.1
#: Changes waiting for the next message beyond this are only counted ("…and N more").
MAX_PENDING: Final = 1000

#: What an alert reports: a change made outside roombot, or a rate warning.
Alert = OutsideChange | RateWarning


class AlertPoster:
    """Posts `OutsideChange`s and `RateWarning`s to one channel, coalescing bursts (see the
    module docstring).

    `add()` never blocks or fails; a background task (started on first use, in the running
    loop) does the posting. `close()` posts what is still waiting, within a grace period.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        *,
        interval_s: float = ALERT_INTERVAL_S,
        max_pending: int = MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self.channel = channel
        self._interval_s = interval_s
        self._max_pending = max_pending
        self._clock = clock
        self._sleep = sleep
        self._pending: list[Alert] = []
        self._overflow = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._last_post = -math.inf
        #: Messages posted so far (each may list several changes).
        self.messages_posted = 0

    @property
    def waiting(self) -> int:
        """Changes not yet posted (listed or counted)."""
        return len(self._pending) + self._overflow

    def add(self, change: Alert) -> None:
        """Queue `change` (or a warning) for the next message."""
        if len(self._pending) < self._max_pending:
            self._pending.append(change)
        else:
            self._overflow += 1
        self._idle.clear()
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="roombot-alerts")

    async def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued has been posted (or given up on); False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, grace_s: float = 5.0) -> None:
        """Post what is waiting (up to `grace_s`), then stop; what is left is logged."""
        if self._worker is None:
            return
        if not await self.flush(grace_s):
            log.error(
                "stopping with %d change(s) made outside roombot not alerted "
                "(they are in the audit trail)",
                self.waiting,
            )
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            wait = self._last_post + self._interval_s - self._clock()
            if wait > 0:
                await self._sleep(wait)  # whatever arrives meanwhile joins this message
            self._wake.clear()
            batch, more = self._pending, self._overflow
            self._pending, self._overflow = [], 0
            if batch or more:
                await self._post(batch, more)
                self._last_post = self._clock()
            if not self._pending and not self._overflow:
                self._idle.set()

    async def _post(self, batch: list[Alert], more: int) -> None:
        message = blocks.outside_changes_message(batch, more)
        try:
            await self._client.chat_postMessage(
                channel=self.channel,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
            self.messages_posted += 1
        except SLACK_FAILURES as exc:
            log.error(
                "could not post an alert in %s (%s): %d change(s) made outside roombot are only "
                "in the audit trail",
                self.channel,
                slack_error(exc),
                len(batch) + more,
            )
        except Exception:
            log.exception(
                "could not post an alert in %s: %d change(s) made outside roombot are only in "
                "the audit trail",
                self.channel,
                len(batch) + more,
            )


def register(app: AsyncApp, presenter: Presenter[Message], runtime: SlackRuntime) -> None:
    """Attach the alerts' Show button: `show ROOM` for whoever clicks, policy checked, answered
    only to them."""

    @app.action(blocks.ACTION_SHOW)
    async def on_show(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        actor = actor_of(context)
        room = str(body["actions"][0].get("value") or "")

        async def tell(correlation_id: str) -> None:
            await _answer(body, client, actor, presenter.renderer.unexpected_error(correlation_id))

        runtime.tasks.spawn(_show(presenter, actor, room, body, client), on_error=tell)


async def _show(
    presenter: Presenter[Message],
    actor: Actor,
    room: str,
    body: dict[str, Any],
    client: AsyncWebClient,
) -> None:
    await _answer(body, client, actor, (await presenter.show_rooms([room], actor)).message)


async def _answer(
    body: dict[str, Any], client: AsyncWebClient, actor: Actor, message: Message
) -> None:
    """Only to whoever clicked: through the click's response_url, else postEphemeral."""
    reporter = ThreadReporter(
        client=client,
        channel=actor.channel_id or "",
        user_id=actor.user_id,
        response_url=body.get("response_url"),
    )
    if not await reporter.tell(message):
        log.warning("could not answer a Show click of %s", actor.user_id)
