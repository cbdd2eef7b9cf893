"""The one loop per process that carries out due work (DESIGN §2.10).

Every `interval_s` (and once at start), `RequestLoop.tick()`:

1. renews, in one statement, the leases this process holds that are past a third of their life
   (`LeaseBook.renew_due`): the heartbeat, written only for requests that last;
2. takes over requests whose holder's lease expired (`AuditStore.find_work`: on PostgreSQL with
   `FOR UPDATE SKIP LOCKED`, so each goes to exactly one replica, with a higher fencing number)
   and only those this process can deliver (`Deliveries.adapters`): its own too, when no task
   here carries them out any more (a run that lost its lease while the database was out of
   reach, and found nobody had taken it), so a lone replica still reports them;
3. reports each one taken (`bot.requests.takeover`): reads its rooms back where the outcome is
   unknown, records the verdicts, posts them through the request's own delivery, and marks it
   reported. A report that cannot be delivered is tried again at later ticks, waiting longer
   each time, and given up after `MAX_TAKEOVERS` takeovers in all (the audit rows keep the
   verdicts; the log says so).

4. takes scheduled requests whose time has come (in the same transaction as the takeovers,
   each by exactly one replica) and hands each to the process's `DueWork` (the service: it
   makes the plan and carries the request out through its life, reported through its own
   delivery). `wake()` runs a round at once (a request just approved or set to run now);
5. in the same transaction, ends requests that awaited approval past their expiry (`expired`,
   each by exactly one replica) and hands them to `on_expired` (the approvals: people are told).

A request still `received` when its replica stopped sent nothing: its rows are written from its
recorded plan (so the audit trail and Retry see every target) and reported `not_attempted`.
Nothing here knows Slack: the adapters register their deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Final, Protocol

from bot import metrics
from bot.aio import cancel_and_wait
from bot.audit import (
    REVERT_KIND,
    AuditError,
    AuditStore,
    LeaseLost,
    RequestRecord,
    RequestState,
    TakenRequest,
)
from bot.audit.store import certainly_stopped
from bot.requests.delivery import Deliveries, Delivery
from bot.requests.leases import HeldLease, LeaseBook
from bot.requests.plans import PlanUnreadable, plan_from_json
from bot.requests.recorder import entry, targets_of
from bot.requests.takeover import MAX_TAKEOVERS, RoomReader, TakeoverReport, take_over

log = logging.getLogger(__name__)

#: How often a replica looks for due work (a report then comes at most this long after the
#: lease expired).
TICK_S: Final = 2.0
#: Requests taken over in one tick.
TAKE_LIMIT: Final = 10
#: The longest wait before delivering an undelivered report again.
REDELIVERY_MAX_S: Final = 60.0


class DueWork(Protocol):
    """What carries out the requests the loop finds due (the service)."""

    async def carry_out_due(self, taken: TakenRequest, delivery: Delivery) -> object:
        """Carry out `taken` (held by this replica under `taken.lease`) and report it through
        `delivery`; it must end the request's life, whatever happens."""
        ...


@dataclass
class _Undelivered:
    taken: TakenRequest
    held: HeldLease
    attempts: int
    due: float


class RequestLoop:
    """A process's loop over due work: `start()` / `await stop()`, or `await tick()` by hand.

    `reader` reads rooms back (the Room Engine client); `deliveries` are the adapters this
    process can report through; `book` the process's leases; `due` carries out scheduled
    requests whose time has come (None: this process leaves them to others).
    """

    def __init__(
        self,
        store: AuditStore,
        reader: RoomReader,
        deliveries: Deliveries,
        book: LeaseBook,
        *,
        interval_s: float = TICK_S,
        limit: int = TAKE_LIMIT,
        max_takeovers: int = MAX_TAKEOVERS,
        monotonic: Callable[[], float] = time.monotonic,
        due: DueWork | None = None,
        on_expired: Callable[[list[RequestRecord]], Awaitable[None]] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._store = store
        self._reader = reader
        self._deliveries = deliveries
        self._book = book
        self.interval_s = interval_s
        self._limit = limit
        self._max_takeovers = max_takeovers
        self._monotonic = monotonic
        self._due = due
        self._on_expired = on_expired
        self._wake = asyncio.Event()
        self._undelivered: dict[str, _Undelivered] = {}
        self._task: asyncio.Task[None] | None = None
        #: Reports being made in the background (the loop keeps beating meanwhile).
        self._reporting: set[asyncio.Task[TakeoverReport | None]] = set()

    @property
    def undelivered(self) -> frozenset[str]:
        """Requests taken over whose report is still to be delivered."""
        return frozenset(self._undelivered)

    @property
    def running(self) -> bool:
        """True while the loop's task runs."""
        return self._task is not None and not self._task.done()

    def start(self, *, at_once: bool = True) -> None:
        """Start the loop (idempotent): a tick now (or, without `at_once`, after
        `interval_s`: the caller just ran one), then one every `interval_s`."""
        if not self.running:
            self._task = asyncio.create_task(
                self._loop(at_once=at_once), name="roombot-request-loop"
            )

    async def stop(self) -> None:
        """Stop the loop; a report being made is cancelled (its lease then expires and another
        replica, or this one's next start, reports it)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        for reporting in list(self._reporting):
            await cancel_and_wait(reporting)

    async def tick(self) -> list[TakeoverReport]:
        """One round (see the module docstring), waiting for its reports; the reports
        delivered. Raises `AuditError` only when taking requests over fails."""
        jobs = await self._round()
        return [report for report in await asyncio.gather(*jobs) if report is not None]

    async def _round(self) -> list[asyncio.Task[TakeoverReport | None]]:
        """Renew, take over, and start reporting what was taken; the reports' tasks."""
        await self._book.renew_due()
        now = self._monotonic()
        again = [u for u in self._undelivered.values() if u.due <= now]
        # One transaction a tick: taking over, and (when this process runs due requests)
        # taking the due ones.
        found = await self._store.find_work(
            adapters=self._deliveries.adapters,
            busy=self._book.held,
            limit=self._limit,
            due=self._due is not None,
        )
        for one in again:
            del self._undelivered[one.taken.request_key]
        jobs: list[Coroutine[object, object, TakeoverReport | None]]
        jobs = [self._redeliver(u) for u in again]
        for t in found.taken_over:
            if self._due is not None and _never_started(t):
                # A due request whose replica stopped before it sent anything (a timer's
                # revert, an approved request): it is simply carried out here.
                jobs.append(self._carry_out(t, self._due))
            else:
                jobs.append(self._report(t, self._book.hold(t.lease), 1))
        if self._due is not None:
            jobs += [self._carry_out(t, self._due) for t in found.due]
        if found.expired:
            jobs.append(self._expired(found.expired))
        tasks = [asyncio.ensure_future(job) for job in jobs]
        for task in tasks:
            self._reporting.add(task)
            task.add_done_callback(self._reporting.discard)
        return tasks

    def wake(self) -> None:
        """Run a round now rather than at the next tick (work was just made due)."""
        self._wake.set()

    async def _expired(self, records: list[RequestRecord]) -> None:
        for record in records:
            log.info("request %s expired waiting for approval", record.request_key)
        if self._on_expired is not None:
            try:
                await self._on_expired(records)
            except Exception:
                log.exception("telling people about expired requests failed")

    async def _carry_out(self, taken: TakenRequest, due: DueWork) -> None:
        try:
            await due.carry_out_due(taken, self._deliveries.for_address(taken.record.reply))
        except Exception:
            # Its lease was handed back (or runs out): a loop takes it over and reports it.
            log.exception("carrying out due request %s failed", taken.request_key)

    async def _loop(self, *, at_once: bool) -> None:
        # The reports run beside the loop, so leases (theirs included) are renewed while a
        # long report reads its rooms back.
        if not at_once:
            await self._sleep_until_due()
        while True:
            try:
                await self._round()
            except AuditError as exc:
                log.warning("looking for due work failed: %s", exc)
            except Exception:
                log.exception("the request loop failed unexpectedly")
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        """Wait `interval_s`, or less when woken (`wake`)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.interval_s)
        self._wake.clear()

    async def _redeliver(self, undelivered: _Undelivered) -> TakeoverReport | None:
        try:
            rows = tuple(await self._store.rows_for_request(undelivered.taken.request_key))
        except AuditError as exc:
            log.warning(
                "takeover of %s: could not re-read its rows: %s", undelivered.taken.request_key, exc
            )
            self._undelivered[undelivered.taken.request_key] = replace(
                undelivered, due=self._monotonic() + self.interval_s
            )
            return None
        taken = replace(undelivered.taken, rows=rows, lease=undelivered.held.lease)
        return await self._report(taken, undelivered.held, undelivered.attempts + 1)

    async def _report(
        self, taken: TakenRequest, held: HeldLease, attempts: int
    ) -> TakeoverReport | None:
        key = taken.request_key
        try:
            # A received request's rows, from its plan (at a later attempt too, when the
            # first could not write them).
            taken = await self._with_rows(taken, held)
            if attempts == 1:
                previous = taken.previous_owner
                restart = previous is not None and certainly_stopped(previous)
                metrics.count_takeover("restart" if restart else "lease_expired")
                log.warning(
                    "taking over request %s (its replica %s stopped): %d row(s) to settle",
                    key,
                    taken.previous_owner or "unknown",
                    len(taken.unsettled_rows),
                )
            report = await take_over(self._store, self._reader, replace(taken, lease=held.lease))
            delivery = self._deliveries.for_address(taken.record.reply)
            await held.check()
            try:
                await delivery.takeover(report)
            except Exception:
                total = taken.record.takeovers + attempts - 1
                if total < self._max_takeovers:
                    log.exception(
                        "takeover of %s: the report could not be delivered; trying again", key
                    )
                    # Slack may be down for a while: wait longer after each failed attempt.
                    delay = min(REDELIVERY_MAX_S, self.interval_s * 2**attempts)
                    self._undelivered[key] = _Undelivered(
                        taken, held, attempts, self._monotonic() + delay
                    )
                    metrics.set_takeovers_undelivered(len(self._undelivered))
                    return None
                log.exception(
                    "takeover of %s: the report could not be delivered after %d attempts; giving "
                    "up (the audit trail holds the verdicts)",
                    key,
                    total,
                )
            await self._store.finish_request(held.lease, state=RequestState.REPORTED)
            self._book.release(held)
            metrics.set_takeovers_undelivered(len(self._undelivered))
            return report
        except LeaseLost as exc:
            log.warning("takeover of %s: %s", key, exc)
            self._book.release(held)
            return None
        except AuditError as exc:
            # The lease stays held and renewed by this replica until it can be finished.
            log.warning("takeover of %s: the audit store failed: %s; trying again", key, exc)
            self._undelivered[key] = _Undelivered(
                taken, held, attempts, self._monotonic() + self.interval_s
            )
            return None

    async def _with_rows(self, taken: TakenRequest, held: HeldLease) -> TakenRequest:
        """A request that stopped before its rows were written gets them now, from its plan
        (each then reported `not_attempted`), so the trail and Retry see every target."""
        if taken.rows or taken.record.state is not RequestState.RECEIVED:
            return taken
        try:
            plan = plan_from_json(taken.record.plan, taken.request_key)
        except PlanUnreadable as exc:
            log.warning("takeover of %s: %s", taken.request_key, exc)
            return taken
        rows = [
            entry(
                plan.actor,
                plan.command,
                plan.raw_text,
                room_id=t.room_id,
                patch=t.changes,
                request_key=plan.request_key,
                verb="undo" if plan.kind.value == "undo" else None,
                reason=taken.record.reason,
            )
            for index, call in enumerate(plan.calls)
            for t in targets_of(call, index)
        ]
        await self._store.begin_request(held.lease, rows)
        # Still reported as `received`: nothing was sent.
        return replace(taken, rows=tuple(await self._store.rows_for_request(taken.request_key)))


def _never_started(taken: TakenRequest) -> bool:
    """True for a time-boxed change's revert taken over before its holder wrote any row: it
    sent nothing, so it is run again rather than reported."""
    record = taken.record
    return record.kind == REVERT_KIND and record.state is RequestState.RECEIVED and not taken.rows
