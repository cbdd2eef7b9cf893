"""Is this process ready for traffic? A few named checks ("parts"), cached, for `/readyz`.

`Readiness` runs every part concurrently, each bounded by `PART_TIMEOUT_S`, and keeps the answer
for `READY_CACHE_S`: a probe within that time is answered from the cache, and probes that arrive
while a check runs wait for that same check (one at a time, whatever the number of probes), so a
probe storm costs nothing. `stop()` makes it answer "not ready" from then on (shutting down).

A part is an async function that returns a short detail when all is well and raises `NotReady`
(with a one-line reason) when not. Every reason is scrubbed of secrets (`bot.redact`) before it
is shown. The parts the core knows are here: the audit database answers (`database_part`) and
Room Engine is reachable and accepts our credentials (`tencent_part`); the chat platform's
adapter adds its own (the Slack token, `auth.test`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from bot import metrics
from bot.audit import AuditError, AuditStore
from bot.errors import RoombotError
from bot.redact import scrub
from bot.tencent.client import RoomEngineClient
from bot.tencent.errors import (
    CONFIGURATION_CODES,
    ApiError,
    MalformedResponse,
    RequestTimeout,
    RoomEngineError,
    TransportError,
)

log = logging.getLogger(__name__)

#: How long a readiness answer is reused (seconds): checks run at most this often.
READY_CACHE_S: Final = 5.0
#: How long one part's check may take before it counts as failed.
PART_TIMEOUT_S: Final = 2.0
#: The room `tencent_part` asks about; it need not exist (100004 proves the credentials work).
PROBE_ROOM_ID: Final = "roombot-readiness-probe"

#: A part's check: a short detail when fine; raises `NotReady` when not.
Check = Callable[[], Awaitable[str]]


class NotReady(RoombotError):
    """A part is not ready; the message is one line saying why (no secrets)."""


@dataclass(frozen=True)
class PartStatus:
    """One part's last check: `ok`, a one-line `detail`, and the `NotReady` raised, if any."""

    name: str
    ok: bool
    detail: str
    error: NotReady | None = None

    def line(self) -> str:
        """`name: detail`, as `/readyz` and start-up messages show it."""
        return f"{self.name}: {self.detail}"


@dataclass(frozen=True)
class ReadinessReport:
    """Every part's status and when they were checked (`time.monotonic()`)."""

    parts: tuple[PartStatus, ...]
    checked_at: float

    @property
    def ready(self) -> bool:
        """True when every part is ok."""
        return all(part.ok for part in self.parts)

    def part(self, name: str) -> PartStatus | None:
        """The status of part `name`, if there is one."""
        return next((p for p in self.parts if p.name == name), None)

    def failing(self) -> list[str]:
        """`name: reason` for each part that is not ok."""
        return [part.line() for part in self.parts if not part.ok]

    def as_dict(self, now: float) -> dict[str, Any]:
        """The JSON body of `/readyz`."""
        return {
            "ready": self.ready,
            "parts": {part.name: {"ok": part.ok, "detail": part.detail} for part in self.parts},
            "failing": self.failing(),
            "checked_s_ago": round(max(0.0, now - self.checked_at), 3),
        }


class Readiness:
    """Checks `parts` (name → check) concurrently, at most once per `cache_s`; see the module
    docstring. `clock` is monotonic seconds (tests pass a fake one)."""

    def __init__(
        self,
        parts: Mapping[str, Check],
        *,
        cache_s: float = READY_CACHE_S,
        timeout_s: float = PART_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._parts = dict(parts)
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._last: ReadinessReport | None = None
        self._running: asyncio.Task[ReadinessReport] | None = None
        self._stopping: str | None = None
        self.checks_run = 0  # how many times the parts were checked (tests, the bench)

    @property
    def last(self) -> ReadinessReport | None:
        """The latest report, however old, or None before the first check."""
        return self._last

    def stop(self, reason: str = "shutting down") -> None:
        """From now on, answer "not ready" with `reason` (the process is going away)."""
        self._stopping = reason

    @property
    def stopping(self) -> bool:
        """True once `stop()` was called: the process is draining before it exits."""
        return self._stopping is not None

    async def report(self) -> ReadinessReport:
        """The cached report if it is fresh, else a new one (shared by concurrent callers)."""
        if self._stopping is not None:
            now = self._clock()
            return ReadinessReport((PartStatus("process", False, self._stopping),), now)
        last = self._last
        if last is not None and self._clock() - last.checked_at < self._cache_s:
            return last
        return await self.refresh()

    async def refresh(self) -> ReadinessReport:
        """Check every part now (or join the check already running) and cache the result."""
        # Shielded: a probe that gives up (its client hung up) must not cancel the shared check.
        return await asyncio.shield(self._start())

    def refresh_soon(self) -> None:
        """Start a check in the background when the cached answer is stale (none while one
        runs, or after `stop()`); never waits. A metrics scrape calls it, so the `roombot_ready`
        gauge stays true where nothing asks `/readyz` (probes on `/healthz`)."""
        last = self._last
        if self._stopping is not None or self._running is not None:
            return
        if last is not None and self._clock() - last.checked_at < self._cache_s:
            return
        self._start()

    def _start(self) -> asyncio.Task[ReadinessReport]:
        if self._running is None:
            self._running = asyncio.create_task(self._check_all())
            self._running.add_done_callback(self._finished)
        return self._running

    def _finished(self, task: asyncio.Task[ReadinessReport]) -> None:
        self._running = None
        if not task.cancelled():
            task.exception()  # retrieved, so an unexpected failure is not reported twice

    async def _check_all(self) -> ReadinessReport:
        self.checks_run += 1
        names = list(self._parts)
        statuses = await asyncio.gather(*(self._check(name) for name in names))
        report = ReadinessReport(tuple(statuses), self._clock())
        for status in statuses:
            metrics.set_ready(status.name, status.ok)
        previous = self._last
        for status in statuses:
            before = previous.part(status.name) if previous is not None else None
            if before is not None and before.ok != status.ok:
                if status.ok:
                    log.info("ready again: %s", status.line())
                else:
                    log.warning("not ready: %s", status.line())
        self._last = report
        return report

    async def _check(self, name: str) -> PartStatus:
        try:
            async with asyncio.timeout(self._timeout_s):
                detail = await self._parts[name]()
        except NotReady as exc:
            return PartStatus(name, False, scrub(str(exc)), exc)
        except TimeoutError:
            return PartStatus(name, False, f"no answer within {self._timeout_s:g} s")
        except Exception as exc:  # a check that breaks is a failed part, not a failed probe
            log.debug("readiness check %r failed unexpectedly", name, exc_info=exc)
            return PartStatus(name, False, f"the check failed unexpectedly ({type(exc).__name__})")
        return PartStatus(name, True, scrub(detail))


def database_part(store: AuditStore | None) -> Check:
    """The audit database answers a read on the connection (or pool) the bot uses: the count
    of time-boxed changes still to revert (an indexed read), kept in
    `roombot_timebox_pending`."""

    async def check() -> str:
        if store is None:
            return "no audit store configured"
        try:
            metrics.set_timers_pending(await store.count_pending_timers())
        except AuditError as exc:
            raise NotReady(f"{store.backend} does not answer: {exc}") from None
        return f"{store.backend} answers"

    return check


def tencent_part(client: RoomEngineClient) -> Check:
    """Room Engine answers `get_room_info` on `PROBE_ROOM_ID` and does not refuse roombot's
    credentials or configuration. Use a client without retries and with a short timeout."""

    async def check() -> str:
        try:
            await client.get_room_info(PROBE_ROOM_ID)
        except ApiError as exc:
            if exc.code in CONFIGURATION_CODES:
                raise NotReady(
                    f"{client.base_url} refused roombot: error {exc.code} ({exc.hint})"
                ) from None
            return f"{client.base_url} answers"  # 100004 (no such room) expected; 60007 is busy
        except RequestTimeout:
            raise NotReady(f"{client.base_url} did not answer in time") from None
        except TransportError as exc:
            if exc.status is None:
                # "get_room_info: ConnectError: connection refused" → "connection refused"
                detail = exc.message.rsplit(": ", 1)[-1]
                raise NotReady(f"{detail} ({client.base_url})") from None
            raise NotReady(f"{client.base_url} answered HTTP {exc.status}") from None
        except MalformedResponse:
            raise NotReady(f"{client.base_url} does not answer like Room Engine") from None
        except RoomEngineError as exc:
            raise NotReady(f"{client.base_url}: {exc.message}") from None
        return f"{client.base_url} answers"

    return check
