"""`POST /tencent/callback`: Room Engine callbacks on roombot's HTTP port, in either mode.

The route exists only when `ROOMBOT_CALLBACK_TOKEN` is set (`build_receiver` returns None
otherwise). A request is authenticated from its query before anything else is read
(`bot.callbacks.authenticate`; 401 and one short log line when it fails), parsed (400 when it
cannot be; a body over `MAX_BODY_BYTES` is refused with 413 as soon as it passes the cap,
whether it announced its length or came chunked), and answered `{"ActionStatus": "OK", ...}` at
once. Member callbacks are counted right there (no I/O), and so are seat callbacks that
report only people taking and leaving seats (`CallbackProcessor.note_seats`, against the seats
last seen, in arrival order). The room-level ones, the seat changes left and
`Alert.RequestOverLimit` wait in a bounded queue for one worker that handles them in arrival
order after the answer (`CallbackProcessor.handle` / `handle_seats`: de-duplication, the echo
rule, the audit row; `over_limit`: the rate budget halved) and hands what it finds to the
alerts. A full queue answers 503, so a storm can never grow memory or tasks without bound.

`add_callback_route(web_app, receiver)` is what both serving modes call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.audit import AuditStore
from bot.budget import RateLimits
from bot.callbacks import (
    OK_ANSWER,
    CallbackError,
    CallbackProcessor,
    Delivery,
    Handled,
    Handling,
    SeatNews,
    authenticate,
    parse_callback,
)
from bot.callbacks.traffic import FLUSH_S
from bot.config import Settings
from bot.logs import log_unexpected
from bot.models import CallbackCommand
from handlers.alerts import AlertPoster

log = logging.getLogger(__name__)

CALLBACK_PATH: Final = "/tencent/callback"
#: Callbacks waiting for the worker; beyond this the answer is 503.
MAX_QUEUED: Final = 1000
#: Larger bodies are refused (413) unread: a real callback is a few hundred bytes.
MAX_BODY_BYTES: Final = 64 * 1024


# Encoded once: at hundreds of member callbacks a second, every microsecond is the acks'.
_OK_BODY: Final = json.dumps(OK_ANSWER).encode()


def _ok() -> web.Response:
    return web.Response(body=_OK_BODY, content_type="application/json")


def _failure(status: int, info: str) -> web.Response:
    return web.json_response(
        {"ActionStatus": "FAIL", "ErrorCode": status, "ErrorInfo": info}, status=status
    )


class CallbackReceiver:
    """Answers callback requests and feeds them to `processor`; see the module docstring.

    `alerts` receives every `OutsideChange` (None: they are logged only). The worker starts on
    the first room-level callback, in the running loop; `close()` lets it finish what is queued.
    """

    def __init__(
        self,
        processor: CallbackProcessor,
        *,
        token: str,
        sdkappid: int,
        alerts: AlertPoster | None = None,
        clock: Callable[[], float] = time.time,
        max_queued: int = MAX_QUEUED,
        flush_s: float = FLUSH_S,
    ) -> None:
        if not token:
            raise ValueError("a callback receiver needs a token")
        self.processor = processor
        self.alerts = alerts
        self._token = token
        self._sdkappid = sdkappid
        self._clock = clock
        self._queue: asyncio.Queue[Delivery | SeatNews] = asyncio.Queue(maxsize=max_queued)
        self._worker: asyncio.Task[None] | None = None
        # Member traffic is written a while after its first unwritten count (`flush_s`).
        self._flush_s = flush_s
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        #: How each delivery was handled, by outcome (tests and the bench read it).
        self.handled: dict[Handling, int] = dict.fromkeys(Handling, 0)

    @property
    def queued(self) -> int:
        """Callbacks answered but not yet handled."""
        return self._queue.qsize()

    async def handle_request(self, request: web.Request) -> web.Response:
        """The aiohttp handler of `POST /tencent/callback`."""
        query = {key: request.query.getone(key) for key in request.query}
        try:
            authenticate(query, token=self._token, sdkappid=self._sdkappid, now=self._clock())
        except CallbackError as exc:
            log.warning("callback refused (%s) from %s", exc, request.remote)
            metrics.count_callback(query.get("CallbackCommand", ""), "unauthorized")
            return _failure(exc.status, "unauthorized")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            log.warning("callback refused: a %d-byte body", request.content_length)
            return _failure(413, "body too large")
        body = await _read_at_most(request, MAX_BODY_BYTES)
        if body is None:
            log.warning("callback refused: a body over %d bytes", MAX_BODY_BYTES)
            return _failure(413, "body too large")
        try:
            delivery = parse_callback(query, body)
        except CallbackError as exc:
            log.warning("callback rejected: %s", exc)
            metrics.count_callback(query.get("CallbackCommand", ""), "invalid")
            return _failure(exc.status, str(exc))
        if not self.submit(delivery):
            metrics.count_callback(delivery.event.command.value, "busy")
            return _failure(503, "busy, try again")
        return _ok()

    def submit(self, delivery: Delivery) -> bool:
        """Count a member callback (or a seat callback of sit/leave traffic) now, or queue the
        rest for the worker. False when the queue is full (the delivery is then dropped and
        logged)."""
        command = delivery.event.command
        item: Delivery | SeatNews = delivery
        if command is CallbackCommand.SEAT_INFO_CHANGED:
            if self._queue.full():  # refused before it is noted: Tencent may deliver it again
                self._refuse(delivery)
                return False
            news = self.processor.note_seats(delivery)
            if news is None:
                self._note(Handled(Handling.COUNTED))
                return True
            item = news
        elif not delivery.event.room_level and command is not CallbackCommand.REQUEST_OVER_LIMIT:
            self._note(self.processor.count(delivery))
            if self.processor.traffic.waiting and self._flush_timer is None:
                loop = asyncio.get_running_loop()
                self._flush_timer = loop.call_later(self._flush_s, self._start_flush)
            return True
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._refuse(delivery)
            return False
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="roombot-callbacks")
        return True

    def _start_flush(self) -> None:
        self._flush_timer = None
        task = asyncio.create_task(self._flush(), name="roombot-member-traffic")
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self) -> None:
        try:
            await self.processor.flush_traffic()
        except Exception:
            log_unexpected(log, "member traffic could not be written")

    def _refuse(self, delivery: Delivery) -> None:
        log.error(
            "callback %s for room %s refused: %d callbacks already waiting",
            delivery.event.command.value,
            delivery.event.room_id or "-",
            self._queue.maxsize,
        )

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued callback has been handled (`TimeoutError` after
        `timeout_s`)."""
        async with asyncio.timeout(timeout_s):
            await self._queue.join()

    async def close(self, grace_s: float = 5.0) -> None:
        """Handle what is queued (up to `grace_s`), stop the worker, write the member traffic
        counted, flush the alerts."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._flushing:
            await asyncio.wait(self._flushing, timeout=grace_s)
        await self._flush()
        if self._worker is not None:
            try:
                await self.settle(grace_s)
            except TimeoutError:
                log.error("stopping with %d callback(s) not handled", self.queued)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self.alerts is not None:
            await self.alerts.close(grace_s)

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            delivery = item.delivery if isinstance(item, SeatNews) else item
            try:
                if isinstance(item, SeatNews):
                    self._note(await self.processor.handle_seats(item))
                else:
                    self._note(await self.processor.handle(item))
            except Exception:
                log_unexpected(
                    log,
                    "callback %s for room %s failed",
                    delivery.event.command.value,
                    delivery.event.room_id or "-",
                )
            finally:
                self._queue.task_done()

    def _note(self, handled: Handled) -> None:
        self.handled[handled.handling] += 1
        if handled.warning is not None and self.alerts is not None:
            self.alerts.add(handled.warning)
        change = handled.change
        if change is None:
            return
        log.info(
            "change made outside roombot: room %s %s by %s (%s)",
            change.room_id,
            change.kind.value,
            change.operator,
            ", ".join(
                [
                    *change.changed,
                    *change.reported,
                    *(f"seat {e.index} {e.kind}" for e in change.seats),
                ]
            )
            or "no fields",
        )
        if self.alerts is not None:
            self.alerts.add(change)


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The request's body, or None as soon as it passes `limit` bytes: the cap holds while
    reading, for a chunked body too (which announces no length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_receiver(
    settings: Settings,
    store: AuditStore,
    slack: AsyncWebClient,
    limits: RateLimits | None = None,
) -> CallbackReceiver | None:
    """The receiver `settings` ask for: None without `ROOMBOT_CALLBACK_TOKEN`; alerts only
    with `ROOMBOT_ALERT_CHANNEL`. `limits` is the rate budget `Alert.RequestOverLimit` halves
    (the one the client's calls wait on)."""
    if settings.roombot_callback_token is None:
        return None
    settings.require("TENCENT_SDKAPPID", purpose="Room Engine callbacks")
    assert settings.tencent_sdkappid is not None
    alerts = None
    if settings.roombot_alert_channel is not None:
        alerts = AlertPoster(slack, settings.roombot_alert_channel)
    return CallbackReceiver(
        CallbackProcessor(store, admin_id=settings.tencent_admin_id, limits=limits),
        token=settings.roombot_callback_token.get_secret_value(),
        sdkappid=settings.tencent_sdkappid,
        alerts=alerts,
    )


def add_callback_route(web_app: web.Application, receiver: CallbackReceiver) -> None:
    """Serve `POST /tencent/callback` from `web_app` (HTTP mode's app, or Socket Mode's
    operational port)."""
    web_app.router.add_post(CALLBACK_PATH, receiver.handle_request)
