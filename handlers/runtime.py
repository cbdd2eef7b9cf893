"""Slack-side state shared by the handlers of one process."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from handlers.tasks import BackgroundTasks
from handlers.update_budget import UpdateBudget


class RecentIds:
    """Ids seen in the last `ttl_s` seconds (bounded), for de-duplicating Slack's event retries."""

    def __init__(
        self,
        ttl_s: float = 600.0,
        max_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._ttl = ttl_s
        self._max = max_size
        self._clock = clock

    def first_time(self, key: str) -> bool:
        """Record `key`; True the first time it is seen within the TTL, False for a repeat."""
        now = self._clock()
        while self._seen:
            _oldest, at = next(iter(self._seen.items()))
            if now - at <= self._ttl and len(self._seen) < self._max:
                break
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


#: Where a request's `Admission` is kept in its bolt context (see `acknowledged`).
ADMISSION_KEY: Final = "roombot_admission"


class Admission:
    """One request being acknowledged; `done` (idempotent) once its ack is out."""

    __slots__ = ("_gate", "_open")

    def __init__(self, gate: AckGate) -> None:
        self._gate = gate
        self._open = True

    def done(self) -> None:
        """The ack is out (or the request is over): stop holding background work for it."""
        if self._open:
            self._open = False
            self._gate._leave()


class AckGate:
    """Lets background work step aside while requests are waiting for their ack.

    Slack needs an ack within 3 s; the work after it has no deadline. A request counts as being
    acknowledged from its admission (`admit`) until its ack is out: HTTP mode admits it at the
    door (`POST /slack/events`) once its body is whole and its signature checked, Socket Mode
    through `track`, installed as bolt middleware; either keeps the `Admission` in the bolt
    context, so a listener that acks and then starts work says so at once
    (`handlers.middleware.acknowledged`) rather than when bolt has noticed the ack (it looks
    every 10 ms). Under a burst, a background step (`wait_idle`: a job's start, each outside
    call of a request) waits until no request has been in flight for `quiet_s`, or `max_wait_s`,
    whichever is first, so a burst's acks are not queued behind the work of the commands before
    them and that work is never starved.

    Waiting costs one future per waiter, woken together by one timer when the door goes quiet
    (not a task per waiter, and not woken at each momentary gap between two requests: the
    benchmark's ack path showed both).
    """

    def __init__(self, max_wait_s: float = 0.25, quiet_s: float = 0.001) -> None:
        self._acking = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._wake: asyncio.TimerHandle | None = None
        #: The longest one background step waits for the acks (it is never starved).
        self.max_wait_s = max_wait_s
        #: How long the door must have been quiet before waiting steps go.
        self.quiet_s = quiet_s

    @property
    def acking(self) -> int:
        """How many requests are between arrival and ack right now."""
        return self._acking

    @property
    def waiting(self) -> int:
        """How many background steps are waiting for the acks right now."""
        return len(self._waiters)

    def admit(self) -> Admission:
        """A request arrived: background steps wait until its `Admission` is done (and every
        other's)."""
        self._acking += 1
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        return Admission(self)

    def _leave(self) -> None:
        """A request was answered; once none is left for `quiet_s`, the waiters go."""
        self._acking -= 1
        if self._acking == 0 and self._waiters and self._wake is None:
            self._wake = asyncio.get_running_loop().call_later(self.quiet_s, self._release)

    def _release(self) -> None:
        self._wake = None
        if self._acking:
            return
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def track(self, context: Any, next: Callable[[], Awaitable[Any]]) -> Any:
        """bolt middleware (bolt passes `context` and `next` by name): admit this request until
        its ack is out, or bolt is done with it."""
        admission = self.admit()
        context[ADMISSION_KEY] = admission
        try:
            return await next()
        finally:
            admission.done()

    async def wait_idle(self) -> None:
        """Return at once when no request awaits its ack; else when none has for `quiet_s`, or
        after `max_wait_s`, whichever is first."""
        if not self._acking:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.max_wait_s):
                await waiter
        except TimeoutError:
            pass
        finally:
            if waiter in self._waiters:  # timed out or cancelled: not released
                self._waiters.remove(waiter)


@dataclass
class SlackRuntime:
    """Per-process helpers for the Slack handlers. Background jobs start through the ack gate:
    a burst's acks go before the work of the commands that came first."""

    gate: AckGate = field(default_factory=AckGate)
    tasks: BackgroundTasks = field(init=False)
    update_budget: UpdateBudget = field(default_factory=UpdateBudget)
    events: RecentIds = field(default_factory=RecentIds)

    def __post_init__(self) -> None:
        self.tasks = BackgroundTasks(before_start=self.gate.wait_idle)
