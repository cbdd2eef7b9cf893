"""The audit store: SQLite behind one worker thread, so the event loop never waits on the disk.

Every request is written as `pending` rows *before* the Room Engine call and completed after it;
a row still pending when a store is next opened is marked `unknown`, so a crash leaves a visible
"outcome unknown" rather than nothing. The same file also holds what several bot instances must
agree on: one-shot claims (Slack retries, double clicks) and confirmation prompts.

All SQLite work runs on one dedicated thread that owns the only connection (`check_same_thread`
stays on, so any slip onto another thread fails loudly). Failures surface as `AuditError`; the
caller decides what to do (the service logs loudly and tells the user; a command never fails
because of the audit). Arguments that are wrong whatever the database holds (completing a row
as `pending`, an empty claim key) raise `ValueError` or `TypeError` before anything is written.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from bot.audit.records import (
    AuditEntry,
    AuditError,
    Confirmation,
    ConfirmationState,
    ConfirmationStatus,
    NewEntry,
    Outcome,
)
from bot.audit.schema import BUSY_TIMEOUT_S, SCHEMA_VERSION, configure, migrate, user_version

_T = TypeVar("_T")

#: The `detail` of rows found pending when a store is opened.
RECOVERED_DETAIL: Final = "process stopped before the outcome was recorded"
#: Claims older than this are pruned; a key may be claimed again after it.
CLAIM_RETENTION_S: Final = 86_400.0
#: Confirmation prompts older than this are forgotten (far beyond any sensible TTL).
CONFIRMATION_RETENTION_S: Final = 86_400.0
#: How long a confirmation prompt may wait for its click by default.
DEFAULT_CONFIRMATION_TTL_S: Final = 600.0

# Column names are the dataclass field names, so rows map to entries by position.
_ENTRY_COLUMNS: Final = tuple(f.name for f in fields(AuditEntry))
_INSERT_COLUMNS: Final = (*(f.name for f in fields(NewEntry)), "created_at", "finished_at")
_SELECT_ENTRIES: Final = f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM audit_entries"  # noqa: S608
_INSERT_ENTRY: Final = (
    f"INSERT INTO audit_entries ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _INSERT_COLUMNS)})"
)
# Columns in SET expressions read the row's values from before the update, so `outcome` in the
# CASE is the old one: a late completion of a recovered row drops the recovery note.
_COMPLETE_ENTRY: Final = """
    UPDATE audit_entries
       SET outcome = ?, finished_at = ?, tencent_request_id = ?, error_code = ?, error_info = ?,
           latency_ms = ?, previous = COALESCE(?, previous),
           detail = COALESCE(?, CASE WHEN outcome = 'unknown' THEN NULL ELSE detail END)
     WHERE id = ? AND outcome IN ('pending', 'unknown')
"""
_CONFIRMATION_COLUMNS: Final = "key, user_id, team_id, channel_id, text, created_at, state"


@dataclass(frozen=True)
class _Completion:
    """The keyword arguments of `AuditStore.complete`, validated."""

    outcome: Outcome
    tencent_request_id: str | None = None
    error_code: int | None = None
    error_info: str | None = None
    latency_ms: float | None = None
    previous: dict[str, Any] | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        outcome = Outcome(self.outcome)  # ValueError for a string that is no outcome
        if outcome is Outcome.PENDING:
            raise ValueError("an audit row cannot be completed as pending")
        object.__setattr__(self, "outcome", outcome)


class AuditStore:
    """The audit trail, claims and confirmation prompts in one SQLite file.

    Create with `await AuditStore.open(path)`; `close()` when done (or `async with`). Safe to
    share between tasks: operations run one at a time, in call order, on the store's thread.
    """

    def __init__(
        self,
        *,
        executor: ThreadPoolExecutor,
        conn: sqlite3.Connection,
        clock: Callable[[], float],
        recovered_unknown: int,
    ) -> None:
        """Internal: use `AuditStore.open`, which builds the connection on the worker thread."""
        self._executor = executor
        self._conn = conn
        self._clock = clock
        self._closed = False
        #: How many rows were found pending, and marked `unknown`, when this store was opened.
        self.recovered_unknown = recovered_unknown

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> AuditStore:
        """Open (creating and migrating if needed) the database at `path`; ":memory:" is allowed.

        Rows left pending by a stopped process are marked `unknown`; `recovered_unknown` says how
        many. With `read_only`, the file must exist at the current schema version; it is neither
        created, migrated nor recovered, and every write raises `AuditError`.
        `clock` gives Unix seconds for every timestamp the store writes or compares.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roombot-audit")
        loop = asyncio.get_running_loop()
        try:
            conn, recovered = await loop.run_in_executor(executor, _connect, str(path), read_only)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor=executor, conn=conn, clock=clock, recovered_unknown=recovered)

    async def close(self) -> None:
        """Close the connection and stop the worker; later calls raise `AuditError`."""
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

    async def __aenter__(self) -> AuditStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the audit trail ------------------------------------------------------------------------

    async def begin(self, entries: Sequence[NewEntry]) -> list[int]:
        """Write `pending` rows before the Room Engine call, in one transaction; ids in order."""
        for entry in entries:
            if entry.outcome != Outcome.PENDING:
                raise ValueError(f"begin() writes pending rows; got outcome {entry.outcome!s}")
        return await self._insert(entries, final=False)

    async def record(self, entries: Sequence[NewEntry]) -> list[int]:
        """Write rows whose outcome is already known (denied, invalid, dry_run, ...) in one
        transaction; `finished_at` equals `created_at`. Returns the ids in order."""
        for entry in entries:
            if entry.outcome == Outcome.PENDING:
                raise ValueError("record() writes finished rows; use begin() for pending ones")
        return await self._insert(entries, final=True)

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
        """Record the outcome of a pending row (or of one recovered as `unknown`: the late truth
        wins). `previous` and `detail` keep their stored values when not given.

        Raises `AuditError` if the row does not exist or already has a final outcome.
        """
        completion = _Completion(
            outcome=outcome,
            tencent_request_id=tencent_request_id,
            error_code=error_code,
            error_info=error_info,
            latency_ms=latency_ms,
            previous=previous,
            detail=detail,
        )
        await self._complete([(row_id, completion)])

    async def complete_many(self, updates: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """`complete` for many rows in one transaction; each update is (row id, complete's
        keyword arguments). Rows that can be completed are, even if some cannot; those then
        raise one `AuditError` naming them."""
        completions = [(row_id, _Completion(**kwargs)) for row_id, kwargs in updates]
        await self._complete(completions)

    async def get(self, row_id: int) -> AuditEntry | None:
        """The row with this id, or None."""

        def read(conn: sqlite3.Connection) -> AuditEntry | None:
            row = conn.execute(f"{_SELECT_ENTRIES} WHERE id = ?", (row_id,)).fetchone()
            return None if row is None else _entry(row)

        return await self._run("read an entry", read)

    async def rows_for_request(self, request_key: str) -> list[AuditEntry]:
        """Every row of one request, in the order they were written."""

        def read(conn: sqlite3.Connection) -> list[AuditEntry]:
            sql = f"{_SELECT_ENTRIES} WHERE request_key = ? ORDER BY id"
            return [_entry(row) for row in conn.execute(sql, (request_key,))]

        return await self._run("read a request's entries", read)

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
        clauses: list[str] = []
        params: list[Any] = []
        if room is not None:
            clauses.append("room_id = ?")
            params.append(room)
        if user is not None:
            clauses.append("user_id = ?")
            params.append(user)
        if since is not None:
            clauses.append("created_at >= ?")
            params.append(since)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"{_SELECT_ENTRIES}{where} ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit)

        def read(conn: sqlite3.Connection) -> list[AuditEntry]:
            return [_entry(row) for row in conn.execute(sql, params)]

        return await self._run("query entries", read)

    # -- claims ---------------------------------------------------------------------------------

    async def claim(self, key: str) -> bool:
        """True only the first time `key` is claimed, by any store on this file (for a day).

        For Slack `event_id` de-duplication and "a double click acts once".
        """
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
        """Store a prompt awaiting `user_id`'s click; returns its key (url-safe, 32 chars), the
        only thing the buttons need to carry."""
        key = secrets.token_urlsafe(24)
        now = self._clock()

        def write(conn: sqlite3.Connection) -> str:
            with _transaction(conn):
                conn.execute(
                    "DELETE FROM confirmations WHERE created_at < ?",
                    (now - CONFIRMATION_RETENTION_S,),
                )
                conn.execute(
                    f"INSERT INTO confirmations ({_CONFIRMATION_COLUMNS}) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key, user_id, team_id, channel_id, text, now, ConfirmationState.PENDING),
                )
            return key

        return await self._run("create a confirmation", write)

    async def resolve_confirmation(
        self, key: str, *, user_id: str, ttl_s: float = DEFAULT_CONFIRMATION_TTL_S
    ) -> tuple[ConfirmationStatus, Confirmation | None]:
        """Confirm a prompt, exactly once, and only by the user it awaits.

        OK marks it confirmed atomically (a second call, even a concurrent one from another
        instance, gets ALREADY_RESOLVED). WRONG_USER changes nothing. A prompt older than `ttl_s`
        becomes expired and reports EXPIRED, now and later. NOT_FOUND comes with None; every
        other status with the prompt as it now stands.
        """
        return await self._settle(key, user_id, ConfirmationState.CONFIRMED, ttl_s)

    async def cancel_confirmation(
        self, key: str, *, user_id: str
    ) -> tuple[ConfirmationStatus, Confirmation | None]:
        """Cancel a prompt: the same checks as `resolve_confirmation` except the age."""
        return await self._settle(key, user_id, ConfirmationState.CANCELLED, None)

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
        rows = [_insert_params(entry, created_at=now, final=final) for entry in entries]

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

    async def _complete(self, completions: Sequence[tuple[int, _Completion]]) -> None:
        if not completions:
            return
        now = self._clock()
        rows = [
            (
                c.outcome.value,
                now,
                c.tencent_request_id,
                c.error_code,
                c.error_info,
                c.latency_ms,
                _to_json(c.previous, "previous"),
                c.detail,
                row_id,
            )
            for row_id, c in completions
        ]

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
                    f"SELECT {_CONFIRMATION_COLUMNS} FROM confirmations WHERE key = ?",  # noqa: S608
                    (key,),
                ).fetchone()
                if row is None:
                    return ConfirmationStatus.NOT_FOUND, None
                prompt = Confirmation(*row)
                if prompt.user_id != user_id:
                    return ConfirmationStatus.WRONG_USER, prompt
                if prompt.state == ConfirmationState.EXPIRED:
                    return ConfirmationStatus.EXPIRED, prompt
                if prompt.state != ConfirmationState.PENDING:
                    return ConfirmationStatus.ALREADY_RESOLVED, prompt
                expired = ttl_s is not None and now - prompt.created_at > ttl_s
                state = ConfirmationState.EXPIRED if expired else to
                conn.execute(
                    "UPDATE confirmations SET state = ?, resolved_at = ? "
                    "WHERE key = ? AND state = ?",
                    (state, now, key, ConfirmationState.PENDING),
                )
            status = ConfirmationStatus.EXPIRED if expired else ConfirmationStatus.OK
            return status, replace(prompt, state=state.value)

        return await self._run("settle a confirmation", write)


# -- worker-thread functions (each runs on the store's thread with its connection) -------------


def _connect(target: str, read_only: bool) -> tuple[sqlite3.Connection, int]:
    """Open, configure, migrate and recover; returns the connection and the recovered count."""
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
            return conn, 0
        migrate(conn)
        return conn, _recover(conn)
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


def _recover(conn: sqlite3.Connection) -> int:
    """Mark rows a stopped process left pending as `unknown`; return how many."""
    with _transaction(conn):
        cursor = conn.execute(
            "UPDATE audit_entries SET outcome = ?, detail = ? WHERE outcome = ?",
            (Outcome.UNKNOWN.value, RECOVERED_DETAIL, Outcome.PENDING.value),
        )
    return cursor.rowcount


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


# -- conversions --------------------------------------------------------------------------------


def _insert_params(entry: NewEntry, *, created_at: float, final: bool) -> tuple[Any, ...]:
    values = {f.name: getattr(entry, f.name) for f in fields(NewEntry)}
    values["patch"] = _to_json(entry.patch, "patch")
    values["previous"] = _to_json(entry.previous, "previous")
    values["outcome"] = Outcome(entry.outcome).value
    values["created_at"] = created_at
    values["finished_at"] = created_at if final else None
    return tuple(values[name] for name in _INSERT_COLUMNS)


def _to_json(value: dict[str, Any] | None, what: str) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise AuditError(f"the audit entry's {what} cannot be stored as JSON: {exc}") from exc


def _from_json(text: str | None, row_id: int) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise AuditError(f"audit row {row_id} holds malformed JSON") from exc
    if not isinstance(value, dict):
        raise AuditError(f"audit row {row_id} holds JSON that is not an object")
    return value


def _entry(row: Sequence[Any]) -> AuditEntry:
    values = dict(zip(_ENTRY_COLUMNS, row, strict=True))
    row_id = int(values["id"])
    try:
        values["outcome"] = Outcome(values["outcome"])
    except ValueError as exc:
        raise AuditError(f"audit row {row_id} has an unknown outcome") from exc
    values["patch"] = _from_json(values["patch"], row_id)
    values["previous"] = _from_json(values["previous"], row_id)
    return AuditEntry(**values)
