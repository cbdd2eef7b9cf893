"""Is the audit database usable? Reachable, migrated and writable, for either backend, without
changing anything (what `roombot check` and `/readyz` report).

`check_database(target)` answers with a `DatabaseHealth`: a status and one short line. A SQLite
file is opened read-only (a running bot's rows are left alone) and tested for write access; a
PostgreSQL database is connected to, its schema version read, and a write tried inside a
transaction that is rolled back. The URL's password never appears in the answer.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bot.audit.records import AuditError
from bot.dsn import DatabaseUrl, is_database_url

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

#: How long the whole PostgreSQL check may take.
CHECK_TIMEOUT_S: Final = 5.0


class Health(StrEnum):
    """How usable the database is."""

    OK = "ok"
    WARN = "warn"  # usable, but something needs attention (e.g. will be created or migrated)
    FAIL = "fail"


@dataclass(frozen=True)
class DatabaseHealth:
    """A check's answer: `status`, and `detail`, one line for people (no password)."""

    status: Health
    detail: str

    @property
    def ok(self) -> bool:
        """True unless the database cannot be used."""
        return self.status is not Health.FAIL


async def check_database(
    target: str | Path | DatabaseUrl, *, timeout_s: float = CHECK_TIMEOUT_S
) -> DatabaseHealth:
    """Check the audit database at `target` (SQLite path or PostgreSQL URL) without changing it.

    OK: it is at the current schema and accepts writes, or it is empty (a new file in a writable
    directory, a database without tables) and `serve` creates the schema at its first start.
    WARN: it is at an older schema version, which the next start migrates.
    FAIL: it cannot be reached, read or written.
    """
    if isinstance(target, DatabaseUrl) or (isinstance(target, str) and is_database_url(target)):
        url = target if isinstance(target, DatabaseUrl) else DatabaseUrl(target)
        try:
            return await asyncio.wait_for(_check_postgres(url, timeout_s), timeout=timeout_s + 1)
        except TimeoutError:
            return DatabaseHealth(Health.FAIL, f"{url.redacted}: no answer within {timeout_s:g} s")
    return await _check_sqlite(Path(target))


async def _check_sqlite(path: Path) -> DatabaseHealth:
    from bot.audit.factory import open_store
    from bot.audit.schema import SCHEMA_VERSION

    missing = _missing_sqlite_file(path)
    if missing is not None:
        return missing
    version = await asyncio.to_thread(_sqlite_version, path)
    if version is not None and 0 < version < SCHEMA_VERSION:
        if not os.access(path, os.W_OK):
            return DatabaseHealth(Health.FAIL, f"{path} is not writable")
        return DatabaseHealth(
            Health.WARN,
            f"SQLite {path} at schema version {version} of {SCHEMA_VERSION}; the next start "
            "migrates it",
        )
    try:
        store = await open_store(path, read_only=True)
    except AuditError as exc:
        return DatabaseHealth(Health.FAIL, f"cannot open {path}: {exc}")
    await store.close()
    return _sqlite_writable(path)


def _sqlite_version(path: Path) -> int | None:
    """The file's schema version, read without writing anything; None if it cannot be read
    (opening it properly then says why)."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return int(row[0]) if row else None


def _missing_sqlite_file(path: Path) -> DatabaseHealth | None:
    """The answer when there is no file yet (fine if it can be created), else None."""
    if path.exists():
        return None
    directory = path.parent if str(path.parent) else Path(".")
    if directory.is_dir() and os.access(directory, os.W_OK):
        return DatabaseHealth(Health.OK, f"{path} will be created at the first start")
    return DatabaseHealth(
        Health.FAIL, f"cannot create {path}: {directory} is not a writable directory"
    )


def _sqlite_writable(path: Path) -> DatabaseHealth:
    from bot.audit.schema import SCHEMA_VERSION

    if not os.access(path, os.W_OK):
        return DatabaseHealth(Health.FAIL, f"{path} is not writable")
    return DatabaseHealth(
        Health.OK, f"SQLite {path}: schema version {SCHEMA_VERSION}, opens and is writable"
    )


async def _check_postgres(url: DatabaseUrl, timeout_s: float) -> DatabaseHealth:
    import psycopg

    from bot.audit.pg_errors import describe_error
    from bot.audit.postgres_dialect import schema_version
    from bot.audit.schema import SCHEMA_VERSION
    from bot.dsn import scrub_logs_of

    scrub_logs_of(url, "psycopg", "psycopg.pool")
    where = f"PostgreSQL {url.redacted}"
    try:
        conn = await psycopg.AsyncConnection.connect(
            url.secret(), autocommit=True, connect_timeout=max(2, round(timeout_s))
        )
    except psycopg.Error as exc:
        return DatabaseHealth(Health.FAIL, f"cannot connect to {where}: {describe_error(exc, url)}")
    try:
        version = await schema_version(conn)
        if version is not None and version > SCHEMA_VERSION:
            return DatabaseHealth(
                Health.FAIL,
                f"{where} has schema version {version}, newer than this roombot "
                f"understands ({SCHEMA_VERSION}); upgrade roombot",
            )
        problem = await _write_problem(conn, url, migrated=version == SCHEMA_VERSION)
        if problem is not None:
            return DatabaseHealth(Health.FAIL, f"{where} is not writable: {problem}")
        if not version:
            return DatabaseHealth(
                Health.OK, f"{where} reachable and writable; the schema is created at first start"
            )
        if version < SCHEMA_VERSION:
            return DatabaseHealth(
                Health.WARN,
                f"{where} at schema version {version} of {SCHEMA_VERSION}; "
                "the next start migrates it",
            )
        return DatabaseHealth(
            Health.OK, f"{where}: schema version {version}, reachable and writable"
        )
    except psycopg.Error as exc:
        return DatabaseHealth(Health.FAIL, f"{where}: {describe_error(exc, url)}")
    finally:
        await conn.close()


async def _write_problem(
    conn: psycopg.AsyncConnection[TupleRow], url: DatabaseUrl, *, migrated: bool
) -> str | None:
    """Why a write would fail (read-only server, missing privilege), or None; nothing is kept.
    A current schema must take a row; one still to be created or migrated, a new table."""
    import psycopg

    from bot.audit.pg_errors import describe_error

    cur = await conn.execute("SHOW transaction_read_only")
    row = await cur.fetchone()
    if row is not None and row[0] == "on":
        return "the server only allows reads (a standby?)"
    try:
        async with conn.transaction(force_rollback=True):
            if migrated:
                await conn.execute(
                    "INSERT INTO claims (key, claimed_at) VALUES ('roombot-check', 0) "
                    "ON CONFLICT (key) DO NOTHING"
                )
            else:
                await conn.execute("CREATE TABLE roombot_check_probe (x INTEGER)")
    except psycopg.Error as exc:
        return describe_error(exc, url)
    return None
