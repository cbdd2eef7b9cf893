"""`open_store`: the audit store for a target, on the dialect the target calls for.

The store's interface (`bot.audit.store`) knows nothing of its dialects; this is the one place
that picks one, and imports PostgreSQL's driver only when a URL asks for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bot.audit.dialect import Dialect
from bot.audit.store import DEFAULT_LEASE_S, AuditStore
from bot.dsn import DatabaseUrl, is_database_url

#: What `open_store` accepts: a SQLite path or a PostgreSQL URL.
StoreTarget = str | Path | DatabaseUrl


async def open_dialect(
    target: StoreTarget, *, clock: Callable[[], float] = time.time, read_only: bool = False
) -> Dialect:
    """The database at `target`, migrated unless `read_only` (see `open_store`)."""
    if isinstance(target, DatabaseUrl) or (isinstance(target, str) and is_database_url(target)):
        from bot.audit.postgres_dialect import PostgresDialect

        url = target if isinstance(target, DatabaseUrl) else DatabaseUrl(target)
        return await PostgresDialect.connect(url, read_only=read_only)
    from bot.audit.sqlite_dialect import SqliteDialect

    return await SqliteDialect.connect(target, clock=clock, read_only=read_only)


async def open_store(
    target: StoreTarget,
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    read_only: bool = False,
    owner: str | None = None,
    lease_s: float = DEFAULT_LEASE_S,
) -> AuditStore:
    """Open the audit store at `target`: a `DatabaseUrl` or a string starting with
    `postgresql://` / `postgres://` is PostgreSQL, anything else a SQLite path (":memory:"
    included).

    A writable store migrates the schema first (one step at a time, under a lock, so stores
    opening together apply each step once), then ends the leases of replicas on this host that
    are certainly not running any more (this process's predecessor, after a restart), so their
    requests are taken over at once (`AuditStore.recovered` says how many). With `read_only`
    nothing is created or migrated, the schema must be current, and every write raises
    `AuditError`. `clock` gives the Unix seconds of the trail's timestamps (and of leases on
    SQLite; PostgreSQL's leases use the database's clock). `owner` names this replica in leases
    (default: host, pid and a random suffix). `lease_s` is how long a lease lives unrenewed.
    """
    if lease_s <= 0:
        raise ValueError("lease_s must be positive")
    dialect = await open_dialect(target, clock=clock, read_only=read_only)
    store = AuditStore(dialect, clock=clock, monotonic=monotonic, owner=owner, lease_s=lease_s)
    if not read_only:
        try:
            store.recovered = await store.expire_stopped()
        except BaseException:
            await store.close()
            raise
    return store
