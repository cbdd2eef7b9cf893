"""Small asyncio helpers the core's background tasks and worker threads share."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

_T = TypeVar("_T")

#: How long `cancel_and_wait` waits before cancelling again.
_RECANCEL_S: Final = 0.1


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and return once it has ended (its outcome is consumed, not raised).

    It is cancelled again for as long as it runs on: a cancellation can be lost on the way (on
    Python 3.11, `asyncio.wait_for` drops one that arrives just as what it waits for completes,
    as in psycopg's pool), and a background loop must still stop.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=_RECANCEL_S)
    if not task.cancelled():
        task.exception()  # consumed: the task logs its own failures


async def gather_all(*coros: Coroutine[Any, Any, _T]) -> list[_T]:
    """`asyncio.gather(*coros)`, but a lone coroutine is awaited in place: the one-room request,
    the usual one, then makes no task (a task and its wake-ups per step are a visible part of
    a command's CPU). Results in order; the first exception is raised, as gather does."""
    if len(coros) == 1:
        return [await coros[0]]
    return list(await asyncio.gather(*coros))


#: The signals roombot handles on its main thread: interrupt, stop, reload.
MAIN_THREAD_SIGNALS: Final = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def _leave_signals_to_the_main_thread() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)


def worker_threads(max_workers: int | None = None, *, name: str = "") -> ThreadPoolExecutor:
    """A thread pool whose threads block `MAIN_THREAD_SIGNALS`, so those always reach the main
    thread.

    The kernel may hand a signal sent to the process (Ctrl-C at a terminal) to any thread that
    does not block it. Python runs its handler on the main thread, but a blocking call there is
    interrupted only if the signal arrived on that thread: the console's main thread waits in
    readline for a key, and a Ctrl-C that a worker thread took was seen only at the next key.
    (Observed under strace, which holds the main thread at each system call, so the kernel
    handed the first Ctrl-C at a confirmation to the audit store's thread.)
    """
    return ThreadPoolExecutor(
        max_workers=max_workers,
        thread_name_prefix=name,
        initializer=_leave_signals_to_the_main_thread,
    )
