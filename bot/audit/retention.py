"""Retention of the audit trail (`ROOMBOT_AUDIT_RETENTION`, `roombot audit prune`): rows older
than a cutoff are deleted in batches, in the background on one replica at a time, or on demand.

What is never pruned, whatever its age:

* the rows of a request that is not finished (received, awaiting approval, scheduled, running,
  done but not reported): its record and its rows are still in use;
* a pending row (its call may still answer);
* a row another row points at (`undo_of`, a foreign key): it goes after the row pointing at it
  (a later batch of the same prune), never before;
* a row the plan of an unfinished request names (`plan["undo_of"]`: a scheduled undo or revert
  will write rows pointing at it).

A request record goes when it is finished, older than the cutoff, and has no row left.

One batch is one short write transaction of at most `PRUNE_BATCH` rows, so a prune never holds
the database for long. On PostgreSQL each batch first takes a transaction-level advisory lock
(`pg_try_advisory_xact_lock`) and, when another replica holds it, does nothing: one replica
prunes at a time, and the others skip rather than wait. Rows are picked `FOR UPDATE SKIP
LOCKED` as well. SQLite's write transaction holds the database anyway (one process).

Every prune is logged (one line, with counts) and counted (`roombot_audit_pruned_total`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Final

from bot import metrics
from bot.audit.records import RequestState
from bot.audit.sql import Body, Query

if TYPE_CHECKING:
    from bot.audit.store import AuditStore

log = logging.getLogger(__name__)

#: Rows (and request records) deleted per transaction.
PRUNE_BATCH: Final = 1_000
#: How often the background pruner looks (the first look is soon after start).
PRUNE_INTERVAL_S: Final = 3_600.0
#: The advisory lock every replica's pruner takes on PostgreSQL ("roombot:audit-prune").
PRUNE_LOCK_KEY: Final = 0x726F6F6D_62507275
#: Requests in these states keep every row, however old.
UNFINISHED: Final = tuple(
    s.value
    for s in (
        RequestState.RECEIVED,
        RequestState.AWAITING_APPROVAL,
        RequestState.SCHEDULED,
        RequestState.RUNNING,
        RequestState.DONE,
    )
)
_UNFINISHED_SQL: Final = ", ".join(f"'{state}'" for state in UNFINISHED)


def _prunable(alias: str) -> str:
    """The rows of `alias` old enough and of no unfinished request (not yet the `undo_of`
    rule)."""
    return (
        f"{alias}.created_at < %(cutoff)s AND {alias}.outcome <> 'pending' "  # noqa: S608
        f"AND NOT ({alias}.id $IN(kept)) "
        f"AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.request_key = {alias}.request_key "
        f"AND r.state IN ({_UNFINISHED_SQL}))"
    )


# A batch takes rows nothing points at; a row pointed at goes in a later batch, after the row
# pointing at it (undo_of always points at an older row, so every prunable row is reached).
_PICK_ROWS: Final = (
    f"SELECT e.id FROM audit_entries e WHERE {_prunable('e')} "  # noqa: S608
    "AND NOT EXISTS (SELECT 1 FROM audit_entries k WHERE k.undo_of = e.id) "
    "ORDER BY e.id LIMIT %(limit)s $SKIP_LOCKED"
)
_DELETE_ROWS: Final = f"DELETE FROM audit_entries WHERE id IN ({_PICK_ROWS})"  # noqa: S608
# A dry run counts what a prune would take: the prunable rows no kept row points at.
_COUNT_ROWS: Final = (
    f"SELECT COUNT(*) FROM audit_entries e WHERE {_prunable('e')} "  # noqa: S608
    "AND NOT EXISTS (SELECT 1 FROM audit_entries k WHERE k.undo_of = e.id "
    f"AND NOT ({_prunable('k')}))"
)
_FINISHED_REQUESTS: Final = (
    "FROM requests r WHERE r.created_at < %(cutoff)s "  # noqa: S608
    f"AND r.state NOT IN ({_UNFINISHED_SQL}) "
    "AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.request_key = r.request_key)"
)
_DELETE_REQUESTS: Final = (
    "DELETE FROM requests WHERE request_key IN (SELECT r.request_key "  # noqa: S608
    f"{_FINISHED_REQUESTS} ORDER BY r.created_at LIMIT %(limit)s $SKIP_LOCKED)"
)
# ... and the finished records all of whose rows a prune would take.
_COUNT_REQUESTS: Final = (
    "SELECT COUNT(*) FROM requests r WHERE r.created_at < %(cutoff)s "  # noqa: S608
    f"AND r.state NOT IN ({_UNFINISHED_SQL}) "
    "AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.request_key = r.request_key "
    f"AND (NOT ({_prunable('e')}) OR EXISTS (SELECT 1 FROM audit_entries k "
    f"WHERE k.undo_of = e.id AND NOT ({_prunable('k')}))))"
)
_PLANS_IN_USE: Final = f"SELECT plan FROM requests WHERE state IN ({_UNFINISHED_SQL})"  # noqa: S608


@dataclass(frozen=True)
class PruneResult:
    """What one prune did (or, with `dry_run`, would do): rows and request records deleted
    before `cutoff`; `busy` when another replica was pruning (this one did nothing more)."""

    cutoff: float
    rows: int
    requests: int
    dry_run: bool = False
    busy: bool = False


def _kept_rows(plans: list[tuple[object, ...]]) -> list[int]:
    """The row ids the plans of unfinished requests point at (`undo_of`: `[room, account, row]`)."""
    kept: list[int] = []
    for (text,) in plans:
        try:
            plan = json.loads(str(text))
        except ValueError:
            continue
        items = plan.get("undo_of") if isinstance(plan, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, list) and item and isinstance(item[-1], int):
                kept.append(item[-1])
    return kept


def _batch(cutoff: float, limit: int, lock: bool) -> Body[tuple[bool, int, int]]:
    """One batch: (done, rows deleted, requests deleted); done False when the lock is taken."""
    if lock:
        got = yield Query("SELECT pg_try_advisory_xact_lock(%(key)s)", {"key": PRUNE_LOCK_KEY})
        if not got.scalar():
            return False, 0, 0
    kept = _kept_rows((yield Query(_PLANS_IN_USE)).rows)
    params = {"cutoff": cutoff, "limit": limit, "kept": kept}
    rows = (yield Query(_DELETE_ROWS, params)).rowcount
    requests = (yield Query(_DELETE_REQUESTS, params)).rowcount
    return True, max(rows, 0), max(requests, 0)


def _count(cutoff: float) -> Body[tuple[int, int]]:
    kept = _kept_rows((yield Query(_PLANS_IN_USE)).rows)
    rows = (yield Query(_COUNT_ROWS, {"cutoff": cutoff, "kept": kept})).scalar()
    requests = (yield Query(_COUNT_REQUESTS, {"cutoff": cutoff, "kept": kept})).scalar()
    return int(rows or 0), int(requests or 0)


async def prune(
    store: AuditStore,
    older_than_s: float,
    *,
    now: float | None = None,
    dry_run: bool = False,
    batch: int = PRUNE_BATCH,
) -> PruneResult:
    """Delete (or with `dry_run`, count) the rows older than `older_than_s` seconds before `now`
    that may go (see the module docstring), a batch at a time until none is left, and the
    finished request records left without rows. Logged, and counted."""
    if older_than_s <= 0:
        raise ValueError(f"older_than_s must be positive, got {older_than_s}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    cutoff = (time.time() if now is None else now) - older_than_s
    if dry_run:
        metrics.count_store_transaction("read")
        rows, requests = await store.dialect.read("count old audit rows", partial(_count, cutoff))
        return PruneResult(cutoff=cutoff, rows=rows, requests=requests, dry_run=True)
    lock = store.backend == "postgresql"
    total_rows = total_requests = 0
    busy = False
    while True:
        metrics.count_store_transaction("prune")
        done, rows, requests = await store.dialect.write(
            "prune old audit rows", partial(_batch, cutoff, batch, lock)
        )
        total_rows += rows
        total_requests += requests
        if not done:
            busy = True
            break
        if rows < batch and requests < batch:
            if rows == 0 and requests == 0:
                break
            continue  # rows pointed at by the ones just deleted may go now
        await asyncio.sleep(0)  # let the bot's own work through between batches
    metrics.count_pruned("rows", total_rows)
    metrics.count_pruned("requests", total_requests)
    if total_rows or total_requests or busy:
        log.info(
            "audit retention: pruned %d row(s) and %d request record(s) older than %s%s",
            total_rows,
            total_requests,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cutoff)),
            " (another replica was pruning: it goes on)" if busy else "",
        )
    return PruneResult(cutoff=cutoff, rows=total_rows, requests=total_requests, busy=busy)


class AuditPruner:
    """Prunes the trail in the background: at start (after `first_after_s`) and then every
    `interval_s`, rows older than `retention_s`. Errors are logged; it tries again next time."""

    def __init__(
        self,
        store: AuditStore,
        retention_s: float,
        *,
        interval_s: float = PRUNE_INTERVAL_S,
        first_after_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._retention_s = retention_s
        self._interval_s = interval_s
        self._first_after_s = first_after_s
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        #: The last prune's result (None before the first).
        self.last: PruneResult | None = None

    def start(self) -> None:
        """Start pruning in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-prune")

    async def stop(self) -> None:
        """Stop, waiting for a batch under way to end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> PruneResult | None:
        """One prune now; None (logged) when the store failed."""
        from bot.audit.records import AuditError

        try:
            self.last = await prune(self._store, self._retention_s, now=self._clock())
        except AuditError as exc:
            log.warning("audit retention: the prune failed, trying again later: %s", exc)
            return None
        return self.last

    async def _run(self) -> None:
        await self._sleep(self._first_after_s)
        while True:
            await self.run_once()
            await self._sleep(self._interval_s)
