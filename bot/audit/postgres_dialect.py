"""PostgreSQL for the audit store: one database shared by any number of replicas, through
psycopg 3's async connection pool.

A write body runs in one transaction on a pooled connection; its statements go out as they come
(a `many` statement pipelined in one round trip). The database's clock (`clock_timestamp()`) is
the one clock every replica shares, so leases and the rate budget use it, never a replica's own.
Rows another replica is working on are skipped, not waited for (`$SKIP_LOCKED`).

Migrations run at connection, each step in its own transaction holding a transaction-level
advisory lock and re-reading the version inside it, so replicas starting together apply each
step exactly once, and a failing step leaves nothing behind (PostgreSQL's DDL is transactional).
The one-row table `roombot_schema` holds the version.

psycopg's errors become `AuditError` with the first line of the server's message (its DETAIL
lines can quote stored values) and the URL's password masked; the URL is shown only redacted.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final, Literal, TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from bot.audit.budget import DEFAULT_NAME, SharedRateBudget
from bot.audit.dialect import Dialect, RateBudgets
from bot.audit.pg_errors import describe_error
from bot.audit.records import AuditError
from bot.audit.schema import SCHEMA_VERSION, statements
from bot.audit.sql import Body, BodyFactory, Query, Result, translate
from bot.dsn import DatabaseUrl, scrub_logs_of

_T = TypeVar("_T")
Connection = psycopg.AsyncConnection[TupleRow]

#: Connections the store's pool may open (the rate budget has its own, smaller pool).
POOL_SIZE: Final = 10
#: Connections kept open even when idle: the loop's tick and one request's transaction often
#: overlap, and a connection opened then costs the request a login (SCRAM: ~10 ms) and the
#: database a transaction of its own, counted against the writes of the moment.
MIN_POOL_SIZE: Final = 2
#: How long the first connection (at start, `roombot check`) may take before `AuditError`.
CONNECT_TIMEOUT_S: Final = 10.0
#: How long a request waits for a pooled connection (or a reconnection) before `AuditError`.
#: Short, because a person is waiting: with the database gone, a change is refused after about
#: this long instead of after the start-up allowance (connections are held for milliseconds,
#: so a healthy pool never makes a request wait anywhere near it).
POOL_WAIT_S: Final = 3.0
#: No statement runs longer than this (a stuck lock becomes an error, not a hung request).
STATEMENT_TIMEOUT_MS: Final = 15_000
#: The advisory lock key every migration step takes (a fixed 64-bit number: "roombot").
MIGRATION_LOCK_KEY: Final = 0x726F6F6D626F74
#: The database's clock, in Unix seconds.
DB_NOW: Final = "extract(epoch FROM clock_timestamp())::DOUBLE PRECISION"
_DRIVER_LOGGERS: Final = ("psycopg", "psycopg.pool")
_VERSION_TABLE: Final = """
    CREATE TABLE IF NOT EXISTS roombot_schema (
        singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
        version   INTEGER NOT NULL
    )
"""


@lru_cache(maxsize=256)
def _spell(sql: str) -> str:
    return translate(sql, now=DB_NOW, locking=True, in_list=lambda n: f"= ANY(%({n})s)")


def _params(params: object) -> dict[str, object]:
    # psycopg adapts lists to arrays (tuples would be records).
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dict(params).items()}  # type: ignore[call-overload]


async def _execute(conn: Connection, query: Query) -> Result:
    sql = _spell(query.sql)
    async with conn.cursor() as cur:
        if query.many is None:
            await cur.execute(sql, _params(query.params))
            rows = await cur.fetchall() if cur.description is not None else []
            return Result(rows, cur.rowcount)
        if not query.many:
            return Result([], 0)
        returning = "RETURNING" in sql.upper()
        await cur.executemany(sql, [_params(p) for p in query.many], returning=returning)
        if not returning:
            return Result([], cur.rowcount)
        rows = []
        while True:
            rows += await cur.fetchall()
            if not cur.nextset():
                break
        return Result(rows, len(rows))


async def _drive(body: Body[_T], conn: Connection) -> _T:
    try:
        query = next(body)
        while True:
            query = body.send(await _execute(conn, query))
    except StopIteration as stop:
        value: _T = stop.value
        return value


class PostgresDialect(Dialect):
    """One PostgreSQL database that every replica shares.

    Create with `await PostgresDialect.connect(url)`; it migrates first unless `read_only`.
    """

    name: Literal["postgresql"] = "postgresql"

    def __init__(
        self, *, url: DatabaseUrl, pool: AsyncConnectionPool[Connection], read_only: bool
    ) -> None:
        """Internal: use `connect`, which migrates and opens the pool."""
        self._url = url
        self._pool = pool
        self.read_only = read_only
        self._closed = False
        self._budgets: list[SharedRateBudget] = []

    @property
    def url(self) -> DatabaseUrl:
        """The database's URL (show only `url.redacted`)."""
        return self._url

    @classmethod
    async def connect(
        cls,
        url: DatabaseUrl,
        *,
        read_only: bool = False,
        pool_size: int = POOL_SIZE,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        pool_wait_s: float = POOL_WAIT_S,
    ) -> PostgresDialect:
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

        session: dict[str, str | int] = {"statement_timeout": STATEMENT_TIMEOUT_MS}
        if read_only:
            session["default_transaction_read_only"] = "on"
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url.secret(),
            min_size=min(MIN_POOL_SIZE, pool_size),
            max_size=pool_size,
            open=False,
            kwargs={
                "autocommit": True,
                "connect_timeout": _libpq_timeout(pool_wait_s),
                # At connection start: a SET would be a transaction of its own.
                "options": url.session_options(session),
            },
            timeout=pool_wait_s,
            name="roombot-audit",
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout_s)
        except psycopg.Error as exc:
            await pool.close()
            raise AuditError(f"{where}: {describe_error(exc, url)}") from None
        return cls(url=url, pool=pool, read_only=read_only)

    def describe(self) -> str:
        return f"PostgreSQL {self._url.redacted}"

    def rate_budget(
        self, rate_per_second: float, *, burst: int | None, owner: str, app: str | None
    ) -> RateBudgets:
        if self._closed:
            raise AuditError("cannot make a rate budget: the audit store is closed")
        budget = SharedRateBudget(
            self._url,
            rate_per_second=rate_per_second,
            burst=burst,
            owner=owner,
            name=app or DEFAULT_NAME,
        )
        self._budgets.append(budget)
        return budget

    async def write(self, action: str, body: BodyFactory[_T]) -> _T:
        if self.read_only:
            raise AuditError(f"cannot {action}: the audit store was opened read-only")
        return await self._run(action, body, write=True)

    async def read(self, action: str, body: BodyFactory[_T]) -> _T:
        return await self._run(action, body, write=False)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for budget in self._budgets:
            await budget.aclose()
        await self._pool.close()

    async def _run(self, action: str, factory: BodyFactory[_T], *, write: bool) -> _T:
        if self._closed:
            raise AuditError(f"cannot {action}: the audit store is closed")
        try:
            async with self._pool.connection() as conn:
                if not write:
                    return await _drive(factory(), conn)
                async with conn.transaction():
                    return await _drive(factory(), conn)
        except psycopg.Error as exc:
            raise AuditError(
                f"the audit store could not {action}: {describe_error(exc, self._url)}"
            ) from None


async def schema_version(conn: Connection) -> int | None:
    """The version a database is at: None when it has no roombot schema at all."""
    cur = await conn.execute("SELECT to_regclass('roombot_schema') IS NOT NULL")
    exists = await cur.fetchone()
    if not exists or not exists[0]:
        return None
    cur = await conn.execute("SELECT version FROM roombot_schema")
    row = await cur.fetchone()
    return 0 if row is None else int(row[0])


async def migrate(conn: Connection, *, target: int = SCHEMA_VERSION) -> int:
    """Apply the steps a database lacks, up to `target`; return how many this call applied.

    `conn` must be in autocommit mode. A database newer than this code is refused (AuditError)
    rather than written to. psycopg errors are left to the caller, which words them.
    """
    applied = 0
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            await conn.execute(_VERSION_TABLE)
            await conn.execute(
                "INSERT INTO roombot_schema (version) VALUES (0) ON CONFLICT DO NOTHING"
            )
            version = await schema_version(conn) or 0
            if version > SCHEMA_VERSION:
                raise AuditError(
                    f"the audit database has schema version {version}, newer than this roombot "
                    f"understands ({SCHEMA_VERSION}); upgrade roombot"
                )
            if version >= target:
                return applied
            for statement in statements(version, "postgresql"):
                await conn.execute(statement)
            await conn.execute("UPDATE roombot_schema SET version = %s", (version + 1,))
            applied += 1


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
