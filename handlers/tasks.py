"""Work that continues after Slack's ack: bounded, referenced, and the one place its unexpected
errors are caught."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from bot.logs import log_unexpected

log = logging.getLogger(__name__)

#: Background jobs (one per request) that may run at once; see `BackgroundTasks`.
MAX_RUNNING_JOBS: Final = 8

#: Told the correlation id of a job that failed unexpectedly, to let its requester know.
OnError = Callable[[str], Awaitable[None]]


class BackgroundTasks:
    """Work that continues after the ack, bounded and kept referenced so shutdown can wait for it.

    At most `max_running` jobs run at once; the others wait their turn. The jobs share the event
    loop with the acks of new requests, which Slack wants within 3 s: without a bound, a burst
    of commands starts all its Slack and Room Engine calls at once and the acks queue behind
    them. (The Room Engine rate budget already paces the calls; this bounds the rest.) A job
    that has its place first awaits `before_start` (the ack gate: no request awaiting its ack).
    """

    def __init__(
        self,
        max_running: int = MAX_RUNNING_JOBS,
        *,
        before_start: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = asyncio.Semaphore(max_running)
        self._before_start = before_start

    def spawn(
        self, coro: Coroutine[Any, Any, None], *, on_error: OnError | None = None
    ) -> asyncio.Task[None]:
        """Run `coro` in the background (when a place is free) and keep it referenced.

        An unexpected exception is logged with a fresh correlation id, which `on_error` (if
        given) is awaited with, so the requester can be told the id they can report.
        """
        task: asyncio.Task[None] = asyncio.create_task(self._run(coro, on_error))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A job cancelled before its turn never ran: close it, or Python warns it was never
        # awaited (a no-op for one that ran).
        task.add_done_callback(lambda _task: coro.close())
        return task

    async def _run(self, coro: Coroutine[Any, Any, None], on_error: OnError | None) -> None:
        async with self._running:
            if self._before_start is not None:
                await self._before_start()
            try:
                await coro
            except Exception:
                correlation_id = log_unexpected(log, "background work failed")
                if on_error is not None:
                    try:
                        await on_error(correlation_id)
                    except Exception:
                        log.exception("could not report error [%s]", correlation_id)

    @property
    def pending(self) -> int:
        """How many background jobs are running or waiting to run."""
        return len(self._tasks)

    def cancel(self) -> int:
        """Cancel whatever is still running (its audit rows stay pending, then become unknown)."""
        for task in self._tasks:
            task.cancel()
        return len(self._tasks)

    async def drain(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for the work running or waiting now, and for work spawned
        meanwhile (a server keeps taking requests while it drains); return how many jobs were
        still unfinished."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while unfinished := {task for task in self._tasks if not task.done()}:
            left = deadline - loop.time()
            if left <= 0:
                return len(unfinished)
            await asyncio.wait(unfinished, timeout=left)
        return 0
