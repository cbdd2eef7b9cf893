"""The audit store's interface, and `open_store`, which picks the backend from the target.

`AuditStore` is what the rest of roombot annotates with and calls. Two implementations:

* `SqliteAuditStore` (`bot.audit.sqlite`) — one file, one process (the embedded default);
* `PostgresAuditStore` (`bot.audit.postgres`) — one database shared by any number of replicas.

Both keep the same promises:

* the trail: every request is written as `pending` rows *before* the Room Engine call and
  completed after it, so a stop mid-call leaves a visible row rather than nothing;
* one-shot claims (Slack retries, double clicks) and confirmation prompts, atomic across every
  store on the same database;
* leases: a replica takes a lease on each request it carries out (`take_lease`, before `begin`),
  renews all of its leases on a heartbeat (`renew_leases`) and releases each when done
  (`release_lease`). A lease not renewed for `lease_s` has expired; `claim_expired_leases`
  hands each expired one, with its rows and delivery context, to exactly one survivor
  (`bot.takeover` then reads the rooms and says what happened);
* the Room Engine rate budget every replica on the database shares (`rate_budget`).

Failures are `AuditError` with one-line messages that never carry a stored value or a password.
Arguments that are wrong whatever the database holds raise `ValueError`/`TypeError` first.
"""

from __future__ import annotations

import abc
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from bot.audit.records import (
    AuditEntry,
    Confirmation,
    ConfirmationState,
    ConfirmationStatus,
    Lease,
    NewEntry,
    Outcome,
    StrandedRequest,
)
from bot.audit.rows import Completion, check_new_entries
from bot.defaults import CONFIRMATION_TTL_S
from bot.dsn import DatabaseUrl, is_database_url

if TYPE_CHECKING:
    from bot.tencent.ratelimit import CallBudget

#: The `detail` of rows found pending when a SQLite store is opened.
RECOVERED_DETAIL: Final = "process stopped before the outcome was recorded"
#: How long a confirmation prompt may wait for its click by default.
DEFAULT_CONFIRMATION_TTL_S: Final = CONFIRMATION_TTL_S
#: How long a lease lives without renewal (`ROOMBOT_LEASE_S`'s default).
DEFAULT_LEASE_S: Final = 30.0
#: Rows still pending this long after they were written, with no lease on their request (a
#: code path that forgot `take_lease`), are taken over like an expired lease: never silence.
UNLEASED_GRACE_S: Final = 300.0

#: What `open_store` (and `AuditStore.open`) accept: a SQLite path or a PostgreSQL URL.
StoreTarget = str | Path | DatabaseUrl


def default_owner() -> str:
    """An owner id unique to this process: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


async def open_store(
    target: StoreTarget,
    *,
    clock: Callable[[], float] = time.time,
    read_only: bool = False,
    owner: str | None = None,
    lease_s: float = DEFAULT_LEASE_S,
) -> AuditStore:
    """Open the audit store at `target`: a `DatabaseUrl` or a string starting with
    `postgresql://` / `postgres://` opens `PostgresAuditStore`, anything else is a SQLite path
    (":memory:" included) for `SqliteAuditStore`.

    A writable store migrates the schema first (one step at a time, under a lock, so stores
    opening together apply each step once). With `read_only` nothing is created, migrated or
    recovered, the schema must be current, and every write raises `AuditError`.
    `clock` gives the Unix seconds of the trail's timestamps (leases and the rate budget use the
    database's clock on PostgreSQL). `owner` names this replica in leases (default: host, pid and
    a random suffix). `lease_s` is how long a lease lives without renewal.
    """
    if lease_s <= 0:
        raise ValueError("lease_s must be positive")
    owner = owner or default_owner()
    if isinstance(target, DatabaseUrl) or (isinstance(target, str) and is_database_url(target)):
        from bot.audit.postgres import PostgresAuditStore

        url = target if isinstance(target, DatabaseUrl) else DatabaseUrl(target)
        return await PostgresAuditStore.connect(
            url, clock=clock, read_only=read_only, owner=owner, lease_s=lease_s
        )
    from bot.audit.sqlite import SqliteAuditStore

    return await SqliteAuditStore.connect(
        target, clock=clock, read_only=read_only, owner=owner, lease_s=lease_s
    )


class AuditStore(abc.ABC):
    """The audit trail, claims, confirmation prompts, leases and the shared rate budget.

    Open with `await AuditStore.open(target)` (the same as `open_store`); `close()` when done, or
    `async with`. Safe to share between the tasks of one event loop.
    """

    #: How many rows were found pending, and marked `unknown`, when this store was opened (SQLite,
    #: whose single process means any pending row at start-up is from a stopped one; always 0 on
    #: PostgreSQL, where survivors go by leases instead).
    recovered_unknown: int = 0
    #: The requests that were recovered at opening (SQLite only), held by this store's owner:
    #: tell their threads, then `release_lease` each. Always empty on PostgreSQL.
    recovered: tuple[StrandedRequest, ...] = ()

    @classmethod
    async def open(
        cls,
        target: StoreTarget,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
        owner: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> AuditStore:
        """`open_store(target, ...)`: the backend follows from the target (see there)."""
        return await open_store(
            target, clock=clock, read_only=read_only, owner=owner, lease_s=lease_s
        )

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
    @abc.abstractmethod
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""

    @property
    @abc.abstractmethod
    def owner(self) -> str:
        """This replica's id in leases."""

    @property
    @abc.abstractmethod
    def lease_s(self) -> float:
        """How long this store's leases live without renewal."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the store is, for people: a path, or the URL with its password masked."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection(s); idempotent. Later calls raise `AuditError`."""

    # -- the audit trail ------------------------------------------------------------------------

    async def begin(self, entries: Sequence[NewEntry]) -> list[int]:
        """Write `pending` rows before the Room Engine call, in one transaction; ids in order."""
        check_new_entries(entries, final=False)
        return await self._insert(entries, final=False)

    async def record(self, entries: Sequence[NewEntry]) -> list[int]:
        """Write rows whose outcome is already known (denied, invalid, dry_run, ...) in one
        transaction; `finished_at` equals `created_at`. Returns the ids in order."""
        check_new_entries(entries, final=True)
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
        await self._complete([(row_id, completion)])

    async def complete_many(self, updates: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """`complete` for many rows in one transaction; each update is (row id, complete's
        keyword arguments). Rows that can be completed are, even if some cannot; those then
        raise one `AuditError` naming them."""
        await self._complete([(row_id, Completion(**kwargs)) for row_id, kwargs in updates])

    @abc.abstractmethod
    async def _insert(self, entries: Sequence[NewEntry], *, final: bool) -> list[int]:
        """The backend's write of checked rows (`final`: already finished), one transaction."""

    @abc.abstractmethod
    async def _complete(self, completions: Sequence[tuple[int, Completion]]) -> None:
        """The backend's completion of rows, one transaction (see `complete_many`)."""

    @abc.abstractmethod
    async def get(self, row_id: int) -> AuditEntry | None:
        """The row with this id, or None."""

    @abc.abstractmethod
    async def rows_for_request(self, request_key: str) -> list[AuditEntry]:
        """Every row of one request, in the order they were written."""

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def room_trail(self, room_id: str, *, limit: int = 100) -> list[AuditEntry]:
        """Up to `limit` rows of `room_id`, newest first, that say something about its settings:
        those with a `patch` or `previous` values, except rows of requests that called nothing
        (`REFUSED_OUTCOMES`). `bot.callbacks` folds them into what roombot last knew of the room.
        """

    # -- claims ---------------------------------------------------------------------------------

    @abc.abstractmethod
    async def claim(self, key: str) -> bool:
        """True only the first time `key` is claimed, by any store on this database (for a day).

        For Slack `event_id` de-duplication and "a double click acts once", across replicas.
        """

    @abc.abstractmethod
    async def claimed(self, keys: Sequence[str]) -> frozenset[str]:
        """Those of `keys` that are claimed now (by any store on this database; a claim is
        forgotten after a day, as in `claim`). Reads only: it claims nothing."""

    # -- confirmation prompts -------------------------------------------------------------------

    @abc.abstractmethod
    async def create_confirmation(
        self, *, user_id: str, team_id: str | None, channel_id: str | None, text: str
    ) -> str:
        """Store a prompt awaiting `user_id`'s click; returns its key (url-safe, 32 chars), the
        only thing the buttons need to carry."""

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

    @abc.abstractmethod
    async def _settle(
        self, key: str, user_id: str, to: ConfirmationState, ttl_s: float | None
    ) -> tuple[ConfirmationStatus, Confirmation | None]:
        """The backend's check-and-settle of a prompt, atomic across replicas (`ttl_s` None:
        no age limit)."""

    # -- leases ---------------------------------------------------------------------------------

    @abc.abstractmethod
    async def take_lease(self, request_key: str, context: Mapping[str, Any]) -> Lease:
        """Hold `request_key` for this owner for `lease_s`, with the `context` (JSON-ready) a
        survivor needs to report in the request's original place. Take it before `begin()`.

        Taking it again as its holder renews it and replaces the context (e.g. once the parent
        message exists). Raises `AuditError` if another owner holds it.
        """

    @abc.abstractmethod
    async def renew_leases(self) -> frozenset[str]:
        """Push back the expiry of every lease this owner holds (the heartbeat: call it every
        `lease_s / 3` or so); returns the request keys still held. A key missing from the answer
        was taken over by a survivor: its outcome is being reported by someone else."""

    @abc.abstractmethod
    async def release_lease(self, request_key: str) -> bool:
        """Drop this owner's lease on `request_key` (the request is finished and reported).
        False when this owner no longer held it."""

    @abc.abstractmethod
    async def get_lease(self, request_key: str) -> Lease | None:
        """The lease on `request_key`, whoever holds it, or None."""

    @abc.abstractmethod
    async def claim_expired_leases(self, *, limit: int = 10) -> list[StrandedRequest]:
        """Take over up to `limit` expired leases (oldest expiry first), each by exactly one of
        the stores asking at once: each becomes this owner's lease for `lease_s` (so if this
        replica stops too, another survivor gets it later) and comes back with its rows.
        Report each, then `release_lease` it. Leases still alive are never touched.

        A request with rows pending for over `UNLEASED_GRACE_S` (by the store's clock) and no
        lease at all is given an expired one first, so it is found too (with `previous_owner`
        None and an empty context).
        """

    # -- the shared rate budget -----------------------------------------------------------------

    @abc.abstractmethod
    async def end_rate_slots_of(self, owner: str) -> int:
        """End every rate-budget slot granted to `owner` whose call never reported its end: that
        replica stopped (a survivor claimed its expired lease), so its calls are over. Each
        then counts one more window, as any ended call does. Returns how many (always 0 on
        SQLite, whose budget is the process's own)."""

    @abc.abstractmethod
    def rate_budget(self, rate_per_second: float, *, burst: int | None = None) -> CallBudget:
        """The Room Engine rate budget that every store on this database shares: at most
        `floor(rate_per_second)` call starts in any one-second window, all replicas together.
        (SQLite, one process: the process's `RateBudget`.) Same `acquire()`/`slot()` as
        `bot.tencent.ratelimit.RateBudget`."""
