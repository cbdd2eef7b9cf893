"""Carrying out requests that were recorded to run later (DESIGN §2.10): a scheduled request
whose time has come, found by a replica's loop (`RequestLoop`), or a waiting one a click took
(an approval). Each is made into a plan by the builder registered for its kind (by default the
plan it was recorded with) and carried out through its life (`RequestLife.carry_out`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.audit import AuditError, AuditStore, LeaseLost, RequestRecord, RequestState, TakenRequest
from bot.outcomes import Plan, RunResult
from bot.requests.delivery import Delivery
from bot.requests.life import RequestLife
from bot.requests.plans import PlanUnreadable, plan_from_json

log = logging.getLogger(__name__)

#: Whether a due request's plan must first wait for a second person's approval: why, once the
#: approval is asked for, or None to run it now (`DueRequests.hold`).
HoldForApproval = Callable[[Plan, Delivery], Awaitable[str | None]]


@dataclass(frozen=True)
class HeldForApproval:
    """A due request not run: its plan waits for a second person's approval, asked for `why`."""

    why: str


#: Makes the plan of a request whose time has come; raises `NothingToRun` (or
#: `PlanUnreadable`) when there is nothing to carry out.
PlanBuilder = Callable[[RequestRecord], Awaitable[Plan]]
#: Told each run of a due request of its kind once it has ended (e.g. to count it).
RunWatcher = Callable[[RunResult], None]


class NothingToRun(Exception):
    """A due request turned out to have nothing to do (e.g. every field was changed since): the
    request ends `cancelled`; `why` says so to people."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


async def recorded_plan(record: RequestRecord) -> Plan:
    """The plan a request was recorded with."""
    return plan_from_json(record.plan, record.request_key)


class DueRequests:
    """The process's `DueWork`: builds each due request's plan by its kind and carries it out."""

    def __init__(self, store: AuditStore, life: RequestLife) -> None:
        self._store = store
        self._life = life
        self._builders: dict[str, PlanBuilder] = {}
        self._watchers: dict[str, RunWatcher] = {}
        #: Asked once a due request's plan is built: why that plan must wait for a second person
        #: first, having asked (DESIGN §2.12), or None to run it now.
        self.hold: HoldForApproval | None = None

    def on_due(self, kind: str, builder: PlanBuilder, *, done: RunWatcher | None = None) -> None:
        """Make the plans of due requests of `kind` with `builder` (instead of the recorded
        plan); `done`, when given, is told each run once it has ended."""
        self._builders[kind] = builder
        if done is not None:
            self._watchers[kind] = done

    async def carry_out_due(
        self, taken: TakenRequest, delivery: Delivery
    ) -> RunResult | HeldForApproval | None:
        """Carry out `taken` (held under `taken.lease`) through its life, reported through
        `delivery`. One with nothing to run, or no plan this version can read, ends
        `cancelled` (logged; the delivery is not told: there is no outcome to show) and
        returns None. One whose plan needs a second person's approval (`hold`) ends
        `cancelled` too, handed over to the approval it asked for; else the run."""
        record = taken.record
        builder = self._builders.get(record.kind, recorded_plan)
        try:
            plan = await builder(record)
        except (NothingToRun, PlanUnreadable) as exc:
            log.warning("due request %s is not run: %s", record.request_key, exc)
            try:
                await self._store.finish_request(taken.lease, state=RequestState.CANCELLED)
            except (LeaseLost, AuditError) as failed:
                log.warning("could not end due request %s: %s", record.request_key, failed)
            return None
        if self.hold is not None:
            why = await self.hold(plan, delivery)
            if why is not None:
                log.info("due request %s waits for approval: %s", record.request_key, why)
                try:
                    await self._store.finish_request(taken.lease, state=RequestState.CANCELLED)
                except (LeaseLost, AuditError) as failed:
                    log.warning("could not end due request %s: %s", record.request_key, failed)
                return HeldForApproval(why)
        run = await self._life.carry_out(plan, delivery, taken.lease)
        watcher = self._watchers.get(record.kind)
        if watcher is not None:
            watcher(run)
        return run
