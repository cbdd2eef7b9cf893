"""What the audit store needs of a database: the small part that differs between SQLite and
PostgreSQL.

A `Dialect` runs transaction bodies (`bot.audit.sql`): `write` in one write transaction, `read`
for reads. It spells the SQL markers its own way, turns its driver's errors into `AuditError`
(one line, no stored value, no password), and hands out the rate budget that fits it. Everything
else (every statement, every decision between statements) is in `bot.audit.store`, once.

Two implementations, opened by `bot.audit.factory.open_store`:
`bot.audit.sqlite_dialect.SqliteDialect` and `bot.audit.postgres_dialect.PostgresDialect`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from bot.audit.sql import BodyFactory, Query
from bot.budget import CallBudget, RateLimits

_T = TypeVar("_T")


class RateBudgets(CallBudget, RateLimits, Protocol):
    """A rate budget per API that callbacks can halve: what `rate_budget` hands out."""


@runtime_checkable
class BudgetRider(Protocol):
    """A rate budget kept in the store's database whose work rides along with the store's own
    transactions (`bot.audit.budget.SharedRateBudget`)."""

    def prefetch_queries(self, wanted: Mapping[str, int]) -> list[tuple[str, Query]]:
        """The statements reserving slots for a request's first calls (by API), each with its
        API."""

    def accept(self, api: str, rows: Sequence[tuple[Any, ...]], sent: float) -> None:
        """Take the slots one of those statements granted for `api`."""

    def ends_query(self) -> tuple[Query, list[tuple[int, float]]] | None:
        """The statement writing waiting call ends, and the ends it takes (or None)."""

    def restore_ends(self, batch: list[tuple[int, float]]) -> None:
        """Take back ends a failed transaction did not write."""

    async def warm(self) -> None:
        """Open its own connections now (a server's start), not at their first use."""


class Dialect(abc.ABC):
    """One database, as the store sees it."""

    #: "sqlite" or "postgresql".
    name: Literal["sqlite", "postgresql"]
    #: True when every write is refused (`roombot audit`, health checks).
    read_only: bool

    @abc.abstractmethod
    async def write(self, action: str, body: BodyFactory[_T]) -> _T:
        """Run `body` in one write transaction; its value, or `AuditError` ("the audit store
        could not `action`: ...") with nothing written. Other exceptions from the body roll
        back and propagate."""

    @abc.abstractmethod
    async def read(self, action: str, body: BodyFactory[_T]) -> _T:
        """Run a body that only reads; its value, or `AuditError`."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the database is, for people: a path, or the URL with its password masked."""

    @abc.abstractmethod
    def rate_budget(
        self, rate_per_second: float, *, burst: int | None, owner: str, app: str | None
    ) -> RateBudgets:
        """The Room Engine rate budget this database's users share, one per API of app `app`
        (SQLite: the process's own)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection(s); idempotent. Later calls raise `AuditError`."""
