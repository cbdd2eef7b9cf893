"""The one fake clock the tests share: time that moves only when a test (or a fake sleep) says so.

`FakeClock` is a settable clock (call it for "now"), with `advance()` and an async `sleep()` that
moves time forward instead of waiting, so code that takes `clock=` and `sleep=` parameters runs
instantly and deterministically. `VirtualTime` is for concurrent sleepers: time jumps to the
earliest wake-up whenever every task is asleep.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Coroutine
from typing import Any


class FakeClock:
    """A clock that moves only when told: `clock()` is now, `advance(s)` and `sleep(s)` move it.

    `sleeps` records every pause asked of `sleep`, so a test can assert backoff and pacing.
    """

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`."""
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """A sleep that returns at once, having moved time forward by `seconds`."""
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class VirtualTime:
    """A virtual clock for many tasks: time moves only when every task is asleep, straight to the
    earliest wake-up. Pass `clock` and `sleep` to the code under test, then `run()` it."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def clock(self) -> float:
        """Now, in virtual seconds."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Sleep until virtual time reaches now + `seconds`."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self.now + seconds, self._seq, future))
        await future

    async def run(self, *coros: Coroutine[Any, Any, None]) -> None:
        """Run `coros` to completion, advancing virtual time whenever all of them sleep."""
        job = asyncio.gather(*coros)
        while not job.done():
            for _ in range(5):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if self._sleepers:
                target, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, target)
                future.set_result(None)
        await job
