"""The leases one process holds on the requests it carries out, and the fencing that follows.

`LeaseBook` is the process's record of what it holds. `hold(lease)` gives a `HeldLease` to the
code carrying the request out; the process's loop renews, in one statement, every lease older
than a third of its life (`renew_due`), so a request that ends within a third of the lease costs
no heartbeat write at all.

Fencing (DESIGN §2.10): every store write for a request checks its fencing number, so a replica
that lost the request writes nothing for it. Room Engine and Slack cannot check a fencing
number, so before each outside action the carrier asks `HeldLease.check()`: it passes while the
lease is surely this replica's by this process's own monotonic clock (which keeps counting
through a SIGSTOP), renews it first when little is left, and raises `LeaseLost` once another
replica has it. A pause that begins in the microseconds between a check and the send it guards
is the one window left (no fencing token can reach Slack or Room Engine); `CHECK_MARGIN` makes
every shorter pause harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from bot.audit import AuditError, AuditStore, Lease, LeaseLost

log = logging.getLogger(__name__)

#: A check renews first when less than this share of the lease is left.
CHECK_MARGIN: Final = 1 / 3
#: The loop renews leases with less than this share of their life left (older than a third).
RENEW_BELOW: Final = 2 / 3


class HeldLease:
    """One request's lease as the code carrying it out holds it (see the module docstring)."""

    def __init__(self, book: LeaseBook, lease: Lease) -> None:
        self._book = book
        self.lease = lease
        #: Set once another replica took the request over.
        self.lost = False

    @property
    def request_key(self) -> str:
        """The request this lease is on."""
        return self.lease.request_key

    def remaining(self) -> float:
        """Seconds this lease is surely still this replica's, by this process's clock."""
        return self.lease.deadline - self._book.monotonic()

    def guard(self) -> None:
        """Right before an outside action, with no time to renew: raise `LeaseLost` unless the
        lease is surely still this replica's by this process's clock (a process that was paused
        past its lease stops here, whatever it was waiting for)."""
        if self.lost:
            raise LeaseLost(f"request {self.request_key} was taken over by another replica")
        if self.remaining() <= 0:
            raise LeaseLost(f"the lease on request {self.request_key} ran out")

    async def check(self) -> None:
        """Before an outside action: return when the request is still this replica's, renewing
        its lease first when little of it is left; raise `LeaseLost` when it is not. A renewal
        the database cannot make is not a loss: the action goes ahead while the lease lasts, and
        raises `LeaseLost` once it has run out unrenewed."""
        if self.lost:
            raise LeaseLost(f"request {self.request_key} was taken over by another replica")
        if self.remaining() > self._book.lease_s * CHECK_MARGIN:
            return
        try:
            await self._book.renew([self])
        except AuditError as exc:
            log.warning("could not renew the lease on request %s: %s", self.request_key, exc)
        if self.lost:
            raise LeaseLost(f"request {self.request_key} was taken over by another replica")
        if self.remaining() <= 0:
            raise LeaseLost(
                f"the lease on request {self.request_key} ran out and could not be renewed"
            )


class LeaseBook:
    """Every lease this process holds, on `store`. Safe to share between the tasks of one loop."""

    def __init__(
        self, store: AuditStore, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self.monotonic = monotonic
        self._held: dict[str, HeldLease] = {}

    @property
    def lease_s(self) -> float:
        """How long a lease lives unrenewed."""
        return self._store.lease_s

    @property
    def held(self) -> frozenset[str]:
        """The request keys this process holds now."""
        return frozenset(self._held)

    def hold(self, lease: Lease) -> HeldLease:
        """Hold `lease` (until `release`): the loop renews it while it is held."""
        held = HeldLease(self, lease)
        self._held[lease.request_key] = held
        return held

    def release(self, held: HeldLease) -> None:
        """Stop holding `held` (its request is finished, or lost)."""
        if self._held.get(held.request_key) is held:
            del self._held[held.request_key]

    async def renew_due(self) -> None:
        """Renew, in one statement, every held lease with less than `RENEW_BELOW` of its life
        left. Never raises: a failed renewal is logged and tried again at the next beat."""
        now = self.monotonic()
        limit = self.lease_s * RENEW_BELOW
        due = [h for h in self._held.values() if h.lease.deadline - now < limit]
        if due:
            try:
                await self.renew(due)
            except AuditError as exc:
                log.warning("could not renew %d lease(s), trying again: %s", len(due), exc)

    async def renew(self, helds: list[HeldLease]) -> None:
        """Renew these leases now; a lease another replica took over is marked `lost` (and
        logged). Raises `AuditError` when the database cannot be written."""
        renewed, lost = await self._store.renew_leases([h.lease for h in helds])
        by_key = {h.request_key: h for h in helds}
        for lease in renewed:
            by_key[lease.request_key].lease = lease
        for lease in lost:
            held = by_key[lease.request_key]
            if not held.lost:
                log.warning(
                    "request %s was taken over by another replica (this one could not renew its "
                    "lease in time); it writes and posts nothing more for it",
                    held.request_key,
                )
            held.lost = True
