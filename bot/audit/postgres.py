"""The PostgreSQL audit store: one database shared by any number of replicas, through psycopg 3's
async connection pool.

Everything a later request needs is in the database, and every check-then-act is one atomic
step there, whichever replica asks:

* claims: `INSERT ... ON CONFLICT` (a key older than the retention is re-claimed in the same
  statement), so of two replicas claiming one key exactly one gets True;
* confirmations: the prompt's row is read `FOR UPDATE`, decided and updated in one transaction;
* leases: taken and renewed with the database's clock (the one clock all replicas share);
  expired ones are claimed with `SELECT ... FOR UPDATE SKIP LOCKED`, so two survivors never get
  the same one, and a replica starting up never touches a lease that is still alive. Nothing is
  "recovered" at start-up: rows of a stopped replica wait for its lease to expire.

psycopg's errors become `AuditError` with the first line of the server's message (its DETAIL
lines can quote stored values) and the URL's password masked; the URL is shown only redacted.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from bot.audit.pg_schema import SCHEMA_VERSION, migrate, schema_version
from bot.audit.records import (
    AuditEntry,
    AuditError,
    Confirmation,
    ConfirmationState,
    ConfirmationStatus,
    Lease,
    NewEntry,
    StrandedRequest,
)
from bot.audit.rows import (
    CLAIM_RETENTION_S,
    CONFIRMATION_COLUMNS,
    CONFIRMATION_RETENTION_S,
    INSERT_COLUMNS,
    LEASE_COLUMNS,
    PROVISIONAL_SQL,
    REFUSED_SQL,
    SELECT_ENTRIES,
    Completion,
    confirmation_from_row,
    context_json,
    entries_query,
    entry_from_row,
    insert_params,
    lease_from_row,
    settle,
)
from bot.audit.store import (
    DEFAULT_LEASE_S,
    UNLEASED_GRACE_S,
    AuditStore,
)
from bot.dsn import DatabaseUrl, redact, scrub_logs_of

if TYPE_CHECKING:
    from bot.audit.budget import SharedRateBudget

_T = TypeVar("_T")
Connection = psycopg.AsyncConnection[TupleRow]

#: Connections the store's pool may open (the rate budget has its own, smaller pool).
POOL_SIZE: Final = 10
#: How long the first connection (at start, `roombot check`) may take before `AuditError`.
CONNECT_TIMEOUT_S: Final = 10.0
#: How long a request waits for a pooled connection (or a reconnection) before `AuditError`.
#: Short, because a person is waiting: with the database gone, a change is refused after about
#: this long instead of after the start-up allowance (connections are held for milliseconds,
#: so a healthy pool never makes a request wait anywhere near it).
POOL_WAIT_S: Final = 3.0
#: No statement runs longer than this (a stuck lock becomes an error, not a hung request).
STATEMENT_TIMEOUT_MS: Final = 15_000
_DRIVER_LOGGERS: Final = ("psycopg", "psycopg.pool")

# The database's clock, in Unix seconds: leases compare against it on every replica.
_DB_NOW: Final = "extract(epoch FROM clock_timestamp())::DOUBLE PRECISION"
_INSERT_ENTRY: Final = (
    f"INSERT INTO audit_entries ({', '.join(INSERT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('%s' for _ in INSERT_COLUMNS)}) RETURNING id"
)
# SET expressions read the row's old values, as in SQLite: see `bot.audit.sqlite`.
_COMPLETE_ENTRY: Final = f"""
    UPDATE audit_entries
       SET outcome = %s, finished_at = %s, tencent_request_id = %s, error_code = %s,
           error_info = %s, latency_ms = %s, previous = COALESCE(%s, previous),
           detail = COALESCE(%s, CASE WHEN outcome = 'pending' THEN detail ELSE NULL END)
     WHERE id = %s AND outcome IN ({PROVISIONAL_SQL})
 RETURNING id
"""  # noqa: S608
# Pruning never waits: rows another replica is already deleting are skipped.
_PRUNE_CLAIMS: Final = """
    DELETE FROM claims WHERE key IN (
        SELECT key FROM claims WHERE claimed_at < %s LIMIT 1000 FOR UPDATE SKIP LOCKED)
"""
# Pending rows without any lease get an expired one (owner ''), in key order so two survivors
# doing this at once cannot deadlock on each other's new keys.
_ADOPT_UNLEASED: Final = f"""
    INSERT INTO leases ({LEASE_COLUMNS})
    SELECT DISTINCT e.request_key, '', '{{}}', {_DB_NOW}, 0, 0
      FROM audit_entries e
     WHERE e.outcome = 'pending' AND e.created_at < %s
       AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.request_key = e.request_key)
     ORDER BY e.request_key
    ON CONFLICT (request_key) DO NOTHING
"""  # noqa: S608
_PRUNE_CONFIRMATIONS: Final = """
    DELETE FROM confirmations WHERE key IN (
        SELECT key FROM confirmations WHERE created_at < %s LIMIT 1000 FOR UPDATE SKIP LOCKED)
"""


class PostgresAuditStore(AuditStore):
    """The audit trail, claims, confirmation prompts, leases and the rate budget in one
    PostgreSQL database that every replica shares.

    Create with `await PostgresAuditStore.connect(url, owner=...)` (or `AuditStore.open`).
    """

    def __init__(
        self,
        *,
        url: DatabaseUrl,
        pool: AsyncConnectionPool[Connection],
        clock: Callable[[], float],
        owner: str,
        lease_s: float,
        read_only: bool,
    ) -> None:
        """Internal: use `connect`, which migrates and opens the pool."""
        self._url = url
        self._pool = pool
        self._clock = clock
        self._owner = owner
        self._lease_s = lease_s
        self._read_only = read_only
        self._closed = False
        self._budgets: list[SharedRateBudget] = []

    @classmethod
    async def connect(
        cls,
        url: DatabaseUrl,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
        owner: str,
        lease_s: float = DEFAULT_LEASE_S,
        pool_size: int = POOL_SIZE,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        pool_wait_s: float = POOL_WAIT_S,
    ) -> PostgresAuditStore:
        """Connect, migrate (under the migration lock) unless `read_only`, and open the pool.

        With `read_only` the schema must already be current and every connection refuses
        writes. Raises `AuditError` (with the URL redacted) when the database cannot be reached,
        refuses the login, or holds a schema this code cannot use.
        """
        scrub_logs_of(url, *_DRIVER_LOGGERS)
        where = f"cannot open the audit database {url.redacted}"
        try:
            conn = await psycopg.AsyncConnection.connect(
                url.secret(), autocommit=True, connect_timeout=_libpq_timeout(connect_timeout_s)
            )
        except psycopg.Error as exc:
            raise AuditError(f"{where}: {describe_error(exc, url)}") from None
        try:
            if read_only:
                require_current(await schema_version(conn), url)
            else:
                await migrate(conn)
        except psycopg.Error as exc:
            raise AuditError(f"{where}: {describe_error(exc, url)}") from None
        finally:
            await conn.close()

        async def configure(new: Connection) -> None:
            await new.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS:d}")
            if read_only:
                await new.execute("SET default_transaction_read_only = on")

        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url.secret(),
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs={"autocommit": True, "connect_timeout": _libpq_timeout(pool_wait_s)},
            configure=configure,
            timeout=pool_wait_s,
            name="roombot-audit",
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout_s)
        except psycopg.Error as exc:
            await pool.close()
            raise AuditError(f"{where}: {describe_error(exc, url)}") from None
        return cls(
            url=url,
            pool=pool,
            clock=clock,
            owner=owner,
            lease_s=lease_s,
            read_only=read_only,
        )

    @property
    def backend(self) -> str:
        return "postgresql"

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def lease_s(self) -> float:
        return self._lease_s

    def describe(self) -> str:
        return f"PostgreSQL {self._url.redacted}"

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for budget in self._budgets:
            await budget.aclose()
        await self._pool.close()

    # -- the audit trail ------------------------------------------------------------------------

    async def get(self, row_id: int) -> AuditEntry | None:
        async def read(conn: Connection) -> AuditEntry | None:
            cur = await conn.execute(f"{SELECT_ENTRIES} WHERE id = %s", (row_id,))
            row = await cur.fetchone()
            return None if row is None else entry_from_row(row)

        return await self._run("read an entry", read)

    async def rows_for_request(self, request_key: str) -> list[AuditEntry]:
        async def read(conn: Connection) -> list[AuditEntry]:
            return await _rows_for_requests(conn, [request_key])

        return await self._run("read a request's entries", read)

    async def query(
        self,
        *,
        room: str | None = None,
        user: str | None = None,
        since: float | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        sql, params = entries_query(
            room=room, user=user, since=since, limit=limit, placeholder="%s"
        )

        async def read(conn: Connection) -> list[AuditEntry]:
            cur = await conn.execute(sql, params)
            return [entry_from_row(row) for row in await cur.fetchall()]

        return await self._run("query entries", read)

    async def room_trail(self, room_id: str, *, limit: int = 100) -> list[AuditEntry]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        sql = (
            f"{SELECT_ENTRIES} WHERE room_id = %s "
            "AND (patch IS NOT NULL OR previous IS NOT NULL) "
            f"AND outcome NOT IN ({REFUSED_SQL}) ORDER BY id DESC LIMIT %s"
        )

        async def read(conn: Connection) -> list[AuditEntry]:
            cur = await conn.execute(sql, (room_id, limit))
            return [entry_from_row(row) for row in await cur.fetchall()]

        return await self._run("read a room's trail", read)

    # -- claims ---------------------------------------------------------------------------------

    async def claimed(self, keys: Sequence[str]) -> frozenset[str]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return frozenset()
        cutoff = self._clock() - CLAIM_RETENTION_S

        async def read(conn: Connection) -> frozenset[str]:
            cur = await conn.execute(
                "SELECT key FROM claims WHERE key = ANY(%s) AND claimed_at >= %s",
                (wanted, cutoff),
            )
            return frozenset(str(key) for (key,) in await cur.fetchall())

        return await self._run("read claims", read)

    async def claim(self, key: str) -> bool:
        if not key:
            raise ValueError("a claim key cannot be empty")
        now = self._clock()
        cutoff = now - CLAIM_RETENTION_S

        async def write(conn: Connection) -> bool:
            async with conn.transaction():
                await conn.execute(_PRUNE_CLAIMS, (cutoff,))
                # A concurrent claim of the same key waits for this one and then finds it: of
                # any number of replicas exactly one inserts (or revives a forgotten claim).
                cur = await conn.execute(
                    "INSERT INTO claims (key, claimed_at) VALUES (%s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET claimed_at = excluded.claimed_at "
                    "WHERE claims.claimed_at < %s",
                    (key, now, cutoff),
                )
                return cur.rowcount == 1

        return await self._run("claim a key", write)

    # -- confirmation prompts -------------------------------------------------------------------

    async def create_confirmation(
        self, *, user_id: str, team_id: str | None, channel_id: str | None, text: str
    ) -> str:
        key = secrets.token_urlsafe(24)
        now = self._clock()

        async def write(conn: Connection) -> str:
            async with conn.transaction():
                await conn.execute(_PRUNE_CONFIRMATIONS, (now - CONFIRMATION_RETENTION_S,))
                await conn.execute(
                    f"INSERT INTO confirmations ({CONFIRMATION_COLUMNS}) "  # noqa: S608
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (key, user_id, team_id, channel_id, text, now, ConfirmationState.PENDING),
                )
            return key

        return await self._run("create a confirmation", write)

    # -- leases ---------------------------------------------------------------------------------

    async def take_lease(self, request_key: str, context: Mapping[str, Any]) -> Lease:
        if not request_key:
            raise ValueError("a lease needs a request key")
        text = context_json(dict(context))

        async def write(conn: Connection) -> Lease | None:
            cur = await conn.execute(
                f"INSERT INTO leases ({LEASE_COLUMNS}) "  # noqa: S608
                f"VALUES (%s, %s, %s, {_DB_NOW}, {_DB_NOW} + %s, 0) "
                "ON CONFLICT (request_key) DO UPDATE "
                "SET context = excluded.context, expires_at = excluded.expires_at "
                f"WHERE leases.owner = excluded.owner RETURNING {LEASE_COLUMNS}",
                (request_key, self._owner, text, self._lease_s),
            )
            row = await cur.fetchone()
            return None if row is None else lease_from_row(row)

        lease = await self._run("take a lease", write)
        if lease is None:
            raise AuditError(f"request {request_key} is leased by another replica")
        return lease

    async def renew_leases(self) -> frozenset[str]:
        async def write(conn: Connection) -> frozenset[str]:
            cur = await conn.execute(
                f"UPDATE leases SET expires_at = {_DB_NOW} + %s "  # noqa: S608
                "WHERE owner = %s RETURNING request_key",
                (self._lease_s, self._owner),
            )
            return frozenset(str(key) for (key,) in await cur.fetchall())

        return await self._run("renew leases", write)

    async def release_lease(self, request_key: str) -> bool:
        async def write(conn: Connection) -> bool:
            cur = await conn.execute(
                "DELETE FROM leases WHERE request_key = %s AND owner = %s",
                (request_key, self._owner),
            )
            return cur.rowcount == 1

        return await self._run("release a lease", write)

    async def get_lease(self, request_key: str) -> Lease | None:
        async def read(conn: Connection) -> Lease | None:
            cur = await conn.execute(
                f"SELECT {LEASE_COLUMNS} FROM leases WHERE request_key = %s",  # noqa: S608
                (request_key,),
            )
            row = await cur.fetchone()
            return None if row is None else lease_from_row(row)

        return await self._run("read a lease", read)

    async def claim_expired_leases(self, *, limit: int = 10) -> list[StrandedRequest]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")

        unleased_before = self._clock() - UNLEASED_GRACE_S

        async def write(conn: Connection) -> list[StrandedRequest]:
            async with conn.transaction():
                await conn.execute(_ADOPT_UNLEASED, (unleased_before,))
                # SKIP LOCKED: a lease another survivor is claiming right now is not waited for,
                # and once that claim commits the lease is alive again and no longer matches.
                cur = await conn.execute(
                    f"SELECT {LEASE_COLUMNS} FROM leases "  # noqa: S608
                    f"WHERE expires_at < {_DB_NOW} "
                    "ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED",
                    (limit,),
                )
                expired = [lease_from_row(row) for row in await cur.fetchall()]
                if not expired:
                    return []
                keys = [lease.request_key for lease in expired]
                await conn.execute(
                    f"UPDATE leases SET owner = %s, expires_at = {_DB_NOW} + %s, "  # noqa: S608
                    "takeovers = takeovers + 1 WHERE request_key = ANY(%s)",
                    (self._owner, self._lease_s, keys),
                )
                rows = await _rows_for_requests(conn, keys)
            by_key: dict[str, list[AuditEntry]] = {key: [] for key in keys}
            for row in rows:
                by_key[row.request_key].append(row)
            return [
                StrandedRequest(
                    request_key=lease.request_key,
                    previous_owner=lease.owner or None,
                    context=lease.context,
                    rows=tuple(by_key[lease.request_key]),
                    takeovers=lease.takeovers + 1,
                )
                for lease in expired
            ]

        return await self._run("claim expired leases", write)

    # -- the shared rate budget -----------------------------------------------------------------

    async def end_rate_slots_of(self, owner: str) -> int:
        if not owner:
            raise ValueError("an owner is needed")

        async def write(conn: Connection) -> int:
            cur = await conn.execute(
                f"UPDATE rate_slots SET ended_at = {_DB_NOW} "  # noqa: S608
                "WHERE owner = %s AND ended_at IS NULL",
                (owner,),
            )
            return cur.rowcount

        return await self._run("end a stopped replica's rate slots", write)

    def rate_budget(self, rate_per_second: float, *, burst: int | None = None) -> SharedRateBudget:
        from bot.audit.budget import SharedRateBudget

        if self._closed:
            raise AuditError("cannot make a rate budget: the audit store is closed")
        budget = SharedRateBudget(
            self._url, rate_per_second=rate_per_second, burst=burst, owner=self._owner
        )
        self._budgets.append(budget)
        return budget

    # -- internals ------------------------------------------------------------------------------

    async def _run(self, action: str, work: Callable[[Connection], Awaitable[_T]]) -> _T:
        """Run `work(connection)` with a pooled connection; psycopg errors become `AuditError`."""
        if self._closed:
            raise AuditError(f"cannot {action}: the audit store is closed")
        try:
            async with self._pool.connection() as conn:
                return await work(conn)
        except psycopg.Error as exc:
            raise AuditError(
                f"the audit store could not {action}: {describe_error(exc, self._url)}"
            ) from None

    async def _insert(self, entries: Sequence[NewEntry], *, final: bool) -> list[int]:
        if not entries:
            return []
        now = self._clock()
        rows = [insert_params(entry, created_at=now, final=final) for entry in entries]

        async def write(conn: Connection) -> list[int]:
            ids: list[int] = []
            async with conn.transaction(), conn.cursor() as cur:
                # Pipelined: one round trip for the batch, ids in order.
                await cur.executemany(_INSERT_ENTRY, rows, returning=True)
                while True:
                    row = await cur.fetchone()
                    if row is None:
                        raise AuditError("PostgreSQL returned no id for a new audit row")
                    ids.append(int(row[0]))
                    if not cur.nextset():
                        break
            return ids

        return await self._run("write entries", write)

    async def _complete(self, completions: Sequence[tuple[int, Completion]]) -> None:
        if not completions:
            return
        now = self._clock()
        rows = [c.params(row_id, now) for row_id, c in completions]

        async def write(conn: Connection) -> list[int]:
            done: set[int] = set()
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(_COMPLETE_ENTRY, rows, returning=True)
                while True:
                    done.update(int(row[0]) for row in await cur.fetchall())
                    if not cur.nextset():
                        break
            return [row_id for row_id, _ in completions if row_id not in done]

        stale = await self._run("complete entries", write)
        if stale:
            ids = ", ".join(str(row_id) for row_id in stale)
            raise AuditError(
                f"audit row(s) {ids} could not be completed: missing or already finished"
            )

    async def _settle(
        self, key: str, user_id: str, to: ConfirmationState, ttl_s: float | None
    ) -> tuple[ConfirmationStatus, Confirmation | None]:
        now = self._clock()

        async def write(conn: Connection) -> tuple[ConfirmationStatus, Confirmation | None]:
            async with conn.transaction():
                # FOR UPDATE: a concurrent click on another replica waits here, then sees the
                # state this transaction wrote.
                cur = await conn.execute(
                    f"SELECT {CONFIRMATION_COLUMNS} FROM confirmations "  # noqa: S608
                    "WHERE key = %s FOR UPDATE",
                    (key,),
                )
                row = await cur.fetchone()
                if row is None:
                    return ConfirmationStatus.NOT_FOUND, None
                prompt = confirmation_from_row(row)
                status, state = settle(prompt, user_id, to, ttl_s, now)
                if state is None:
                    return status, prompt
                await conn.execute(
                    "UPDATE confirmations SET state = %s, resolved_at = %s WHERE key = %s",
                    (state, now, key),
                )
            return status, replace(prompt, state=state.value)

        return await self._run("settle a confirmation", write)


# -- helpers shared with the rate budget and the health check -----------------------------------


def describe_error(exc: BaseException, url: DatabaseUrl) -> str:
    """One line about a driver error: its first line (DETAIL lines may quote stored values),
    the SQLSTATE when there is one, and `url`'s password masked."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        text = f"{text} (SQLSTATE {sqlstate})"
    return redact(text, url)


def require_current(version: int | None, url: DatabaseUrl) -> None:
    """`AuditError` unless a database is at this code's schema version (read-only use)."""
    if version is None or version == 0:
        raise AuditError(f"{url.redacted} is not a roombot audit database (it has no schema)")
    if version != SCHEMA_VERSION:
        raise AuditError(
            f"the audit database {url.redacted} has schema version {version}, this roombot "
            f"reads version {SCHEMA_VERSION}; start the bot once to migrate it"
        )


def _libpq_timeout(seconds: float) -> int:
    # libpq takes whole seconds and treats values below 2 as 2.
    return max(2, round(seconds))


async def _rows_for_requests(conn: Connection, keys: Sequence[str]) -> list[AuditEntry]:
    cur = await conn.execute(
        f"{SELECT_ENTRIES} WHERE request_key = ANY(%s) ORDER BY id",
        (list(keys),),
    )
    return [entry_from_row(row) for row in await cur.fetchall()]
