"""One way to write a store transaction for both databases: a generator of statements.

A transaction body is a generator function that yields `Query`s and receives each one's
`Result`; what it returns is the transaction's result. It contains no I/O of its own, so the same
body runs on both dialects: SQLite's drives it synchronously on the store's worker thread (the
event loop never waits on the disk), PostgreSQL's drives it asynchronously on a pooled
connection. A body that raises rolls the transaction back.

SQL is written once, in psycopg's named-parameter style (`%(name)s`), with a few markers that
each dialect spells its own way (`translate`):

* `$NOW`: the database's clock in Unix seconds (PostgreSQL's `clock_timestamp()`, the one clock
  every replica shares; SQLite's is the store's clock, so tests can move it);
* `$SKIP_LOCKED` and `$FOR_UPDATE`: `FOR UPDATE SKIP LOCKED` and `FOR UPDATE` on PostgreSQL,
  nothing on SQLite (whose write transactions hold the whole database from their first
  statement);
* `$IN(name)`: membership in the list parameter `name` (`= ANY(...)` / `json_each`).

Why a generator rather than two copies of every transaction: the SQL and the decisions between
statements are the part worth keeping in one place; how a statement reaches the database is
the only part that differs, and it is twenty lines per dialect.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

_T = TypeVar("_T")


@dataclass(frozen=True)
class Query:
    """One statement and its named parameters; with `many`, run once per parameter set (ids of
    `RETURNING` statements come back in order)."""

    sql: str
    params: Mapping[str, Any] = field(default_factory=dict)
    many: Sequence[Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class Result:
    """What a statement gave back: its rows (`RETURNING` or `SELECT`) and how many rows it
    changed (for `many`, the rows of every run, and the total)."""

    rows: list[tuple[Any, ...]]
    rowcount: int

    def one(self) -> tuple[Any, ...] | None:
        """The first row, or None."""
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        """The first column of the first row, or None."""
        return self.rows[0][0] if self.rows else None


#: A transaction body: yields statements, receives their results, returns its value.
Body = Generator[Query, Result, _T]
#: What the store hands a dialect: makes a fresh body (a retry runs a fresh one).
BodyFactory = Callable[[], Body[_T]]

_MARKER: Final = re.compile(r"\$(NOW|SKIP_LOCKED|FOR_UPDATE|IN\((\w+)\))")


def translate(sql: str, *, now: str, locking: bool, in_list: Callable[[str], str]) -> str:
    """`sql` with its markers spelled as one dialect spells them (see the module docstring);
    `locking`: the dialect locks rows (PostgreSQL), else the locking clauses are dropped."""

    def spell(match: re.Match[str]) -> str:
        if match[1] == "NOW":
            return now
        if match[1] == "SKIP_LOCKED":
            return "FOR UPDATE SKIP LOCKED" if locking else ""
        if match[1] == "FOR_UPDATE":
            return "FOR UPDATE" if locking else ""
        return in_list(match[2])

    return _MARKER.sub(spell, sql)


def run_sync(body: Body[_T], execute: Callable[[Query], Result]) -> _T:
    """Drive `body` to its end, executing each statement with `execute` (SQLite's driver)."""
    try:
        query = next(body)
        while True:
            query = body.send(execute(query))
    except StopIteration as stop:
        value: _T = stop.value
        return value
