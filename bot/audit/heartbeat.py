"""The lease heartbeat: one background task per replica renewing all of its leases.

`AuditStore.renew_leases()` renews every lease the store's owner holds in one statement, so a
replica needs one heartbeat however many requests it carries out. Renewing every third of the
lease's life leaves two more chances before a survivor may take over; a renewal that fails is
logged and tried again at the next beat (a database outage longer than the lease hands this
replica's requests to survivors, who report them: never silence).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

from bot.aio import cancel_and_wait
from bot.audit.records import AuditError
from bot.audit.store import AuditStore

logger = logging.getLogger(__name__)


class LeaseHeartbeat:
    """Renews `store`'s leases every `interval` seconds (default: a third of `store.lease_s`)
    while running: `async with LeaseHeartbeat(store):` or `start()` / `await stop()`.

    `held` is the set of request keys the last renewal found still held by this replica.
    `on_beat`, if given, is awaited after each successful renewal with those keys (its errors
    are logged, never stop the heartbeat).
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        interval: float | None = None,
        on_beat: Callable[[frozenset[str]], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self.interval = interval if interval is not None else store.lease_s / 3
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        self.held: frozenset[str] = frozenset()
        self.failures = 0
        self._on_beat = on_beat
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True while the heartbeat task runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start beating (idempotent); the first renewal is made at once."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._beat(), name="roombot-lease-heartbeat")

    async def stop(self) -> None:
        """Stop beating; the leases then expire unless released or renewed elsewhere."""
        # Forget the task before waiting for it, so a `start()` meanwhile starts a new one.
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def beat(self) -> frozenset[str]:
        """Renew once now; returns the keys still held (raises `AuditError` on failure)."""
        self.held = await self._store.renew_leases()
        return self.held

    async def __aenter__(self) -> LeaseHeartbeat:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _beat(self) -> None:
        while True:
            try:
                held = await self.beat()
                self.failures = 0
            except AuditError as exc:
                self.failures += 1
                logger.warning("lease heartbeat failed (%d in a row): %s", self.failures, exc)
            else:
                if self._on_beat is not None:
                    try:
                        await self._on_beat(held)
                    except Exception:
                        logger.exception("lease heartbeat: the after-beat hook failed")
            await asyncio.sleep(self.interval)
