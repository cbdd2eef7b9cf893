"""Small asyncio helpers the core's background tasks share."""

from __future__ import annotations

import asyncio
from typing import Any, Final

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
