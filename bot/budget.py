"""A process-wide pacer for Room Engine calls (`ROOMBOT_RATE_LIMIT` calls per second).

Tencent allows 200 calls per second per API and SDKAppID, and the customer's own backend shares
that allowance, so the bot keeps to its own smaller budget. `RateBudget.acquire()` is awaited
before every HTTP attempt (retries included); `RateBudget.slot()` wraps one attempt. Three rules
together decide when a call may start:

* a hard sliding window: never more than `floor(rate)` starts within any 1-second window (with
  20 ms to spare), however many tasks (or threads) call at once;
* a GCRA pacer (a token bucket without the bookkeeping): calls are spaced `1/rate` apart, with up
  to `burst` of them allowed back to back after a quiet spell;
* inside `slot()`, a call counts against the window from its real start until a window after its
  answer. Tencent counts a call when it arrives, somewhere between the two; a call that waited
  for a new (TLS) connection arrives late, and without this rule the calls booked one window
  after it would reach Tencent within the same second.

Each caller reserves its start time synchronously (under a thread lock, no `await` inside), then
sleeps until then. Reservations never wait on each other, so the budget is not tied to one event
loop and a cancelled caller costs at most one unused slot.

`CallBudget` is the interface a client needs (`acquire()`, `slot()`); `RateBudget` is the one
for a process, `bot.audit.budget.SharedRateBudget` the one several replicas share on PostgreSQL.
A budget that cannot grant a call at all (the shared one's database is unreachable) raises
`RateBudgetUnavailable`; the call is then not made.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, Protocol

from bot.errors import RoombotError

#: Tencent's documented per-API limit, and so the most the bot may ever ask for.
MAX_RATE: Final = 200.0
# One second plus 20 ms of slack: our start times and the server's arrival times differ by
# network and scheduling jitter, and a call that lands a hair early would count as a 201st.
_WINDOW_S: Final = 1.02


class RateBudgetUnavailable(RoombotError):
    """The rate budget could not grant a slot in time (the shared budget's database is
    unreachable or too slow), so the Room Engine call was not made. Safe to try again later."""


class CallBudget(Protocol):
    """What a Room Engine client awaits around each attempt: any pacer with these two."""

    async def acquire(self) -> None:
        """Wait until this caller may start one call (or raise `RateBudgetUnavailable`)."""

    def slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Wait until one call may start; the block is the call, counted until its answer.
        Raises `RateBudgetUnavailable` before the block when no slot can be granted."""


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
        self._in_flight = 0  # calls inside slot()
        self._ended: deque[float] = deque()  # when calls that left slot() got their answer

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

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait until one call may start, and count it until a window after the block ends."""
        await self.acquire()
        while (delay := self._enter()) > 0:
            await self._sleep(delay)
        try:
            yield
        finally:
            self._leave()

    def _enter(self) -> float:
        with self._lock:
            now = self._clock()
            while self._ended and self._ended[0] <= now - _WINDOW_S:
                self._ended.popleft()
            if self._in_flight + len(self._ended) < self._window_size:
                self._in_flight += 1
                return 0.0
            if self._ended:
                return self._ended[0] + _WINDOW_S - now
            return self._interval  # every slot is taken by a call still waiting for its answer

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._ended.append(self._clock())

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
