"""A process-wide pacer for Room Engine calls (`ROOMBOT_RATE_LIMIT` calls per second per API).

Tencent allows 200 calls per second per API and SDKAppID, and the customer's own backend shares
that allowance, so the bot keeps to its own smaller budget, for each API on its own: a flood of
member reads at the limit never delays a room write. `RateBudget.acquire(api)` is awaited before
every HTTP attempt (retries included); `RateBudget.slot(api)` wraps one attempt. For each API,
three rules together decide when a call may start:

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

Halving. When Tencent warns that the app passed 80% of an API's limit (the callback
`Alert.RequestOverLimit`), `halve(api)` gives that API half its rate (and half its window) for
`HALVE_S` seconds from the warning; another warning meanwhile extends the halving, never
compounds it. `limit(api)` says what an API may use now (the metrics' gauge reads it).

`CallBudget` is the interface a client needs (`acquire()`, `slot()`); `RateLimits` the one the
callbacks need (`halve()`, `limit()`). `RateBudget` is the one for a process,
`bot.audit.budget.SharedRateBudget` the one several replicas share on PostgreSQL (its halving is
a row every replica's grants consult). A budget that cannot grant a call at all (the shared
one's database is unreachable) raises `RateBudgetUnavailable`; the call is then not made.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

from bot.errors import RoombotError

#: Tencent's documented per-API limit, and so the most the bot may ever ask for.
MAX_RATE: Final = 200.0
#: How long one `Alert.RequestOverLimit` halves the API it names, in seconds.
HALVE_S: Final = 60.0
# One second plus 20 ms of slack: our start times and the server's arrival times differ by
# network and scheduling jitter, and a call that lands a hair early would count as a 201st.
_WINDOW_S: Final = 1.02


class RateBudgetUnavailable(RoombotError):
    """The rate budget could not grant a slot in time (the shared budget's database is
    unreachable or too slow), so the Room Engine call was not made. Safe to try again later."""


class CallBudget(Protocol):
    """What a Room Engine client awaits around each attempt: any pacer with these two, each
    taking the Room Engine command (`update_room_info`, ...) the call is made with."""

    async def acquire(self, api: str) -> None:
        """Wait until this caller may start one call of `api` (or raise
        `RateBudgetUnavailable`)."""

    def slot(self, api: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Wait until one call of `api` may start; the block is the call, counted until its
        answer. Raises `RateBudgetUnavailable` before the block when no slot can be granted."""


@dataclass(frozen=True)
class Halving:
    """What `RateLimits.halve` did: `api` now has `limit` calls per second until `until_s`
    seconds from now; `started` is False when it was already halved (the halving was only
    extended: whoever warns about it has already warned)."""

    api: str
    started: bool
    until_s: float
    limit: float


class RateLimits(Protocol):
    """What the callbacks need of a budget: halve an API for a while, and say its limit."""

    async def halve(self, api: str, seconds: float = HALVE_S) -> Halving:
        """Give `api` half its rate for `seconds` from now (extending a halving under way)."""

    def limit(self, api: str) -> float:
        """The calls per second `api` may use now, as far as this process knows."""


def check_rate(rate_per_second: float, burst: int | None) -> tuple[float, int, int]:
    """`(rate, window size, burst)` for a budget of `rate_per_second` (`ValueError` when the
    rate is not above 0 and at most `MAX_RATE`, or the burst not within 1 and the window)."""
    if not (0 < rate_per_second <= MAX_RATE) or math.isnan(rate_per_second):
        raise ValueError(f"rate must be above 0 and at most {MAX_RATE:g} calls per second")
    size = max(1, math.floor(rate_per_second))
    # A small default burst keeps a handful of calls snappy without bunching big jobs.
    chosen = burst if burst is not None else max(1, size // 10)
    if not (1 <= chosen <= size):
        raise ValueError(f"burst must be between 1 and {size}")
    return float(rate_per_second), size, chosen


def halved(rate: float) -> float:
    """The rate an API keeps while halved (never below one call per second)."""
    return max(1.0, rate / 2) if rate >= 1 else rate


class _Pacer:
    """One API's pacing (the rules of the module docstring), halvable."""

    def __init__(self, rate: float, size: int, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._full = (size, burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._tat = -math.inf  # GCRA "theoretical arrival time" of the next call
        self._starts: deque[float] = deque(maxlen=size)
        self._in_flight = 0  # calls inside slot()
        self._ended: deque[float] = deque()  # when calls that left slot() got their answer
        self.halved_until = -math.inf

    def _shape(self, now: float) -> tuple[int, float, float]:
        """(window size, interval, GCRA tolerance) in force at `now`."""
        size, burst = self._full
        rate = self._rate
        if now < self.halved_until:
            rate = halved(rate)
            size = max(1, math.floor(rate))
            burst = min(burst, size)
        interval = 1.0 / rate
        return size, interval, (burst - 1) * interval

    def rate_now(self) -> float:
        with self._lock:
            now = self._clock()
            return halved(self._rate) if now < self.halved_until else self._rate

    def halve(self, seconds: float) -> tuple[bool, float]:
        with self._lock:
            now = self._clock()
            started = now >= self.halved_until
            self.halved_until = max(self.halved_until, now + seconds)
            return started, self.halved_until - now

    def reserve(self) -> float:
        with self._lock:
            now = self._clock()
            size, interval, tolerance = self._shape(now)
            start = max(now, self._tat - tolerance)
            if self._starts:
                # Keep reservations in order; the window rule below relies on it.
                start = max(start, self._starts[-1])
            if len(self._starts) >= size:
                # The call `size` places back must be a full window before this one.
                start = max(start, self._starts[-size] + _WINDOW_S)
            self._tat = max(self._tat, start) + interval
            self._starts.append(start)
            return start - now

    def enter(self) -> float:
        with self._lock:
            now = self._clock()
            size, interval, _ = self._shape(now)
            while self._ended and self._ended[0] <= now - _WINDOW_S:
                self._ended.popleft()
            if self._in_flight + len(self._ended) < size:
                self._in_flight += 1
                return 0.0
            if self._ended:
                return self._ended[0] + _WINDOW_S - now
            return interval  # every slot is taken by a call still waiting for its answer

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._ended.append(self._clock())


class RateBudget:
    """Paces callers to at most `rate_per_second` call starts of each API in any one-second
    window (each API paced on its own; see the module docstring)."""

    def __init__(
        self,
        rate_per_second: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate, self._window_size, self.burst = check_rate(rate_per_second, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # One per API the bot calls: a closed set of names from the code, never from input.
        self._pacers: dict[str, _Pacer] = {}

    def _pacer(self, api: str) -> _Pacer:
        pacer = self._pacers.get(api)
        if pacer is None:
            with self._lock:
                pacer = self._pacers.get(api)
                if pacer is None:
                    pacer = _Pacer(self.rate, self._window_size, self.burst, self._clock)
                    self._pacers[api] = pacer
        return pacer

    def reserve(self, api: str) -> float:
        """Book the earliest allowed start time of a call of `api` and return how many seconds
        to wait for it."""
        return self._pacer(api).reserve()

    async def acquire(self, api: str) -> None:
        """Wait until this caller may start one call of `api`."""
        delay = self.reserve(api)
        if delay > 0:
            await self._sleep(delay)

    @contextlib.asynccontextmanager
    async def slot(self, api: str) -> AsyncIterator[None]:
        """Wait until one call of `api` may start, and count it until a window after the block
        ends."""
        pacer = self._pacer(api)
        await self.acquire(api)
        while (delay := pacer.enter()) > 0:
            await self._sleep(delay)
        try:
            yield
        finally:
            pacer.leave()

    async def halve(self, api: str, seconds: float = HALVE_S) -> Halving:
        """Give `api` half its rate for `seconds` from now (this process only: one replica)."""
        pacer = self._pacer(api)
        started, left = pacer.halve(seconds)
        return Halving(api=api, started=started, until_s=left, limit=pacer.rate_now())

    def limit(self, api: str) -> float:
        """The calls per second `api` may use now."""
        pacer = self._pacers.get(api)
        return pacer.rate_now() if pacer is not None else self.rate

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
