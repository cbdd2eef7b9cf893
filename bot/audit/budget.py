"""One Room Engine rate budget for every replica, kept in PostgreSQL: one per API.

`SharedRateBudget` has `RateBudget`'s interface (`acquire(api)`, `slot(api)`, `halve(api)`,
`limit(api)`), so a client takes either. Tencent's limit is per API and SDKAppID, so each API
has its own budget row (named `<app>:<command>`, e.g. `1400000042:update_room_info`): all
replicas on one database share each row, and together they never have more than
`N = floor(rate)` call starts of one API (nor, through `slot()`, arrivals at Tencent) in any
1-second window. A flood of member reads at the limit never holds up a room write.
Everything below is about one API's budget; the lanes of different APIs share only the
connections and the writing of call ends.

The mechanism: a counting semaphore of N slots, granted by the database
-------------------------------------------------------------------------
Each call needs a *slot*. The function `roombot_rate_reserve` (created by migration 3, replaced by
the migration that made budgets halvable) locks the budget's row, reads the database's clock (the
one clock every replica shares: no replica's own clock matters), drops slots that no longer count,
and grants new ones only while fewer than N are counted. A slot counts from the moment it is
granted until a window (1.02 s: a second plus 20 ms of network and scheduling jitter, as in
`RateBudget`) after the call ended, `ended_at` being written by the replica once the answer is in
(`slot()`), or once the call has started (`acquire()`, which knows nothing of the answer). It holds
the moment of the end on the database's clock, converted from the replica's own with the offset its
grant showed, erring late (the database read its clock after the replica sent the request).

Why that bounds every window: suppose N + 1 calls reached Tencent within one window [t, t + 1 s)
and let c be the one granted last, at G. Each of the N others was granted before G and ended at
or after its own arrival, so after t > G - window; so at G each was either not yet ended or ended
less than a window before: all N were counted, and c could not have been granted. The same
argument holds for starts. Late is always safe here: a grant that reaches the replica late, a
call that starts late, an `ended_at` written late (or never, see below) each make a slot count
longer, never shorter. The only way to count too short would be for a call to go on after its
slot stopped counting without an `ended_at`; `hold_until` (start + 60 s) is far beyond what a
call can take: it starts at most `START_GRACE_S` after its booked time or is not made, its
grant is discarded if the database took more than `MAX_ROUND_TRIP_S` to answer, and the
client's timeouts end every attempt well within the rest.

Pacing on top (GCRA, the token bucket without bookkeeping): each grant also gets a start time
at least `1/rate` after the previous one, with up to `burst` back to back after a quiet spell,
so a 500-room command does not fire its first N calls in the same millisecond. The starts are
booked on the shared row, so the spacing holds across replicas too.

Degrading safely
----------------
* The database is slow: grants come later, so calls start later; and a grant whose round trip
  took longer than `MAX_ROUND_TRIP_S` is handed back unused.
* The database is down: no grant, no call. The caller waits (retrying with backoff) up to
  `WAIT_S`, then gets `RateBudgetUnavailable`; the call is not made. Nothing ever falls back to
  unpaced calls or to a local budget.
* An `ended_at` cannot be written: the slot keeps counting until `hold_until`: fewer calls.
* A replica dies mid-call: its slots count until `hold_until`, then free themselves; sooner,
  once a survivor takes over the replica's expired lease: each slot names the replica (`owner`,
  the store's) it was granted to, and the survivor ends that replica's slots
  (`AuditStore.end_rate_slots_of`), which then count one more window. (A replica whose lease
  expired while it lives on, cut off from the database, gets no new grants either.)

Riding along with the store
---------------------------
A request's own store transactions carry most of the budget's work, so a one-room write costs
the database no transaction of the budget's own (DESIGN §2.10):

* the claim of a request reserves, in the same transaction, the slots its first calls need (up
  to a batch: `prefetch_query`, `accept`); they wait in this replica's stock, and a caller takes
  one from there before asking the desk;
* every store write first writes the call ends that wait (`ends_query`): a call's end rides with
  the request's next write (its begin, its completion). An end nobody carries within
  `END_RIDE_S` is written on its own; at once when callers of this replica wait for a slot (the
  budget is busy, so an unwritten end would hold a slot others need).

Late is safe here as everywhere: a granted slot unused counts until its start grace passes and
is then ended; an end written late makes its slot count longer, never shorter.

Cost: one round trip per grant (a locked row, a few index operations in one function call),
batched when several callers of one replica wait at once, and none for the slots a request's
claim reserved; the `ended_at` writes ride along or are batched in the background, and never
delay a caller. Measured on a local PostgreSQL 15 with its durable
defaults (a shared 2-core machine): median 1.2-1.7 ms, p99 3.4 ms for one grant; 2.4 ms for a
batch of ten; median 2-3 ms, p99 7-8 ms with four replicas asking at once. A Room Engine call
takes about a hundred times that, and acks never wait on the budget.

Replicas configured with different `ROOMBOT_RATE_LIMIT`s share the slots: each grants only while
fewer than its own N are counted, so the total stays within the largest of them.

Halving (`Alert.RequestOverLimit`)
----------------------------------
`halve(api)` writes `halved_until` (the database's clock, 60 s on) on the API's row (a column of
its own migration). The reservation function reads it under the row's lock, so from the next grant
on, on every replica, that API gets half its slots (`N // 2`, at least 1) at half its pace, until
then. Slots granted before still count, so the halved window fills only as they drain. Each grant
says until when the halving lasts, which is how a replica that did not receive the warning knows
its limit (`limit(api)`, the metrics' gauge). A warning while halved extends the halving and says
so (`Halving.started` False), so only the first warning is alerted, whichever replica gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from bot import metrics
from bot.audit.pg_errors import describe_error
from bot.audit.sql import Query
from bot.budget import HALVE_S, Halving, RateBudgetUnavailable, check_rate, halved
from bot.dsn import DatabaseUrl

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_NAME", "RateBudgetUnavailable", "SharedRateBudget"]

#: A second plus 20 ms of slack, as in `RateBudget`: our clocks and Tencent's differ a little.
WINDOW_S: Final = 1.02
#: The longest a slot counts without an `ended_at` (the call ended or its replica died).
HOLD_S: Final = 60.0
#: A call not started within this long after its booked start is not made (a fresh slot is asked).
START_GRACE_S: Final = 2.0
#: A grant that took longer than this to arrive is handed back unused.
MAX_ROUND_TRIP_S: Final = 5.0
#: How long a caller waits for an unreachable database before `RateBudgetUnavailable`.
WAIT_S: Final = 10.0
#: The budgets' names' prefix in the database when no app is named (`<prefix>:<command>`).
DEFAULT_NAME: Final = "room_engine"
#: How long a call's end waits to ride along with the store's next write (see the docstring).
END_RIDE_S: Final = 0.2

_Connection = psycopg.AsyncConnection[TupleRow]
_RESERVE: Final = (
    "SELECT o_slot_id, o_start_at, o_db_now, o_retry_at, o_halved_until "
    "FROM roombot_rate_reserve(%s::TEXT, %s::TEXT, %s, %s, %s, %s, %s, %s)"
)
_END: Final = (
    "UPDATE rate_slots AS s SET ended_at = v.ended "
    "FROM unnest(%s::BIGINT[], %s::DOUBLE PRECISION[]) AS v(id, ended) "
    "WHERE s.id = v.id AND s.ended_at IS NULL"
)
# The same two statements with named parameters, for the store's own transactions.
_RESERVE_IN_STORE: Final = (
    "SELECT o_slot_id, o_start_at, o_db_now, o_retry_at, o_halved_until FROM roombot_rate_reserve("
    "%(budget)s::TEXT, %(owner)s::TEXT, %(wanted)s, %(limit)s, %(interval)s, %(tolerance)s, "
    "%(window)s, %(hold)s)"
)
_END_IN_STORE: Final = (
    "UPDATE rate_slots AS s SET ended_at = v.ended "
    "FROM unnest(%(ids)s::BIGINT[], %(ends)s::DOUBLE PRECISION[]) AS v(id, ended) "
    "WHERE s.id = v.id AND s.ended_at IS NULL"
)
# Halving one API's budget (one transaction, on the database's clock): the row, then its
# halving as it was (under the row's lock), then the new end.
_ENSURE_ROW: Final = (
    "INSERT INTO rate_budgets (name, tat) VALUES (%s, 0) ON CONFLICT (name) DO NOTHING"
)
_HALVED_NOW: Final = (
    "SELECT b.halved_until, extract(epoch FROM clock_timestamp())::DOUBLE PRECISION "
    "FROM rate_budgets b WHERE b.name = %s FOR UPDATE"
)
_HALVE: Final = (
    "UPDATE rate_budgets SET halved_until = greatest(coalesce(halved_until, 0), %s) "
    "WHERE name = %s RETURNING halved_until"
)
_MIN_POLL_S: Final = 0.001
_STATEMENT_TIMEOUT_MS: Final = 5_000


@dataclass(frozen=True)
class _Grant:
    slot_id: int
    start: float  # when it may start, on this process's monotonic clock
    # Add to this process's monotonic clock to get the database's clock, erring late: the
    # database read its clock after we sent the request, so `db_now - sent` is never too small.
    db_offset: float


@dataclass(frozen=True)
class _Reply:
    grants: list[_Grant]
    retry_in: float | None  # seconds until a slot may be free, when fewer were granted


class _Lane:
    """One API's budget in this replica: who waits for a slot, the desk that asks the database
    for them, the slots a claim reserved, and until when (monotonic) the API is halved."""

    def __init__(self, api: str, name: str) -> None:
        self.api = api
        self.name = name
        self.waiters: deque[asyncio.Future[_Grant]] = deque()
        self.desk: asyncio.Task[None] | None = None
        #: Slots a request's claim reserved in the store's transaction, for the next callers.
        self.stock: deque[_Grant] = deque()
        self.halved_until = -math.inf

    def prune(self) -> bool:
        """Drop callers that stopped waiting from the head; True if anyone still waits."""
        while self.waiters and self.waiters[0].done():
            self.waiters.popleft()
        return bool(self.waiters)

    def fail(self, error: RateBudgetUnavailable) -> None:
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(error)


class SharedRateBudget:
    """Paces every replica on one PostgreSQL database to at most `floor(rate_per_second)` Room
    Engine call starts of each API in any one-second window, all together (see the module
    docstring).

    Get one from `PostgresAuditStore.rate_budget()`, which closes it with the store and names
    the store's `owner` in each slot it is granted, or build it with the database URL;
    `aclose()` when done. `name` prefixes each API's row (`<name>:<api>`): the app's SDKAppID
    where it is known. Bound to the event loop that first uses it.
    """

    def __init__(
        self,
        url: DatabaseUrl,
        *,
        rate_per_second: float,
        burst: int | None = None,
        name: str = DEFAULT_NAME,
        owner: str | None = None,
        pool_size: int = 3,
        wait_s: float = WAIT_S,
        connect_timeout_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate, self.limit_per_window, self.burst = check_rate(rate_per_second, burst)
        self.name = name
        self.owner = owner
        self._url = url
        self._interval = 1.0 / self.rate
        self._tolerance = (self.burst - 1) * self._interval
        self._max_batch = max(1, self.limit_per_window // 10)
        self._wait_s = wait_s
        self._connect_timeout_s = connect_timeout_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[_Connection] | None = None
        self._pool_lock: asyncio.Lock | None = None
        # One per API the bot calls: a closed set of names from the code, never from input.
        self._lanes: dict[str, _Lane] = {}
        self._ended: list[tuple[int, float]] = []
        self._releaser: asyncio.Task[None] | None = None
        self._ride: asyncio.TimerHandle | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"SharedRateBudget(rate_per_second={self.rate:g}, burst={self.burst}, "
            f"name={self.name!r}, url={self._url.redacted!r})"
        )

    def budget_name(self, api: str) -> str:
        """The database row of `api`'s budget."""
        return f"{self.name}:{api}"

    def _lane(self, api: str) -> _Lane:
        lane = self._lanes.get(api)
        if lane is None:
            lane = self._lanes[api] = _Lane(api, self.budget_name(api))
        return lane

    # -- what callers use -----------------------------------------------------------------------

    async def acquire(self, api: str) -> None:
        """Wait until this caller may start one call of `api` (counted until a window after
        now). Raises `RateBudgetUnavailable` when the database cannot grant a slot within
        `wait_s`."""
        grant = await self._take(self._lane(api))
        self._end(grant)

    @contextlib.asynccontextmanager
    async def slot(self, api: str) -> AsyncIterator[None]:
        """Wait until one call of `api` may start; the block is the call, counted until a
        window after it ends. Raises `RateBudgetUnavailable` (before the block) as `acquire`
        does."""
        grant = await self._take(self._lane(api))
        try:
            yield
        finally:
            self._end(grant)

    async def halve(self, api: str, seconds: float = HALVE_S) -> Halving:
        """Halve `api`'s budget for every replica for `seconds` from now (the database's now),
        extending a halving under way. Raises `RateBudgetUnavailable` when the database cannot
        be reached."""
        lane = self._lane(api)
        pool = await self._open_pool_or_fail()
        try:
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(_ENSURE_ROW, (lane.name,))
                cur = await conn.execute(_HALVED_NOW, (lane.name,))
                row = await cur.fetchone()
                assert row is not None  # the row was just ensured
                before, db_now = row[0], float(row[1])
                cur = await conn.execute(_HALVE, (db_now + seconds, lane.name))
                after = await cur.fetchone()
                assert after is not None
        except (psycopg.Error, OSError) as exc:
            raise RateBudgetUnavailable(
                f"could not halve the shared rate budget: {describe_error(exc, self._url)}"
            ) from None
        metrics.count_store_transaction("rate_halve")
        until = float(after[0])
        lane.halved_until = max(lane.halved_until, self._monotonic() + (until - db_now))
        return Halving(
            api=api,
            started=before is None or float(before) <= db_now,
            until_s=until - db_now,
            limit=self.limit(api),
        )

    def limit(self, api: str) -> float:
        """The calls per second `api` may use now, as far as this replica knows (every grant
        tells it whether the API is halved)."""
        lane = self._lanes.get(api)
        if lane is not None and self._monotonic() < lane.halved_until:
            return halved(self.rate)
        return self.rate

    async def warm(self) -> None:
        """Open the connections now, at start, rather than at the first grant or call end that
        needs a transaction of its own: that one then waits for no login, and the database sees
        the session start now, not among the writes of that moment. A failure is left for that
        first use to meet (and report)."""
        with contextlib.suppress(RateBudgetUnavailable):
            await self._open_pool_or_fail()

    async def aclose(self) -> None:
        """Fail whoever still waits, write the pending ends (briefly), close the connections."""
        if self._closed:
            return
        for lane in self._lanes.values():
            while lane.stock:  # reserved but never used: over
                self._end(lane.stock.popleft())
        self._start_writer()  # what waited to ride along goes now
        self._closed = True
        for lane in self._lanes.values():
            if lane.desk is not None:
                lane.desk.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.desk
            lane.fail(RateBudgetUnavailable("the rate budget was closed"))
        if self._releaser is not None:
            # Unwritten ends only make slots count longer; do not hold up a shutdown for them.
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._releaser), timeout=2.0)
            self._releaser.cancel()
        if self._pool is not None:
            await self._pool.close()

    # -- riding along with the store's transactions (`bot.audit.store`) -------------------------

    def prefetch_queries(self, wanted: Mapping[str, int]) -> list[tuple[str, Query]]:
        """The statements that reserve, inside the store's own transaction, the slots a
        request's first calls need: for each API in `wanted` (calls by Room Engine command), up
        to a batch. In the order of the budgets' rows, so two claims never lock two rows in
        opposite orders. Hand each one's rows to `accept` with its API."""
        if self._closed:
            return []
        queries = []
        for api in sorted(wanted, key=self.budget_name):
            count = min(wanted[api], self._max_batch)
            if count <= 0:
                continue
            query = Query(
                _RESERVE_IN_STORE,
                {
                    "budget": self.budget_name(api),
                    "owner": self.owner,
                    "wanted": count,
                    "limit": self.limit_per_window,
                    "interval": self._interval,
                    "tolerance": self._tolerance,
                    "window": WINDOW_S,
                    "hold": HOLD_S,
                },
            )
            queries.append((api, query))
        return queries

    def accept(self, api: str, rows: Sequence[tuple[Any, ...]], sent: float) -> None:
        """The slots a `prefetch_queries` statement reserved for `api` (its rows; `sent`: this
        process's monotonic time before the transaction was sent) join the stock the next
        callers of `api` take from. A slot not taken within its start grace is ended."""
        lane = self._lane(api)
        received = self._monotonic()
        latest = received
        for slot_id, start_at, db_now, _retry_at, halved_until in rows:
            self._note_halving(lane, halved_until, db_now, received)
            if slot_id is None:
                continue
            start = received + max(0.0, float(start_at) - float(db_now))
            lane.stock.append(_Grant(int(slot_id), start, float(db_now) - sent))
            latest = max(latest, start)
        if lane.stock:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to prune later
                asyncio.get_running_loop().call_later(
                    latest + START_GRACE_S - received + 0.05, self._prune_stock, lane
                )

    def ends_query(self) -> tuple[Query, list[tuple[int, float]]] | None:
        """The statement writing the call ends that wait, for the store's next transaction, and
        the ends it takes (give them back with `restore_ends` if that transaction fails); None
        when none wait."""
        if not self._ended or self._closed:
            return None
        batch, self._ended = self._ended, []
        if self._ride is not None:
            # The ends it waited for ride along: the next end waits its own END_RIDE_S (left
            # running, it fired in the moment between some later call's end and the write that
            # was about to carry it: a transaction of its own in about 1 write in 100).
            self._ride.cancel()
            self._ride = None
        ids, ends = zip(*batch, strict=True)
        return Query(_END_IN_STORE, {"ids": list(ids), "ends": list(ends)}), batch

    def restore_ends(self, batch: list[tuple[int, float]]) -> None:
        """Ends a failed store transaction did not write: written on their own, at once."""
        self._ended = batch + self._ended
        self._start_writer()

    def _note_halving(self, lane: _Lane, until: Any, db_now: Any, received: float) -> None:
        """What a grant said of the API's halving (None: not halved), on our clock."""
        if until is None:
            lane.halved_until = min(lane.halved_until, received)
        else:
            lane.halved_until = received + (float(until) - float(db_now))

    def _from_stock(self, lane: _Lane) -> _Grant | None:
        """A slot from the stock that may still start (stale ones are ended on the way)."""
        while lane.stock:
            grant = lane.stock.popleft()
            if self._monotonic() <= grant.start + START_GRACE_S:
                return grant
            self._end(grant)
        return None

    def _prune_stock(self, lane: _Lane) -> None:
        now = self._monotonic()
        for grant in [g for g in lane.stock if now > g.start + START_GRACE_S]:
            lane.stock.remove(grant)
            self._end(grant)

    # -- taking a slot --------------------------------------------------------------------------

    async def _take(self, lane: _Lane) -> _Grant:
        while True:
            grant = self._from_stock(lane) or await self._queue(lane)
            try:
                delay = grant.start - self._monotonic()
                if delay > 0:
                    await self._sleep(delay)
            except BaseException:
                self._end(grant)
                raise
            if self._monotonic() <= grant.start + START_GRACE_S:
                return grant
            # Woken too late (a stalled loop): this slot's hold no longer covers the call.
            self._end(grant)

    async def _queue(self, lane: _Lane) -> _Grant:
        if self._closed:
            raise RateBudgetUnavailable("the rate budget was closed")
        future: asyncio.Future[_Grant] = asyncio.get_running_loop().create_future()
        lane.waiters.append(future)
        if lane.desk is None or lane.desk.done():
            lane.desk = asyncio.create_task(self._serve(lane), name="roombot-rate-budget")
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._end(future.result())  # granted as we were cancelled: give it back
            raise

    async def _serve(self, lane: _Lane) -> None:
        """The desk of one API: while anyone waits, ask the database for as many slots as are
        waited for (up to a batch), hand them out in arrival order, and sleep when none is
        free."""
        failing_since: float | None = None
        failures = 0
        try:
            while lane.prune():
                waiting = sum(1 for future in lane.waiters if not future.done())
                wanted = min(waiting, self._max_batch)
                try:
                    reply = await self._reserve(lane, wanted)
                except (psycopg.Error, OSError) as exc:
                    now = self._monotonic()
                    failing_since = now if failing_since is None else failing_since
                    failures += 1
                    if failures == 1:
                        logger.warning(
                            "rate budget: cannot reach the database, calls wait: %s",
                            describe_error(exc, self._url),
                        )
                    if now - failing_since >= self._wait_s:
                        lane.fail(
                            RateBudgetUnavailable(
                                "the shared rate budget's database did not answer for "
                                f"{self._wait_s:g} s; the call was not made"
                            )
                        )
                        failing_since, failures = None, 0
                        continue
                    await self._sleep(min(0.05 * 2**failures, 1.0))
                    continue
                failing_since, failures = None, 0
                for grant in reply.grants:
                    if lane.prune():
                        lane.waiters.popleft().set_result(grant)
                    else:
                        self._end(grant)  # everyone who asked has gone
                if reply.retry_in is not None and lane.prune():
                    await self._sleep(min(max(reply.retry_in, _MIN_POLL_S), WINDOW_S))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug must not leave callers waiting forever, nor let them through unpaced.
            logger.exception("rate budget: the desk stopped")
            lane.fail(RateBudgetUnavailable(f"the rate budget failed: {exc}"))

    def _waiting(self) -> bool:
        """True when a caller of any API waits for a slot."""
        return any(lane.prune() for lane in self._lanes.values())

    async def _reserve(self, lane: _Lane, wanted: int) -> _Reply:
        pool = await self._open_pool()
        asked = self._monotonic()
        async with pool.connection() as conn:
            sent = self._monotonic()
            cur = await conn.execute(
                _RESERVE,
                (
                    lane.name,
                    self.owner,
                    wanted,
                    self.limit_per_window,
                    self._interval,
                    self._tolerance,
                    WINDOW_S,
                    HOLD_S,
                ),
            )
            rows = await cur.fetchall()
        received = self._monotonic()
        metrics.count_store_transaction("rate_reserve")
        grants: list[_Grant] = []
        retry_in: float | None = None
        for slot_id, start_at, db_now, retry_at, halved_until in rows:
            self._note_halving(lane, halved_until, db_now, received)
            if slot_id is None:
                retry_in = max(0.0, float(retry_at) - float(db_now))
            else:
                # Counting from our receipt overestimates the wait: never early, maybe late.
                start = received + max(0.0, float(start_at) - float(db_now))
                grants.append(_Grant(int(slot_id), start, float(db_now) - sent))
        if received - asked > MAX_ROUND_TRIP_S:
            for grant in grants:
                self._end(grant)
            logger.warning(
                "rate budget: the database took %.1f s to grant; slots handed back",
                received - asked,
            )
            return _Reply([], retry_in if retry_in is not None else 0.0)
        return _Reply(grants, retry_in)

    async def _open_pool_or_fail(self) -> AsyncConnectionPool[_Connection]:
        if self._closed:
            raise RateBudgetUnavailable("the rate budget was closed")
        try:
            return await self._open_pool()
        except (psycopg.Error, OSError) as exc:
            raise RateBudgetUnavailable(
                f"the shared rate budget's database: {describe_error(exc, self._url)}"
            ) from None

    async def _open_pool(self) -> AsyncConnectionPool[_Connection]:
        if self._pool_lock is None:
            self._pool_lock = asyncio.Lock()
        async with self._pool_lock:
            if self._pool is None:
                pool: AsyncConnectionPool[_Connection] = AsyncConnectionPool(
                    self._url.secret(),
                    min_size=1,
                    max_size=self._pool_size,
                    open=False,
                    kwargs={
                        "autocommit": True,
                        "connect_timeout": max(2, round(self._connect_timeout_s)),
                        # Set at connection start (a SET would be a transaction of its own).
                        # Slots live for a second or so: a grant need not wait for the disk.
                        # A database crash could lose the last few grants; the calls they
                        # paced are long over by the time it is back.
                        "options": self._url.session_options(
                            {
                                "statement_timeout": _STATEMENT_TIMEOUT_MS,
                                "synchronous_commit": "off",
                            }
                        ),
                    },
                    timeout=self._connect_timeout_s,
                    name="roombot-rate-budget",
                )
                try:
                    await pool.open(wait=True, timeout=self._connect_timeout_s)
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
            return self._pool

    # -- ending slots ---------------------------------------------------------------------------

    def _end(self, grant: _Grant) -> None:
        """Record (in the background) that a slot's call has ended now; until that is written,
        the slot keeps counting. The end is written as the database's time of this moment, not
        of the write (a write delayed under load would hold the slot needlessly long)."""
        if self._closed:
            return  # the connections are gone: the slot counts until its hold runs out
        self._ended.append((grant.slot_id, self._monotonic() + grant.db_offset))
        if self._waiting():
            self._start_writer()  # busy: the slot is needed now
        elif self._ride is None:
            # Quiet: the end rides with the store's next write, or is written after a while.
            with contextlib.suppress(RuntimeError):  # no running loop: the hold frees it
                loop = asyncio.get_running_loop()
                self._ride = loop.call_later(END_RIDE_S, self._start_writer)

    def _start_writer(self) -> None:
        if self._ride is not None:
            self._ride.cancel()
            self._ride = None
        if not self._ended or self._closed:
            return
        if self._releaser is None or self._releaser.done():
            with contextlib.suppress(RuntimeError):  # no running loop: the hold frees it
                self._releaser = asyncio.get_running_loop().create_task(
                    self._write_ends(), name="roombot-rate-budget-ends"
                )

    async def _write_ends(self) -> None:
        give_up_at = self._monotonic() + HOLD_S
        failures = 0
        while self._ended:
            batch, self._ended = self._ended, []
            try:
                pool = await self._open_pool()
                async with pool.connection() as conn:
                    ids, ends = zip(*batch, strict=True)
                    await conn.execute(_END, (list(ids), list(ends)))
                metrics.count_store_transaction("rate_end")
                failures = 0
            except (psycopg.Error, OSError) as exc:
                failures += 1
                if self._monotonic() >= give_up_at or self._closed:
                    logger.warning(
                        "rate budget: could not record %d call end(s); those slots count until "
                        "they expire: %s",
                        len(batch),
                        describe_error(exc, self._url),
                    )
                    return
                self._ended = batch + self._ended
                await self._sleep(min(0.05 * 2**failures, 1.0))
