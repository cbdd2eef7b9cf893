"""One life for every request (DESIGN §2.10): the core carries a write request from its receipt
to its report, whatever adapter it came from.

`RequestLife.submit(plan, delivery)`:

1. **claim**: the request is recorded with its plan, who asked and where to report
   (`delivery.address()`), and this replica takes its lease. The claim is the record: from here
   on a survivor finds it if this replica stops. A `dedupe_key` already on record means the
   request was received before (a Slack retry, a replayed command, a second click): nothing is
   done and `submit` returns None.
2. **start**: the delivery shows the request is under way (Slack posts the parent message),
   while the runner reads the rooms.
3. **run** (`bot.requests.runner`): the rows are written with the values read before (`begin`),
   the calls made, the outcomes recorded (`complete`), every write fenced by the lease.
4. **report**: the delivery shows the outcome, then the request is marked reported and its
   lease released (`finish`).

Four store transactions for a one-room write; no heartbeat write unless it lasts longer than a
third of the lease (`bot.requests.leases`). If another replica takes the request over meanwhile
(this one was paused past its lease), this one posts and writes nothing more: the other one
reports. If this one stops, its lease expires and a survivor's loop reports
(`bot.requests.loop`). A failure to write the record refuses the request (nothing is called)
unless unaudited changes are allowed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from bot.audit import AuditError, AuditStore, Lease, LeaseLost, RequestState
from bot.outcomes import Plan, Progress, RunResult
from bot.requests.delivery import Delivery
from bot.requests.leases import HeldLease, LeaseBook
from bot.requests.plans import new_request
from bot.requests.recorder import AuditRecorder
from bot.requests.runner import AUDIT_RETRY_S, Runner, calls_first

log = logging.getLogger(__name__)

_RETRY_PAUSES: Final = (0.1, 0.4, 1.0)


class RequestLife:
    """Carries write requests through their life for one process (see the module docstring).

    `store` None means no audit trail at all (requests then run without a record); `book` holds
    this process's leases (the loop renews them). `allow_unaudited` lets a request run when its
    record cannot be written.
    """

    def __init__(
        self,
        store: AuditStore | None,
        runner: Runner,
        audit: AuditRecorder,
        *,
        book: LeaseBook | None,
        allow_unaudited: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._runner = runner
        self._audit = audit
        self._book = book
        self._allow_unaudited = allow_unaudited
        self._sleep = sleep
        self._monotonic = monotonic

    async def submit(
        self, plan: Plan, delivery: Delivery, *, dedupe_key: str | None = None
    ) -> RunResult | None:
        """Record `plan`, carry it out and report it through `delivery` (see the module
        docstring). Returns the run (`lost` set when another replica took it over; nothing was
        reported here), or None for a request already on record under `dedupe_key` (by
        default the plan's own).

        An unexpected error leaves the request to the loops (its lease is handed back, so any
        replica reads its rooms and reports) and propagates.
        """
        if plan.command.timebox_s is not None and self._store is None:
            run = self._runner.refused(
                plan, "a time-boxed change (--for) needs the audit store, to keep its timer"
            )
            await delivery.start(plan)
            await delivery.finish(run)
            return run
        claim = await self._claim(plan, delivery, dedupe_key or plan.dedupe_key)
        if claim is None:
            return None
        lease, problem = claim
        if problem is not None and not self._allow_unaudited:
            run = self._runner.refused(plan, problem)
            await delivery.start(plan)
            await delivery.finish(run)
            return run
        return await self._held(plan, delivery, lease, problem)

    async def schedule(
        self,
        plan: Plan,
        delivery: Delivery,
        *,
        run_after: float | None,
        waiting: RequestState = RequestState.SCHEDULED,
        dedupe_key: str | None = None,
        expires_at: float | None = None,
    ) -> bool:
        """Record `plan` without carrying it out: it waits in `waiting` (`scheduled`: a
        replica's loop runs it once `run_after`, Unix seconds, has passed; `awaiting_approval`:
        until a click takes it, `AuditStore.take_waiting`, or `expires_at`). Reported through
        `delivery`'s address when it runs. False for a repeat (`dedupe_key` on record). Raises
        `AuditError` when it cannot be recorded (nothing would ever run it) and `RuntimeError`
        without an audit store."""
        if self._store is None:
            raise RuntimeError("scheduling a request needs an audit store")
        new = new_request(
            plan,
            delivery.address(),
            dedupe_key or plan.dedupe_key,
            run_after=run_after,
            waiting=waiting,
            expires_at=expires_at,
        )
        return await self._store.record_request(new)

    async def carry_out(self, plan: Plan, delivery: Delivery, lease: Lease) -> RunResult:
        """Carry out a request already on record that this replica just took under `lease`
        (a scheduled request whose time came, an approved one: `AuditStore.take_due`,
        `take_waiting`), from its read of the rooms to its report, as `submit` does after the
        claim. `plan` is the request's (its key is the record's)."""
        if plan.request_key != lease.request_key:
            raise ValueError(f"plan {plan.request_key} is not request {lease.request_key}")
        return await self._held(plan, delivery, lease, None)

    async def _held(
        self, plan: Plan, delivery: Delivery, lease: Lease | None, problem: str | None
    ) -> RunResult:
        held = self._book.hold(lease) if lease is not None and self._book is not None else None
        if held is not None:
            delivery.guard = held.guard
        try:
            run = await self._carry_out(plan, delivery, held, unaudited=problem)
        except LeaseLost as exc:
            log.warning("request %s: %s; this replica reports nothing more", plan.request_key, exc)
            if held is not None:
                await self._hand_back(held)
            return self._runner.lost(plan, str(exc))
        except BaseException as exc:
            if held is not None and not isinstance(exc, asyncio.CancelledError):
                await self._hand_back(held)
            raise
        finally:
            if held is not None and self._book is not None:
                self._book.release(held)
        if run.lost is not None and held is not None:
            await self._hand_back(held)
        return run

    async def _claim(
        self, plan: Plan, delivery: Delivery, dedupe_key: str | None
    ) -> tuple[Lease | None, str | None] | None:
        """The claim: (lease, None) on record; (None, problem) when it cannot be written;
        None for a repeat. Retried for `AUDIT_RETRY_S` when the store fails."""
        store = self._store
        if store is None:
            return None, None
        new = new_request(plan, delivery.address(), dedupe_key)
        started = self._monotonic()
        pauses = iter(_RETRY_PAUSES)
        while True:
            try:
                lease = await store.claim_request(new, prefetch=calls_first(plan))
            except AuditError as exc:
                problem = self._audit.failed("request", exc)
                pause = next(pauses, None)
                if pause is None or self._monotonic() - started >= AUDIT_RETRY_S:
                    return None, problem
                await self._sleep(pause)
                continue
            if lease is None:
                log.info("request %s is a repeat (%s): not run again", plan.request_key, dedupe_key)
                return None
            return lease, None

    async def _carry_out(
        self, plan: Plan, delivery: Delivery, held: HeldLease | None, *, unaudited: str | None
    ) -> RunResult:
        started = asyncio.ensure_future(delivery.start(plan))

        async def on_progress(progress: Progress) -> None:
            await delivery.progress(plan, progress)

        try:
            run = await self._runner.run(
                plan,
                held=held,
                address=delivery.address,
                progress=on_progress,
                progress_interval=delivery.progress_interval,
                pause=delivery.pause,
                unaudited=unaudited,
                ready=started,
            )
        finally:
            # The parent is part of the report: it must exist (or have failed) before the rest.
            await started
        if run.lost is not None:
            return run
        if held is not None:
            try:
                await held.check()
            except LeaseLost as exc:
                log.warning("request %s: %s; not reporting it here", plan.request_key, exc)
                run.lost = str(exc)
                return run
        await delivery.finish(run)
        if held is not None and self._store is not None:
            await self._finish(held, delivery)
            if run.revert_key is not None and not run.succeeded:
                await self._drop_timer(run.revert_key)
        return run

    async def _drop_timer(self, revert_key: str) -> None:
        """A time-boxed change that changed nothing has nothing to revert: its timer is
        cancelled rather than left listed (were it left, it would end `cancelled` when due)."""
        assert self._store is not None
        try:
            await self._store.settle_waiting(
                revert_key, from_states=(RequestState.SCHEDULED,), state=RequestState.CANCELLED
            )
        except AuditError as exc:
            log.warning("could not drop timer %s of a change that failed: %s", revert_key, exc)

    async def _finish(self, held: HeldLease, delivery: Delivery) -> None:
        """Mark the request reported and release its lease (retried; a failure is logged: the
        lease then expires and a survivor reports the request again from its rows)."""
        assert self._store is not None
        pauses = iter(_RETRY_PAUSES)
        while True:
            try:
                await self._store.finish_request(
                    held.lease, state=RequestState.REPORTED, reply=delivery.address()
                )
                return
            except LeaseLost as exc:
                log.warning("request %s: %s after it was reported", held.request_key, exc)
                return
            except AuditError as exc:
                problem = self._audit.failed("finish", exc)
                pause = next(pauses, None)
                if pause is None:
                    log.error(
                        "request %s stays unreported on record: %s", held.request_key, problem
                    )
                    return
                await self._sleep(pause)

    async def _hand_back(self, held: HeldLease) -> None:
        """After an unexpected error, or when this replica can no longer be sure it holds the
        request (paused past its lease): give the lease up at once, if it is still this
        replica's, so a loop (this replica's or another's) reads the rooms back and reports the
        request. When another replica has it already, that one reports: nothing to do."""
        if self._store is None:
            return
        try:
            await self._store.abandon_request(held.lease)
        except LeaseLost:
            log.info("request %s is another replica's now: that one reports it", held.request_key)
        except AuditError as exc:
            log.warning("could not hand request %s back: %s", held.request_key, exc)
