"""Slack-side state shared by the handlers of one process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

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


class AckGate:
    """Lets background work step aside while requests are waiting for their ack.

    Slack needs an ack within 3 s; the work after it has no deadline. Under a burst, background
    steps wait (at most `max_wait_s` each, so they are never starved) until no request is being
    acknowledged. `track` is installed as bolt middleware, so it covers HTTP and Socket Mode.
    """

    def __init__(self, max_wait_s: float = 0.25) -> None:
        self._acking = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._max_wait = max_wait_s

    @property
    def acking(self) -> int:
        """How many requests are between arrival and ack right now."""
        return self._acking

    async def track(self, next: Callable[[], Awaitable[Any]]) -> Any:  # bolt passes `next`
        """bolt middleware: count this request as 'being acknowledged' until its ack is out."""
        self._acking += 1
        self._idle.clear()
        try:
            return await next()
        finally:
            self._acking -= 1
            if self._acking == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Return when no request awaits its ack, or after `max_wait_s`, whichever is first."""
        if self._acking:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self._max_wait)


@dataclass
class SlackRuntime:
    """Per-process helpers for the Slack handlers."""

    tasks: BackgroundTasks = field(default_factory=BackgroundTasks)
    update_budget: UpdateBudget = field(default_factory=UpdateBudget)
    events: RecentIds = field(default_factory=RecentIds)
    gate: AckGate = field(default_factory=AckGate)
