"""The SQLite audit store: one file, behind one worker thread so the event loop never waits on
the disk.

SQLite serves one process (several only on one host, sharing the file). So a row still pending
when a store is opened belongs to a process that stopped: it is marked `unknown` at once, and the
requests concerned, with their lease contexts, are handed over in `recovered` so the adapter can
tell their threads. Leases otherwise work as on PostgreSQL, with the store's clock.

All SQLite work runs on one dedicated thread that owns the only connection (`check_same_thread`
stays on, so any slip onto another thread fails loudly). Failures surface as `AuditError`.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from bot.aio import worker_threads
from bot.audit.records import (
    AuditEntry,
    AuditError,
    Confirmation,
    ConfirmationState,
    ConfirmationStatus,
    Lease,
    NewEntry,
    Outcome,
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
from bot.audit.schema import BUSY_TIMEOUT_S, SCHEMA_VERSION, configure, migrate, user_version
from bot.audit.store import (
    DEFAULT_LEASE_S,
    RECOVERED_DETAIL,
    UNLEASED_GRACE_S,
    AuditStore,
)

if TYPE_CHECKING:
    from bot.tencent.ratelimit import CallBudget

_T = TypeVar("_T")

_INSERT_ENTRY: Final = (
    f"INSERT INTO audit_entries ({', '.join(INSERT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in INSERT_COLUMNS)})"
)
# Columns in SET expressions read the row's values from before the update, so `outcome` in the
# CASE is the old one: a late completion of a provisional row drops the provisional note.
_COMPLETE_ENTRY: Final = f"""
    UPDATE audit_entries
       SET outcome = ?, finished_at = ?, tencent_request_id = ?, error_code = ?, error_info = ?,
           latency_ms = ?, previous = COALESCE(?, previous),
           detail = COALESCE(?, CASE WHEN outcome = 'pending' THEN detail ELSE NULL END)
     WHERE id = ? AND outcome IN ({PROVISIONAL_SQL})
"""  # noqa: S608


# Pending rows without any lease get an expired one (owner ''): see `claim_expired_leases`.
_ADOPT_UNLEASED: Final = f"""
    INSERT OR IGNORE INTO leases ({LEASE_COLUMNS})
    SELECT DISTINCT e.request_key, '', '{{}}', ?, 0, 0
      FROM audit_entries e
     WHERE e.outcome = 'pending' AND e.created_at < ?
       AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.request_key = e.request_key)
"""  # noqa: S608


@dataclass(frozen=True)
class _Opened:
    conn: sqlite3.Connection
    recovered_unknown: int
    recovered: tuple[StrandedRequest, ...]


class SqliteAuditStore(AuditStore):
    """The audit trail, claims, confirmation prompts and leases in one SQLite file.

    Create with `await SqliteAuditStore.connect(path)` (or `AuditStore.open`). Operations run one
    at a time, in call order, on the store's thread.
    """

    def __init__(
        self,
        *,
        executor: ThreadPoolExecutor,
        opened: _Opened,
        clock: Callable[[], float],
        owner: str,
        lease_s: float,
        target: str,
    ) -> None:
        """Internal: use `connect`, which builds the connection on the worker thread."""
        self._executor = executor
        self._conn = opened.conn
        self._clock = clock
        self._owner = owner
        self._lease_s = lease_s
        self._target = target
        self._closed = False
        self.recovered_unknown = opened.recovered_unknown
        self.recovered = opened.recovered

    @classmethod
    async def connect(
        cls,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
        owner: str,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> SqliteAuditStore:
        """Open (creating and migrating if needed) the database at `path`; ":memory:" is allowed.

        Rows left pending by a stopped process are marked `unknown` (`recovered_unknown` says how
        many) and their requests, with every lease found, are held by `owner` in `recovered`.
        With `read_only`, the file must exist at the current schema version; it is neither
        created, migrated nor recovered, and every write raises `AuditError`.
        """
        executor = worker_threads(1, name="roombot-audit")
        loop = asyncio.get_running_loop()

        def lease_until() -> float:  # read only when there is something to recover
            return clock() + lease_s

        try:
            opened = await loop.run_in_executor(
                executor, _connect, str(path), read_only, owner, lease_until
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(
            executor=executor,
            opened=opened,
            clock=clock,
            owner=owner,
            lease_s=lease_s,
            target=str(path),
        )

    @property
    def backend(self) -> str:
        return "sqlite"

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def lease_s(self) -> float:
        return self._lease_s

    def describe(self) -> str:
        return f"SQLite {self._target}"

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            # Queued work runs first: the worker takes jobs in order and this is the last one.
            await loop.run_in_executor(
                self._executor, _guarded, "close", sqlite3.Connection.close, self._conn
            )
        finally:
            self._executor.shutdown(wait=True)  # returns at once: nothing is left queued

    # -- the audit trail ------------------------------------------------------------------------

    async def get(self, row_id: int) -> AuditEntry | None:
        def read(conn: sqlite3.Connection) -> AuditEntry | None:
            row = conn.execute(f"{SELECT_ENTRIES} WHERE id = ?", (row_id,)).fetchone()
            return None if row is None else entry_from_row(row)

        return await self._run("read an entry", read)

    async def rows_for_request(self, request_key: str) -> list[AuditEntry]:
        return await self._run(
            "read a request's entries", lambda conn: _rows_for_request(conn, request_key)
        )

    async def query(
        self,
        *,
        room: str | None = None,
        user: str | None = None,
        since: float | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        sql, params = entries_query(room=room, user=user, since=since, limit=limit, placeholder="?")

        def read(conn: sqlite3.Connection) -> list[AuditEntry]:
            return [entry_from_row(row) for row in conn.execute(sql, params)]

        return await self._run("query entries", read)

    async def room_trail(self, room_id: str, *, limit: int = 100) -> list[AuditEntry]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        sql = (
            f"{SELECT_ENTRIES} WHERE room_id = ? "
            "AND (patch IS NOT NULL OR previous IS NOT NULL) "
            f"AND outcome NOT IN ({REFUSED_SQL}) ORDER BY id DESC LIMIT ?"
        )

        def read(conn: sqlite3.Connection) -> list[AuditEntry]:
            return [entry_from_row(row) for row in conn.execute(sql, (room_id, limit))]

        return await self._run("read a room's trail", read)

    # -- claims ---------------------------------------------------------------------------------

    async def claimed(self, keys: Sequence[str]) -> frozenset[str]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return frozenset()
        cutoff = self._clock() - CLAIM_RETENTION_S

        def read(conn: sqlite3.Connection) -> frozenset[str]:
            found: set[str] = set()
            # SQLite allows a limited number of parameters per statement: ask in slices.
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                marks = ", ".join("?" for _ in part)
                rows = conn.execute(
                    f"SELECT key FROM claims WHERE key IN ({marks}) AND claimed_at >= ?",  # noqa: S608
                    (*part, cutoff),
                )
                found.update(key for (key,) in rows)
            return frozenset(found)

        return await self._run("read claims", read)

    async def claim(self, key: str) -> bool:
        if not key:
            raise ValueError("a claim key cannot be empty")
        now = self._clock()

        def write(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                conn.execute("DELETE FROM claims WHERE claimed_at < ?", (now - CLAIM_RETENTION_S,))
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO claims (key, claimed_at) VALUES (?, ?)", (key, now)
                )
            return cursor.rowcount == 1

        return await self._run("claim a key", write)

    # -- confirmation prompts -------------------------------------------------------------------

    async def create_confirmation(
        self, *, user_id: str, team_id: str | None, channel_id: str | None, text: str
    ) -> str:
        key = secrets.token_urlsafe(24)
        now = self._clock()

        def write(conn: sqlite3.Connection) -> str:
            with _transaction(conn):
                conn.execute(
                    "DELETE FROM confirmations WHERE created_at < ?",
                    (now - CONFIRMATION_RETENTION_S,),
                )
                conn.execute(
                    f"INSERT INTO confirmations ({CONFIRMATION_COLUMNS}) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key, user_id, team_id, channel_id, text, now, ConfirmationState.PENDING),
                )
            return key

        return await self._run("create a confirmation", write)

    # -- leases ---------------------------------------------------------------------------------

    async def take_lease(self, request_key: str, context: Mapping[str, Any]) -> Lease:
        if not request_key:
            raise ValueError("a lease needs a request key")
        text = context_json(dict(context))
        now = self._clock()
        owner, expires = self._owner, now + self._lease_s

        def write(conn: sqlite3.Connection) -> Lease | None:
            with _transaction(conn):
                conn.execute(
                    f"INSERT INTO leases ({LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, 0) "  # noqa: S608
                    "ON CONFLICT (request_key) DO UPDATE "
                    "SET context = excluded.context, expires_at = excluded.expires_at "
                    "WHERE leases.owner = excluded.owner",
                    (request_key, owner, text, now, expires),
                )
                lease = _lease(conn, request_key)
            return lease if lease is not None and lease.owner == owner else None

        lease = await self._run("take a lease", write)
        if lease is None:
            raise AuditError(f"request {request_key} is leased by another replica")
        return lease

    async def renew_leases(self) -> frozenset[str]:
        owner, expires = self._owner, self._clock() + self._lease_s

        def write(conn: sqlite3.Connection) -> frozenset[str]:
            with _transaction(conn):
                conn.execute("UPDATE leases SET expires_at = ? WHERE owner = ?", (expires, owner))
                keys = conn.execute("SELECT request_key FROM leases WHERE owner = ?", (owner,))
                return frozenset(key for (key,) in keys)

        return await self._run("renew leases", write)

    async def release_lease(self, request_key: str) -> bool:
        owner = self._owner

        def write(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                cursor = conn.execute(
                    "DELETE FROM leases WHERE request_key = ? AND owner = ?", (request_key, owner)
                )
            return cursor.rowcount == 1

        return await self._run("release a lease", write)

    async def get_lease(self, request_key: str) -> Lease | None:
        return await self._run("read a lease", lambda conn: _lease(conn, request_key))

    async def claim_expired_leases(self, *, limit: int = 10) -> list[StrandedRequest]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        now = self._clock()
        owner, expires = self._owner, now + self._lease_s

        def write(conn: sqlite3.Connection) -> list[StrandedRequest]:
            # IMMEDIATE holds the write lock from the read on: one store gets each lease.
            with _transaction(conn):
                conn.execute(_ADOPT_UNLEASED, (now, now - UNLEASED_GRACE_S))
                found = [
                    lease_from_row(row)
                    for row in conn.execute(
                        f"SELECT {LEASE_COLUMNS} FROM leases WHERE expires_at < ? "  # noqa: S608
                        "ORDER BY expires_at LIMIT ?",
                        (now, limit),
                    )
                ]
                return [_hand_over(conn, lease, owner, expires) for lease in found]

        return await self._run("claim expired leases", write)

    # -- the shared rate budget -----------------------------------------------------------------

    async def end_rate_slots_of(self, owner: str) -> int:
        return 0  # one process per file: its budget lives and dies with it

    def rate_budget(self, rate_per_second: float, *, burst: int | None = None) -> CallBudget:
        from bot.tencent.ratelimit import RateBudget, process_budget

        # One process per file: the process's budget already covers every caller.
        if burst is None:
            return process_budget(rate_per_second)
        return RateBudget(rate_per_second, burst=burst)

    # -- internals ------------------------------------------------------------------------------

    async def _run(self, action: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work(connection)` on the store's thread; sqlite3 errors become `AuditError`."""
        if self._closed:
            raise AuditError(f"cannot {action}: the audit store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _guarded, action, work, self._conn)

    async def _insert(self, entries: Sequence[NewEntry], *, final: bool) -> list[int]:
        if not entries:
            return []
        now = self._clock()
        rows = [insert_params(entry, created_at=now, final=final) for entry in entries]

        def write(conn: sqlite3.Connection) -> list[int]:
            ids: list[int] = []
            with _transaction(conn):
                for row in rows:
                    row_id = conn.execute(_INSERT_ENTRY, row).lastrowid
                    if row_id is None:  # cannot happen for an INSERT; keeps ids aligned if it did
                        raise AuditError("SQLite returned no id for a new audit row")
                    ids.append(row_id)
            return ids

        return await self._run("write entries", write)

    async def _complete(self, completions: Sequence[tuple[int, Completion]]) -> None:
        if not completions:
            return
        now = self._clock()
        rows = [c.params(row_id, now) for row_id, c in completions]

        def write(conn: sqlite3.Connection) -> list[int]:
            with _transaction(conn):
                return [row[-1] for row in rows if conn.execute(_COMPLETE_ENTRY, row).rowcount == 0]

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

        def write(conn: sqlite3.Connection) -> tuple[ConfirmationStatus, Confirmation | None]:
            # IMMEDIATE takes the write lock before reading, so check-then-update is atomic
            # across instances sharing the file, not only within this one.
            with _transaction(conn):
                row = conn.execute(
                    f"SELECT {CONFIRMATION_COLUMNS} FROM confirmations WHERE key = ?",  # noqa: S608
                    (key,),
                ).fetchone()
                if row is None:
                    return ConfirmationStatus.NOT_FOUND, None
                prompt = confirmation_from_row(row)
                status, state = settle(prompt, user_id, to, ttl_s, now)
                if state is None:
                    return status, prompt
                conn.execute(
                    "UPDATE confirmations SET state = ?, resolved_at = ? "
                    "WHERE key = ? AND state = ?",
                    (state, now, key, ConfirmationState.PENDING),
                )
            return status, replace(prompt, state=state.value)

        return await self._run("settle a confirmation", write)


# -- worker-thread functions (each runs on the store's thread with its connection) -------------


def _connect(target: str, read_only: bool, owner: str, lease_until: Callable[[], float]) -> _Opened:
    """Open, configure, migrate and recover."""
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
            return _Opened(conn, 0, ())
        migrate(conn)
        count, recovered = _recover(conn, owner, lease_until)
        return _Opened(conn, count, recovered)
    except sqlite3.Error as exc:
        conn.close()
        raise AuditError(f"cannot open the audit database {target}: {exc}") from exc
    except BaseException:
        conn.close()
        raise


def _require_current(conn: sqlite3.Connection, target: str) -> None:
    found = user_version(conn)
    if found == 0:
        raise AuditError(f"{target} is not a roombot audit database (it has no schema)")
    if found != SCHEMA_VERSION:
        raise AuditError(
            f"the audit database {target} has schema version {found}, this roombot reads "
            f"version {SCHEMA_VERSION}; start the bot once to migrate it"
        )


def _recover(
    conn: sqlite3.Connection, owner: str, lease_until: Callable[[], float]
) -> tuple[int, tuple[StrandedRequest, ...]]:
    """Mark rows a stopped process left pending as `unknown`, and take over every lease (their
    holders have stopped too: one process per file). Returns the count and the requests."""
    with _transaction(conn):
        pending_keys = [
            key
            for (key,) in conn.execute(
                "SELECT request_key FROM audit_entries WHERE outcome = ? "
                "GROUP BY request_key ORDER BY MIN(id)",
                (Outcome.PENDING.value,),
            )
        ]
        cursor = conn.execute(
            "UPDATE audit_entries SET outcome = ?, detail = ? WHERE outcome = ?",
            (Outcome.UNKNOWN.value, RECOVERED_DETAIL, Outcome.PENDING.value),
        )
        count = cursor.rowcount
        leases = {
            lease.request_key: lease
            for lease in map(
                lease_from_row,
                conn.execute(f"SELECT {LEASE_COLUMNS} FROM leases ORDER BY taken_at"),  # noqa: S608
            )
        }
        if not pending_keys and not leases:
            return count, ()
        expires = lease_until()
        recovered = [
            _hand_over(conn, leases[key], owner, expires)
            if key in leases
            else StrandedRequest(
                request_key=key,
                previous_owner=None,
                context={},
                rows=tuple(_rows_for_request(conn, key)),
            )
            for key in pending_keys
        ]
        recovered += [
            _hand_over(conn, lease, owner, expires)
            for key, lease in leases.items()
            if key not in pending_keys
        ]
    return count, tuple(recovered)


def _hand_over(
    conn: sqlite3.Connection, lease: Lease, owner: str, expires_at: float
) -> StrandedRequest:
    """Make `lease` `owner`'s until `expires_at` and describe its request (in a transaction)."""
    conn.execute(
        "UPDATE leases SET owner = ?, expires_at = ?, takeovers = takeovers + 1 "
        "WHERE request_key = ?",
        (owner, expires_at, lease.request_key),
    )
    return StrandedRequest(
        request_key=lease.request_key,
        previous_owner=lease.owner or None,
        context=lease.context,
        rows=tuple(_rows_for_request(conn, lease.request_key)),
        takeovers=lease.takeovers + 1,
    )


def _rows_for_request(conn: sqlite3.Connection, request_key: str) -> list[AuditEntry]:
    sql = f"{SELECT_ENTRIES} WHERE request_key = ? ORDER BY id"
    return [entry_from_row(row) for row in conn.execute(sql, (request_key,))]


def _lease(conn: sqlite3.Connection, request_key: str) -> Lease | None:
    row = conn.execute(
        f"SELECT {LEASE_COLUMNS} FROM leases WHERE request_key = ?",  # noqa: S608
        (request_key,),
    ).fetchone()
    return None if row is None else lease_from_row(row)


def _guarded(action: str, work: Callable[[sqlite3.Connection], _T], conn: sqlite3.Connection) -> _T:
    try:
        return work(conn)
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
