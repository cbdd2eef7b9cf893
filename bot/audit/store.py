"""The audit store: one class for both databases (`open_store` in `bot.audit.factory` opens it).

It keeps what roombot must remember and what several replicas must share:

* the trail: every request's rows, one per room (or account), written before the Room Engine
  call and completed after it, so a stop mid-call leaves a visible row rather than nothing;
* the request records (DESIGN §2.10): a request is on record from the moment it is received,
  with where to report it, and the lease of the replica carrying it out (owner, expiry, fencing
  number). A write request's life is four transactions here: `claim_request`,
  `begin_request`, `complete_request`, `finish_request`; a survivor takes over expired ones
  with `take_over`;
* one-shot claims (Slack retries, double clicks) and confirmation prompts, atomic across every
  store on the same database;
* the Room Engine rate budget every replica on the database shares (`rate_budget`).

The SQL is written once (`bot.audit.trail`, `bot.audit.life`); the `Dialect` runs it on SQLite
(one file, one process) or PostgreSQL (one database, any number of replicas).

Failures are `AuditError` with one-line messages that never carry a stored value or a password;
a fenced write for a request this replica no longer holds raises `LeaseLost`. Arguments that
are wrong whatever the database holds raise `ValueError`/`TypeError` first.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Final, TypeVar

from bot import metrics
from bot.audit import life, timers, trail
from bot.audit.approvals import ApprovalOps, expire_waiting
from bot.audit.dialect import BudgetRider, Dialect, RateBudgets
from bot.audit.records import (
    AuditEntry,
    AuditError,
    Confirmation,
    ConfirmationState,
    ConfirmationStatus,
    FoundWork,
    Lease,
    NewEntry,
    NewRequest,
    Outcome,
    RequestRecord,
    RequestState,
    TakenRequest,
)
from bot.audit.rows import Completion, check_new_entries
from bot.audit.sql import Body, BodyFactory
from bot.defaults import CONFIRMATION_TTL_S

log = logging.getLogger(__name__)

#: How long a confirmation prompt may wait for its click by default.
DEFAULT_CONFIRMATION_TTL_S: Final = CONFIRMATION_TTL_S
#: How long a lease lives without renewal (`ROOMBOT_LEASE_S`'s default).
DEFAULT_LEASE_S: Final = 30.0
#: The `operation` label of each write, by what the store was asked to do.
_OPERATIONS: Final = {
    "record a request": "claim_request",
    "start a request": "begin_request",
    "complete a request": "complete_request",
    "finish a request": "finish_request",
    "hand a request back": "abandon_request",
    "renew leases": "renew",
    "take over requests": "take_over",
    "find work": "find_work",
    "expire leases": "expire",
    "take due requests": "take_due",
    "take a waiting request": "take_waiting",
    "settle a waiting request": "settle_waiting",
    "approve a waiting request": "take_waiting",
    "decline a waiting request": "settle_waiting",
    "readdress a waiting request": "settle_waiting",
    "write entries": "write",
    "complete entries": "complete",
    "claim a key": "claim",
    "create a confirmation": "confirmation",
    "settle a confirmation": "confirmation",
}
_T = TypeVar("_T")

#: Every adapter's requests: what a replica that can deliver anything takes over.
ANY_ADAPTER: Final = ("slack", "console", "log", "unknown")


def default_owner() -> str:
    """An owner id unique to this process: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def certainly_stopped(owner: str) -> bool:
    """True when `owner` names a process on this host that is not running any more (its pid is
    gone, or is this very process, which `owner` is not). Another host's owner cannot be
    judged from here: its lease has to expire."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class AuditStore(ApprovalOps):
    """The audit trail, request records and their leases, claims, confirmation prompts and the
    shared rate budget, on one `Dialect`.

    Open with `await open_store(target)`; `close()` when done, or `async with`. Safe to share
    between the tasks of one event loop. `clock` gives the Unix seconds of row times;
    `monotonic` this process's clock for lease deadlines (tests pass fakes).
    """

    def __init__(
        self,
        dialect: Dialect,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        owner: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self._dialect = dialect
        self._clock = clock
        self._monotonic = monotonic
        self._owner = owner or default_owner()
        self._lease_s = lease_s
        #: The rate budget whose work rides along with this store's writes (PostgreSQL).
        self._rider: BudgetRider | None = None
        #: How many requests were in flight for replicas found stopped when this store opened.
        self.recovered = 0

    async def __aenter__(self) -> AuditStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- identity -------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._dialect.name

    @property
    def owner(self) -> str:
        """This replica's id in leases."""
        return self._owner

    @property
    def lease_s(self) -> float:
        """How long this store's leases live without renewal."""
        return self._lease_s

    @property
    def dialect(self) -> Dialect:
        """The database this store runs on."""
        return self._dialect

    def describe(self) -> str:
        """Where the store is, for people: a path, or the URL with its password masked."""
        return self._dialect.describe()

    async def close(self) -> None:
        """Release the connection(s); idempotent. Later calls raise `AuditError`."""
        await self._dialect.close()

    def rate_budget(
        self, rate_per_second: float, *, burst: int | None = None, app: str | int | None = None
    ) -> RateBudgets:
        """The Room Engine rate budget that every store on this database shares, per API (of
        app `app`, the SDKAppID, when given): at most `floor(rate_per_second)` call starts of
        each API in any one-second window, all replicas together (SQLite, one process: the
        process's `RateBudget`). On PostgreSQL its work rides along with this store's writes: a
        request's claim reserves its first calls' slots, and every write carries the call ends
        that wait (`bot.audit.budget`). Its limit per API is what `roombot_rate_budget_limit`
        shows."""
        budget = self._dialect.rate_budget(
            rate_per_second,
            burst=burst,
            owner=self._owner,
            app=None if app is None else str(app),
        )
        if isinstance(budget, BudgetRider) and self._rider is None:
            self._rider = budget
        metrics.watch_rate_limits(budget)
        return budget

    # -- transactions -----------------------------------------------------------------------------

    async def _write(self, action: str, body: BodyFactory[_T]) -> _T:
        """One write transaction, counted (`roombot_store_transactions_total`); the rate
        budget's waiting call ends ride along with it."""
        operation = _OPERATIONS.get(action, "write")
        metrics.count_store_transaction(operation)
        ends = self._rider.ends_query() if self._rider is not None else None
        if log.isEnabledFor(logging.DEBUG):
            riding = f", with {len(ends[1])} call end(s) riding along" if ends else ""
            log.debug("store transaction: %s (%s)%s", operation, action, riding)
        if ends is None:
            return await self._dialect.write(action, body)
        query, batch = ends

        def with_ends() -> Body[_T]:
            yield query
            return (yield from body())

        try:
            return await self._dialect.write(action, with_ends)
        except BaseException:
            assert self._rider is not None
            self._rider.restore_ends(batch)
            raise

    async def _read(self, action: str, body: BodyFactory[_T]) -> _T:
        """One read, counted (a statement outside a transaction is one on PostgreSQL too)."""
        metrics.count_store_transaction("read")
        log.debug("store read: %s", action)
        return await self._dialect.read(action, body)

    # -- the audit trail ------------------------------------------------------------------------

    async def begin(self, entries: Sequence[NewEntry]) -> list[int]:
        """Write `pending` rows before a call, in one transaction; ids in order (rows that belong
        to no request record: a request's own rows go with `begin_request`)."""
        check_new_entries(entries, final=False)
        now = self._clock()
        return await self._write(
            "write entries", lambda: trail.insert_entries(entries, final=False, now=now)
        )

    async def record(self, entries: Sequence[NewEntry]) -> list[int]:
        """Write rows whose outcome is already known (denied, invalid, dry_run, ...) in one
        transaction; `finished_at` equals `created_at`. Returns the ids in order."""
        check_new_entries(entries, final=True)
        now = self._clock()
        return await self._write(
            "write entries", lambda: trail.insert_entries(entries, final=True, now=now)
        )

    async def complete(
        self,
        row_id: int,
        *,
        outcome: Outcome,
        tencent_request_id: str | None = None,
        error_code: int | None = None,
        error_info: str | None = None,
        latency_ms: float | None = None,
        previous: dict[str, Any] | None = None,
        detail: str | None = None,
    ) -> None:
        """Record the outcome of a pending row, or of one whose outcome is provisional
        (`unknown`, or a survivor's `in_place`/`not_applied`): the late truth wins, and the
        provisional note is dropped. `previous` and `detail` keep their stored values when not
        given.

        Raises `AuditError` if the row does not exist or already has the call's own outcome.
        """
        completion = Completion(
            outcome=outcome,
            tencent_request_id=tencent_request_id,
            error_code=error_code,
            error_info=error_info,
            latency_ms=latency_ms,
            previous=previous,
            detail=detail,
        )
        await self.complete_many_checked([(row_id, completion)])

    async def complete_many(self, updates: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """`complete` for many rows in one transaction; each update is (row id, complete's
        keyword arguments). Rows that can be completed are, even if some cannot; those then
        raise one `AuditError` naming them."""
        await self.complete_many_checked(
            [(row_id, Completion(**kwargs)) for row_id, kwargs in updates]
        )

    async def complete_many_checked(self, completions: Sequence[tuple[int, Completion]]) -> None:
        """`complete_many` with the completions already built."""
        now = self._clock()
        stale = await self._write(
            "complete entries", lambda: trail.complete_entries(completions, now=now)
        )
        _raise_stale(stale)

    async def get(self, row_id: int) -> AuditEntry | None:
        """The row with this id, or None."""
        return await self._read("read an entry", lambda: trail.get_entry(row_id))

    async def rows_for_request(self, request_key: str) -> list[AuditEntry]:
        """Every row of one request, in the order they were written."""
        return await self._read("read a request's entries", lambda: trail.rows_of([request_key]))

    async def query(
        self,
        *,
        room: str | None = None,
        user: str | None = None,
        since: float | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        """Up to `limit` rows, newest first, for this room and/or user, created at or after
        `since` (Unix seconds)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        return await self._read(
            "query entries",
            lambda: trail.query_entries(room=room, user=user, since=since, limit=limit),
        )

    async def room_trail(self, room_id: str, *, limit: int = 100) -> list[AuditEntry]:
        """Up to `limit` rows of `room_id`, newest first, that say something about its settings:
        those with a `patch` or `previous` values, except rows of requests that called nothing
        (`REFUSED_OUTCOMES`). `bot.callbacks` folds them into what roombot last knew of the room.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        return await self._read("read a room's trail", lambda: trail.room_trail(room_id, limit))

    # -- claims ---------------------------------------------------------------------------------

    async def claim(self, key: str) -> bool:
        """True only the first time `key` is claimed, by any store on this database (for a day).

        For "a double click acts once" across replicas, where no request record does it.
        """
        if not key:
            raise ValueError("a claim key cannot be empty")
        now = self._clock()
        return await self._write("claim a key", lambda: trail.claim(key, now))

    async def claimed(self, keys: Sequence[str]) -> frozenset[str]:
        """Those of `keys` that are claimed now (by any store on this database; a claim is
        forgotten after a day, as in `claim`). Reads only: it claims nothing."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return frozenset()
        now = self._clock()
        return await self._read("read claims", lambda: trail.claimed(wanted, now))

    # -- confirmation prompts -------------------------------------------------------------------

    async def create_confirmation(
        self, *, user_id: str, team_id: str | None, channel_id: str | None, text: str
    ) -> str:
        """Store a prompt awaiting `user_id`'s click; returns its key (url-safe, 32 chars), the
        only thing the buttons need to carry."""
        key = secrets.token_urlsafe(24)
        now = self._clock()
        return await self._write(
            "create a confirmation",
            lambda: trail.create_confirmation(
                key, user_id=user_id, team_id=team_id, channel_id=channel_id, text=text, now=now
            ),
        )

    async def resolve_confirmation(
        self, key: str, *, user_id: str, ttl_s: float = DEFAULT_CONFIRMATION_TTL_S
    ) -> tuple[ConfirmationStatus, Confirmation | None]:
        """Confirm a prompt, exactly once, and only by the user it awaits.

        OK marks it confirmed atomically (a second call, even a concurrent one from another
        replica, gets ALREADY_RESOLVED). WRONG_USER changes nothing. A prompt older than `ttl_s`
        becomes expired and reports EXPIRED, now and later. NOT_FOUND comes with None; every
        other status with the prompt as it now stands.
        """
        return await self._settle(key, user_id, ConfirmationState.CONFIRMED, ttl_s)

    async def cancel_confirmation(
        self, key: str, *, user_id: str
    ) -> tuple[ConfirmationStatus, Confirmation | None]:
        """Cancel a prompt: the same checks as `resolve_confirmation` except the age."""
        return await self._settle(key, user_id, ConfirmationState.CANCELLED, None)

    async def _settle(
        self, key: str, user_id: str, to: ConfirmationState, ttl_s: float | None
    ) -> tuple[ConfirmationStatus, Confirmation | None]:
        now = self._clock()
        return await self._write(
            "settle a confirmation",
            lambda: trail.settle_confirmation(key, user_id, to, ttl_s, now),
        )

    # -- request records ------------------------------------------------------------------------

    async def claim_request(
        self, new: NewRequest, *, hold: bool = True, prefetch: Mapping[str, int] | None = None
    ) -> Lease | None:
        """Record `new` (the claim is the record) and, with `hold`, take its lease for this
        replica (fencing number 1). None when its `dedupe_key` is already on record: a
        repeat, not recorded again. Without `hold` it waits for a replica's loop (scheduled).

        `prefetch`: how many Room Engine calls of each API (by command) the request will make
        first; on PostgreSQL the shared rate budget reserves their slots in this same
        transaction (`bot.audit.budget`).
        """
        now = self._clock()
        sent = self._monotonic()
        owner = self._owner if hold else None
        rider = self._rider if hold and prefetch else None
        reserve = rider.prefetch_queries(prefetch) if rider is not None and prefetch else []

        def body() -> Body[tuple[bool, list[tuple[str, list[tuple[Any, ...]]]]]]:
            claimed = yield from life.claim(new, owner=owner, lease_s=self._lease_s, now=now)
            if not claimed:
                return claimed, []
            granted = []
            for api, query in reserve:
                granted.append((api, (yield query).rows))
            return claimed, granted

        claimed, granted = await self._write("record a request", body)
        if rider is not None:
            for api, rows in granted:
                if rows:
                    rider.accept(api, rows, sent)
        if not claimed or owner is None:
            return None
        return Lease(new.request_key, owner, 1, now + self._lease_s, sent + self._lease_s)

    async def record_request(self, new: NewRequest) -> bool:
        """Record `new` with no holder: it waits (`new.waiting`, or `scheduled` until
        `new.run_after`) for a replica's loop or a click to take it. False when its
        `dedupe_key` is already on record (nothing is written)."""
        now = self._clock()
        return await self._write(
            "record a request",
            lambda: life.claim(new, owner=None, lease_s=self._lease_s, now=now),
        )

    async def begin_request(
        self,
        lease: Lease,
        entries: Sequence[NewEntry],
        reply: Mapping[str, Any] | None = None,
        *,
        timer: NewRequest | None = None,
    ) -> list[int]:
        """The request is running: write its pending rows (and, when given, its latest reply
        address, and the revert `timer` of a time-boxed change) in one transaction. Ids in
        order. `LeaseLost` when it is not this replica's."""
        check_new_entries(entries, final=False)
        now = self._clock()
        holder = _holder(lease)
        address = None if reply is None else dict(reply)
        return await self._write(
            "start a request", lambda: life.begin(holder, entries, address, now=now, timer=timer)
        )

    async def complete_request(
        self,
        lease: Lease,
        completions: Sequence[tuple[int, Completion]],
        reply: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the outcome of every row and mark the request done (reporting is next), in one
        transaction. `LeaseLost` when it is not this replica's; `AuditError` naming the rows
        that could not be completed (the others are)."""
        now = self._clock()
        holder = _holder(lease)
        address = None if reply is None else dict(reply)
        stale = await self._write(
            "complete a request", lambda: life.complete(holder, completions, address, now=now)
        )
        _raise_stale(stale)

    async def finish_request(
        self,
        lease: Lease,
        *,
        state: RequestState = RequestState.REPORTED,
        reply: Mapping[str, Any] | None = None,
    ) -> None:
        """End the request's life in `state` and release its lease. `LeaseLost` when it is not
        this replica's."""
        now = self._clock()
        holder = _holder(lease)
        address = None if reply is None else dict(reply)
        await self._write("finish a request", lambda: life.finish(holder, state, address, now=now))

    async def abandon_request(self, lease: Lease) -> None:
        """Give the request up at once (after an unexpected error): the next replica to look,
        this one included, takes it over and reports it. `LeaseLost` when it is not this
        replica's."""
        now = self._clock()
        holder = _holder(lease)
        await self._write("hand a request back", lambda: life.abandon(holder, now=now))

    async def renew_leases(self, leases: Iterable[Lease]) -> tuple[list[Lease], list[Lease]]:
        """Push back the expiry of these leases (the loop's heartbeat); returns the renewed
        leases and the lost ones (taken over by another replica)."""
        held = list(leases)
        sent = self._monotonic()
        now = self._clock()
        fences = await self._write(
            "renew leases",
            lambda: life.renew(self._owner, [lease.request_key for lease in held], self._lease_s),
        )
        renewed: list[Lease] = []
        lost: list[Lease] = []
        for lease in held:
            if fences.get(lease.request_key) == lease.fence:
                renewed.append(
                    Lease(
                        lease.request_key,
                        lease.owner,
                        lease.fence,
                        now + self._lease_s,
                        sent + self._lease_s,
                    )
                )
            else:
                lost.append(lease)
        return renewed, lost

    async def take_over(
        self,
        *,
        adapters: Sequence[str] = ANY_ADAPTER,
        busy: Collection[str] | None = None,
        limit: int = 10,
    ) -> list[TakenRequest]:
        """Take up to `limit` requests whose holder's lease expired, each by exactly one of the
        stores asking at once: each becomes this owner's (fencing number one higher) and comes
        back with its rows. Only requests one of `adapters` can deliver. This owner's own are
        taken only when `busy` (the ones this process is still carrying out) is given and does
        not name them: a run here that lost its lease, with no other replica to take it, is
        still reported. On PostgreSQL the rate-budget slots of the replicas taken over from
        are ended too."""
        found = await self.find_work(adapters=adapters, busy=busy, limit=limit, due=False)
        return found.taken_over

    async def find_work(
        self,
        *,
        adapters: Sequence[str] = ANY_ADAPTER,
        busy: Collection[str] | None = None,
        limit: int = 10,
        due: bool = True,
    ) -> FoundWork:
        """A replica loop's one look for work, in one transaction: up to `limit` requests whose
        holder's lease expired (as `take_over`) and, with `due`, up to `limit` scheduled
        requests whose time has come (as `take_due`), each taken by exactly one of the stores
        asking at once; with `due` too, requests awaiting approval past their expiry end
        `expired` (`FoundWork.expired`)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        sent = self._monotonic()
        now = self._clock()
        owner = self._owner
        lease_s = self._lease_s

        def body() -> Body[tuple[list[life.TakenOver], list[RequestRecord], list[RequestRecord]]]:
            taken = yield from life.take_over(
                owner,
                lease_s=lease_s,
                adapters=list(adapters),
                busy=None if busy is None else sorted(busy),
                limit=limit,
                end_rate_slots=self.backend == "postgresql",
            )
            if not due:
                return taken, [], []
            ready = yield from life.take_due(
                owner, lease_s=lease_s, adapters=list(adapters), limit=limit
            )
            return taken, ready, (yield from expire_waiting(list(adapters)))

        taken, ready, expired = await self._write("find work", body)
        return FoundWork(
            taken_over=[
                replace(self._taken(record, now, sent), rows=rows, previous_owner=previous)
                for record, rows, previous in taken
            ],
            due=[self._taken(record, now, sent) for record in ready],
            expired=expired,
        )

    async def take_due(
        self, *, adapters: Sequence[str] = ANY_ADAPTER, limit: int = 10
    ) -> list[TakenRequest]:
        """Take up to `limit` scheduled requests whose time has come, each by exactly one of
        the stores asking at once: each becomes this owner's (`received`, fencing number one
        higher), to be carried out from its plan. Only requests one of `adapters` can deliver."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        sent = self._monotonic()
        now = self._clock()
        records = await self._write(
            "take due requests",
            lambda: life.take_due(
                self._owner, lease_s=self._lease_s, adapters=list(adapters), limit=limit
            ),
        )
        return [self._taken(record, now, sent) for record in records]

    async def take_waiting(
        self, request_key: str, *, from_states: Collection[RequestState]
    ) -> TakenRequest | None:
        """Take one request that waits (nobody holds it) in one of `from_states` for this
        owner, to carry it out now: an approval, "revert now". None when it waits no more (it
        ran, was settled, or another click or replica took it first)."""
        sent = self._monotonic()
        now = self._clock()
        record = await self._write(
            "take a waiting request",
            lambda: life.take_waiting(
                self._owner, request_key, lease_s=self._lease_s, from_states=list(from_states)
            ),
        )
        return None if record is None else self._taken(record, now, sent)

    async def settle_waiting(
        self,
        request_key: str,
        *,
        from_states: Collection[RequestState],
        state: RequestState | None = None,
        run_after: float | None = None,
    ) -> RequestRecord | None:
        """Move a request that waits (nobody holds it) in one of `from_states` to `state`
        and/or `run_after` (Keep, Extend, Deny, an expiry). None when it waits no more."""
        now = self._clock()
        return await self._write(
            "settle a waiting request",
            lambda: life.settle_waiting(
                request_key,
                from_states=list(from_states),
                state=state,
                run_after=run_after,
                now=now,
            ),
        )

    def _taken(self, record: RequestRecord, now: float, sent: float) -> TakenRequest:
        lease = Lease(
            record.request_key, self._owner, record.fence, now + self._lease_s, sent + self._lease_s
        )
        return TakenRequest(record=record, lease=lease, rows=(), previous_owner=None)

    async def expire_stopped(self) -> int:
        """End at once the leases of replicas on this host that are certainly not running (a
        restart: this process's predecessor), so they are taken over without waiting for the
        lease to run out. Returns how many requests that frees."""
        owners = await self._read("read lease holders", life.owners_in_flight)
        stopped = [owner for owner in owners if owner != self._owner and certainly_stopped(owner)]
        if not stopped:
            return 0
        return await self._write("expire leases", lambda: life.expire(stopped))

    async def request_by_dedupe_key(self, dedupe_key: str) -> RequestRecord | None:
        """The request recorded under `dedupe_key` (e.g. "undo:KEY"), or None."""
        return await self._read("read a request", lambda: life.by_dedupe_key(dedupe_key))

    async def pending_timers(self, *, limit: int = 500) -> list[RequestRecord]:
        """The time-boxed changes' reverts still to run, soonest first (`bot.audit.timers`)."""
        return await self._read("list timers", lambda: timers.pending(limit))

    async def count_pending_timers(self) -> int:
        """How many time-boxed changes' reverts are still to run."""
        return await self._read("count timers", timers.count_pending)

    async def get_request(self, request_key: str) -> RequestRecord | None:
        """The record of one request, or None."""
        return await self._read("read a request", lambda: life.get(request_key))


def _holder(lease: Lease) -> life.Holder:
    return life.Holder(lease.request_key, lease.owner, lease.fence)


def _raise_stale(stale: Sequence[int]) -> None:
    if stale:
        ids = ", ".join(str(row_id) for row_id in stale)
        raise AuditError(f"audit row(s) {ids} could not be completed: missing or already finished")
