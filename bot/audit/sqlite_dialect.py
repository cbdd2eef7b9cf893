"""SQLite for the audit store: one file, behind one worker thread so the event loop never waits on
the disk.

All SQLite work runs on one dedicated thread that owns the only connection (`check_same_thread`
stays on, so any slip onto another thread fails loudly). A transaction body (`bot.audit.sql`) is
driven to its end on that thread in one go: one hop from the event loop per transaction,
whatever the number of statements. Writes take the write lock at once (`BEGIN IMMEDIATE`), so a
check-then-write is atomic against other processes sharing the file too.

The database's clock is the store's (`clock`), read once per transaction: tests move it.
Connection settings: WAL (readers never wait for the writer), `synchronous=NORMAL` (durable
across a process crash, one fsync per checkpoint rather than per commit), foreign keys on.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from bot.aio import worker_threads
from bot.audit.dialect import Dialect, RateBudgets
from bot.audit.records import AuditError
from bot.audit.schema import SCHEMA_VERSION, statements
from bot.audit.sql import BodyFactory, Query, Result, run_sync, translate
from bot.budget import RateBudget, process_budget

_T = TypeVar("_T")

#: How long a statement waits for another connection's lock before failing (seconds).
BUSY_TIMEOUT_S: Final = 5.0
_NAMED: Final = re.compile(r"%\((\w+)\)s")


@lru_cache(maxsize=256)
def _spell(sql: str) -> str:
    text = translate(
        sql,
        now=":_now",
        locking=False,
        in_list=lambda name: f"IN (SELECT value FROM json_each(:{name}))",  # noqa: S608
    )
    return _NAMED.sub(r":\1", text)


def _bind(params: Any, now: Callable[[], float] | None) -> dict[str, Any]:
    bound: dict[str, Any] = {} if now is None else {"_now": now()}
    for name, value in dict(params).items():
        # A list parameter is read with json_each (`$IN(name)`).
        bound[name] = json.dumps(list(value)) if isinstance(value, list | tuple) else value
    return bound


def _execute(conn: sqlite3.Connection, query: Query, now: Callable[[], float]) -> Result:
    sql = _spell(query.sql)
    clock = now if ":_now" in sql else None
    if query.many is None:
        cursor = conn.execute(sql, _bind(query.params, clock))
        rows = cursor.fetchall()
        return Result(rows, cursor.rowcount)
    rows = []
    count = 0
    # Run one at a time: sqlite3's executemany cannot give back RETURNING rows.
    for params in query.many:
        cursor = conn.execute(sql, _bind(params, clock))
        rows += cursor.fetchall()
        count += max(cursor.rowcount, 0)
    return Result(rows, count)


class SqliteDialect(Dialect):
    """One SQLite file (or ":memory:"), migrated at opening unless `read_only`.

    Create with `await SqliteDialect.connect(path, clock=...)`.
    """

    name: Literal["sqlite"] = "sqlite"

    def __init__(
        self,
        *,
        executor: ThreadPoolExecutor,
        conn: sqlite3.Connection,
        clock: Callable[[], float],
        target: str,
        read_only: bool,
    ) -> None:
        """Internal: use `connect`, which builds the connection on the worker thread."""
        self._executor = executor
        self._conn = conn
        self._clock = clock
        self._target = target
        self.read_only = read_only
        self._closed = False

    @classmethod
    async def connect(
        cls, path: Path | str, *, clock: Callable[[], float], read_only: bool = False
    ) -> SqliteDialect:
        """Open (creating and migrating if needed) the database at `path`. With `read_only`
        the file must exist at the current schema version; it is neither created nor migrated,
        and every write raises `AuditError`."""
        executor = worker_threads(1, name="roombot-audit")
        loop = asyncio.get_running_loop()
        target = str(path)
        try:
            conn = await loop.run_in_executor(executor, _open, target, read_only)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor=executor, conn=conn, clock=clock, target=target, read_only=read_only)

    def describe(self) -> str:
        return f"SQLite {self._target}"

    def rate_budget(
        self, rate_per_second: float, *, burst: int | None, owner: str, app: str | None
    ) -> RateBudgets:
        # One process per file: the process's budget already covers every caller.
        if burst is None:
            return process_budget(rate_per_second)
        return RateBudget(rate_per_second, burst=burst)

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
        loop = asyncio.get_running_loop()
        try:
            # Queued work runs first: the worker takes jobs in order and this is the last one.
            await loop.run_in_executor(self._executor, _guarded, "close", self._conn.close)
        finally:
            self._executor.shutdown(wait=True)  # returns at once: nothing is left queued

    async def _run(self, action: str, factory: BodyFactory[_T], *, write: bool) -> _T:
        if self._closed:
            raise AuditError(f"cannot {action}: the audit store is closed")
        conn = self._conn
        body = factory()
        read: list[float] = []

        def now() -> float:
            # The clock is read once per transaction, and only when a statement needs it.
            if not read:
                read.append(self._clock())
            return read[0]

        def work() -> _T:
            def execute(query: Query) -> Result:
                return _execute(conn, query, now)

            if not write:
                return run_sync(body, execute)
            with _transaction(conn):
                return run_sync(body, execute)

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _guarded, action, work)


# -- worker-thread functions (each runs on the store's thread) ----------------------------------


def _open(target: str, read_only: bool) -> sqlite3.Connection:
    try:
        if read_only:
            uri = f"{Path(target).resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        else:
            conn = sqlite3.connect(target, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise AuditError(f"cannot open the audit database {target}: {exc}") from exc
    try:
        configure(conn, read_only=read_only)
        if read_only:
            _require_current(conn, target)
        else:
            migrate(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise AuditError(f"cannot open the audit database {target}: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def configure(conn: sqlite3.Connection, *, read_only: bool) -> None:
    """Per-connection settings (see the module docstring)."""
    conn.execute("PRAGMA foreign_keys = ON")
    if not read_only:
        # journal_mode is stored in the file; a read-only connection inherits the writer's.
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version stored in the database header (0 for a new file)."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, *, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations a database lacks, up to `target`; return how many were applied.

    `conn` must be in autocommit mode (`isolation_level=None`). Each step runs in its own
    `BEGIN IMMEDIATE` transaction and re-reads the version inside it, so two processes opening
    the same new file at once apply each step exactly once. A database newer than this code is
    refused rather than written to.
    """
    found = user_version(conn)
    if found > SCHEMA_VERSION:
        raise AuditError(
            f"the audit database has schema version {found}, newer than this roombot "
            f"understands ({SCHEMA_VERSION}); upgrade roombot"
        )
    applied = 0
    for version in range(found, target):
        with _transaction(conn):
            if user_version(conn) == version:
                for statement in statements(version, "sqlite"):
                    conn.execute(statement)
                # PRAGMA cannot take a parameter; version + 1 is an int we computed.
                conn.execute(f"PRAGMA user_version = {version + 1:d}")
                applied += 1
    return applied


def _require_current(conn: sqlite3.Connection, target: str) -> None:
    found = user_version(conn)
    if found == 0:
        raise AuditError(f"{target} is not a roombot audit database (it has no schema)")
    if found != SCHEMA_VERSION:
        raise AuditError(
            f"the audit database {target} has schema version {found}, this roombot reads "
            f"version {SCHEMA_VERSION}; start the bot once to migrate it"
        )


def _guarded(action: str, work: Callable[[], _T]) -> _T:
    try:
        return work()
    except sqlite3.Error as exc:
        # sqlite3 messages name tables and constraints, never the values being written.
        raise AuditError(f"the audit store could not {action}: {exc}") from exc


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; IMMEDIATE so it never fails half-way for want of the lock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
