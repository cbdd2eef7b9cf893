"""The leases one process holds on the requests it is carrying out, kept alive by one heartbeat.

A lease (`AuditStore.take_lease`) says "this replica is carrying out request K; if it stops, here
is where to report". `LeaseKeeper` is the process's side of it:

* `take(key, context)` holds a request (taking the lease, or renewing it and replacing its
  context when this process already holds it); holds nest: the Slack adapter holds a request from
  before its parent message is posted until its outcome is delivered, and the runner holds it
  again around its audit rows. Only the last `release` drops the lease;
* one `LeaseHeartbeat` renews every lease of this process while it holds any (it starts with the
  first hold and stops when nothing is held, so an idle process writes nothing);
* a lease whose release failed (the database was away) is released again at the next beats,
  rather than renewed for ever;
* `adopt(key)` holds a lease this store already owns: one claimed from a stopped replica, or
  recovered when a SQLite store opened, while the takeover is reported.

A request cancelled mid-way (the process is shutting down) is not released: its lease stops being
renewed when the process stops, expires after `ROOMBOT_LEASE_S`, and a survivor reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from bot.audit import AuditError, AuditStore
from bot.audit.heartbeat import LeaseHeartbeat

log = logging.getLogger(__name__)


class LeaseKeeper:
    """This process's leases on `store`, renewed by one heartbeat (every `interval` seconds,
    default a third of the lease) while any is held. Safe to share between the tasks of one
    event loop; `aclose()` stops the heartbeat."""

    def __init__(self, store: AuditStore, *, interval: float | None = None) -> None:
        self._store = store
        self._holds: dict[str, int] = {}
        #: Leases this process is done with but could not release yet.
        self._stale: set[str] = set()
        #: Held leases a survivor took over (this process could not renew them in time).
        self._lost: set[str] = set()
        self._heartbeat = LeaseHeartbeat(store, interval=interval, on_beat=self._after_beat)
        self._idle_stop: asyncio.Task[None] | None = None

    @property
    def store(self) -> AuditStore:
        """The store the leases are kept in."""
        return self._store

    @property
    def held(self) -> frozenset[str]:
        """The request keys this process holds now."""
        return frozenset(self._holds)

    @property
    def beating(self) -> bool:
        """True while the heartbeat runs."""
        return self._heartbeat.running

    def holds(self, request_key: str) -> bool:
        """True when this process is carrying out (or reporting) `request_key`."""
        return request_key in self._holds

    async def take(self, request_key: str, context: Mapping[str, Any] | None = None) -> None:
        """Hold `request_key`, with `context` for a survivor (JSON-ready). Already held: one
        more hold, and the lease's context is replaced when `context` is given. Raises
        `AuditError` when the lease cannot be written (nothing is then held)."""
        if request_key not in self._holds or context is not None:
            await self._store.take_lease(request_key, context or {})
        self._holds[request_key] = self._holds.get(request_key, 0) + 1
        self._stale.discard(request_key)
        self._heartbeat.start()

    async def update(self, request_key: str, context: Mapping[str, Any]) -> None:
        """Replace the context of a lease this process holds (e.g. once the parent message it
        names exists). Raises `AuditError` when it cannot be written, `KeyError` when the
        request is not held."""
        if request_key not in self._holds:
            raise KeyError(request_key)
        await self._store.take_lease(request_key, context)

    def adopt(self, request_key: str) -> None:
        """Hold a lease the store already gave this process (a takeover, a SQLite recovery)."""
        self._holds[request_key] = self._holds.get(request_key, 0) + 1
        self._heartbeat.start()

    async def release(self, request_key: str) -> None:
        """Drop one hold; the last one releases the lease. Never raises: a release that fails
        is tried again at the next heartbeats."""
        count = self._holds.get(request_key, 0)
        if count > 1:
            self._holds[request_key] = count - 1
            return
        if count == 0:
            return
        del self._holds[request_key]
        self._lost.discard(request_key)
        if not await self._release(request_key):
            self._stale.add(request_key)
        await self._stop_if_idle()

    @contextlib.asynccontextmanager
    async def holding(
        self, request_key: str, context: Mapping[str, Any] | None = None
    ) -> AsyncIterator[bool]:
        """Hold `request_key` for the block; yields whether the lease could be taken.

        Released when the block ends or raises; kept when the block is cancelled (the process
        is stopping: the lease then expires and a survivor reports the request). A lease that
        cannot be taken is logged, not raised: the block still runs, and the runner, which
        holds the request again around its audit rows, refuses the request if it must.
        """
        try:
            await self.take(request_key, context)
        except AuditError as exc:
            log.warning("could not take the lease on request %s: %s", request_key, exc)
            yield False
            return
        try:
            yield True
        except Exception:
            await self.release(request_key)
            raise
        await self.release(request_key)

    async def aclose(self) -> None:
        """Stop the heartbeat. Leases still held stay in the store and expire."""
        if self._idle_stop is not None:
            self._idle_stop.cancel()
        await self._heartbeat.stop()

    # -- internals ------------------------------------------------------------------------------

    async def _release(self, request_key: str) -> bool:
        try:
            await self._store.release_lease(request_key)
        except AuditError as exc:
            log.warning("could not release the lease on %s (will retry): %s", request_key, exc)
            return False
        return True

    async def _stop_if_idle(self) -> None:
        if not self._holds and not self._stale:
            await self._heartbeat.stop()

    async def _after_beat(self, renewed: frozenset[str]) -> None:
        """After each renewal: note leases survivors took over; release the stale ones."""
        for key in self._holds.keys() - renewed - self._lost:
            # Held but not renewed: taken over, or only taken after the renewal read the table.
            try:
                lease = await self._store.get_lease(key)
            except AuditError:
                continue  # the next beat looks again
            if key not in self._holds or (lease is not None and lease.owner == self._store.owner):
                continue
            self._lost.add(key)
            log.warning(
                "the lease on request %s was taken over by another replica (it could not be "
                "renewed in time); that replica reports what it finds, and this one still "
                "records and reports the request's own outcome",
                key,
            )
        for key in sorted(self._stale):
            if await self._release(key):
                self._stale.discard(key)
        if not self._holds and not self._stale:
            # Not from inside the heartbeat's own task: stop it from a task of its own.
            self._idle_stop = asyncio.create_task(self._stop_if_idle())
