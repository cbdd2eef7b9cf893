"""A process-wide pacer for Room Engine calls (`ROOMBOT_RATE_LIMIT` calls per second).

Tencent allows 200 calls per second per API and SDKAppID, and the customer's own backend shares
that allowance, so the bot keeps to its own smaller budget. `RateBudget.acquire()` is awaited
before every HTTP attempt (retries included). Two rules together decide when a call may start:

* a hard sliding window: never more than `floor(rate)` starts within any 1-second window (with
  50 ms to spare), however many tasks (or threads) call at once. It is checked twice: on the
  booked start times, and again on the moments callers actually go, because a busy event loop
  can wake several late sleepers at once and they would otherwise start together;
* a GCRA pacer (a token bucket without the bookkeeping): calls are spaced `1/rate` apart, with up
  to `burst` of them allowed back to back after a quiet spell.

Each caller reserves its start time synchronously (under a thread lock, no `await` inside), then
sleeps until then. Reservations never wait on each other, so the budget is not tied to one event
loop and a cancelled caller costs at most one unused slot.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

#: Tencent's documented per-API limit, and so the most the bot may ever ask for.
MAX_RATE: Final = 200.0
# One second plus 50 ms of slack: our start times and the server's arrival times differ by
# network jitter (a call that needs a new connection lands a couple of round trips later than
# one that reuses a connection), and a call that lands early would count as a 201st.
_WINDOW_S: Final = 1.05


class RateBudget:
    """Paces callers to at most `rate_per_second` call starts in any one-second window."""

    def __init__(
        self,
        rate_per_second: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not (0 < rate_per_second <= MAX_RATE) or math.isnan(rate_per_second):
            raise ValueError(f"rate must be above 0 and at most {MAX_RATE:g} calls per second")
        self.rate = float(rate_per_second)
        self._window_size = max(1, math.floor(self.rate))
        # A small default burst keeps a handful of calls snappy without bunching big jobs.
        self.burst = burst if burst is not None else max(1, self._window_size // 10)
        if not (1 <= self.burst <= self._window_size):
            raise ValueError(f"burst must be between 1 and {self._window_size}")
        self._interval = 1.0 / self.rate
        self._tolerance = (self.burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat = -math.inf  # GCRA "theoretical arrival time" of the next call
        self._starts: deque[float] = deque(maxlen=self._window_size)
        self._went: deque[float] = deque(maxlen=self._window_size)  # when callers really went

    def reserve(self) -> float:
        """Book the earliest allowed start time and return how many seconds to wait for it."""
        with self._lock:
            now = self._clock()
            start = max(now, self._tat - self._tolerance)
            if self._starts:
                # Keep reservations in order; the window rule below relies on it.
                start = max(start, self._starts[-1])
            if len(self._starts) == self._window_size:
                # The call `window_size` places back must be a full window before this one.
                start = max(start, self._starts[0] + _WINDOW_S)
            self._tat = max(self._tat, start) + self._interval
            self._starts.append(start)
            return start - now

    async def acquire(self) -> None:
        """Wait until this caller may start one call."""
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)
        while (late := self._go()) > 0:
            # Woken late together with others: wait for the real window to have room.
            await self._sleep(late)

    def _go(self) -> float:
        """Record this caller's real start, or return how long it must still wait."""
        with self._lock:
            now = self._clock()
            if len(self._went) == self._window_size:
                wait = self._went[0] + _WINDOW_S - now
                if wait > 0:
                    return wait
            self._went.append(now)
            return 0.0

    def __repr__(self) -> str:
        return f"RateBudget(rate_per_second={self.rate:g}, burst={self.burst})"


_shared: dict[float, RateBudget] = {}
_shared_lock = threading.Lock()


def process_budget(rate_per_second: float) -> RateBudget:
    """The one `RateBudget` of this process for `rate_per_second` (created on first use).

    Every client built from settings shares it, so all the bot's calls count against one budget.
    """
    with _shared_lock:
        budget = _shared.get(rate_per_second)
        if budget is None:
            budget = _shared[rate_per_second] = RateBudget(rate_per_second)
        return budget
