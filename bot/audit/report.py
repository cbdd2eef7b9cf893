"""Reading the audit trail back for people and tools: `--since` values, and entries rendered as a
fixed-width table, JSON Lines or CSV (what `roombot audit` prints).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, TextIO

from bot.audit.approvals import approval_summary
from bot.audit.export import (
    EXPORT_FORMATS,
    PAGE_ROWS,
    Exporter,
    iso_utc,
    newest_entries,
    stream_entries,
)
from bot.audit.factory import StoreTarget, open_store
from bot.audit.records import AuditEntry

if TYPE_CHECKING:
    from bot.audit.store import AuditStore

FORMATS: Final = ("table", *EXPORT_FORMATS)
#: What `format_entries(..., "table")` says when there is nothing to show.
NO_ENTRIES: Final = "no entries"

_AGE = re.compile(r"(\d+)([smhdw])", re.IGNORECASE)
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_SINCE_HELP: Final = (
    "expected an age like 90s, 30m, 24h, 7d or 2w, or an ISO date or datetime "
    "such as 2024-05-01 or 2024-05-01T12:00Z"
)
_ENTRY_FIELDS: Final = tuple(f.name for f in fields(AuditEntry))


def parse_since(text: str, *, now: float) -> float:
    """The Unix time `text` means: an age before `now` (`90s`, `30m`, `24h`, `7d`, `2w`) or an
    ISO 8601 date or datetime (UTC unless it carries an offset).

    Raises `ValueError` with a one-line message saying what is accepted.
    """
    raw = text.strip()
    age = _AGE.fullmatch(raw)
    if age:
        return now - int(age[1]) * _UNIT_S[age[2].lower()]
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{_SINCE_HELP}; got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def read_entries(
    path: StoreTarget,
    *,
    room: str | None = None,
    user: str | None = None,
    since: float | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Query the store at `path` (a SQLite path or a PostgreSQL URL) read-only: it is never
    created, migrated or recovered, so reading cannot disturb a running bot. Raises `AuditError`
    if it cannot be read."""
    async with await open_store(path, read_only=True) as store:
        return await store.query(room=room, user=user, since=since, limit=limit)


async def export_to(
    out: TextIO,
    path: StoreTarget,
    fmt: str,
    *,
    room: str | None = None,
    user: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int | None = None,
) -> None:
    """What `roombot audit` prints, written to `out`: the table (the newest `limit` rows, 50 by
    default, newest first), or an export (`md`, `csv`, `jsonl`) of every row of the window,
    oldest first, streamed a page at a time (only the newest `limit` when given). A table with
    no rows says `NO_ENTRIES`; an export with no rows writes nothing."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    async with await open_store(path, read_only=True) as store:
        if fmt == "table":
            entries = await store.query(room=room, user=user, since=since, limit=limit or 50)
            if until is not None:
                entries = [e for e in entries if e.created_at < until]
            approvals = await _approvals(store, entries)
            out.write(format_entries(entries, "table", approvals) + "\n")
            return
        exporter = Exporter(fmt)
        started = False
        if limit is not None:
            batches: AsyncIterator[list[AuditEntry]] = _one(
                await newest_entries(
                    store, room=room, user=user, since=since, until=until, limit=limit
                )
            )
        else:
            batches = _pages(stream_entries(store, room=room, user=user, since=since, until=until))
        async for batch in batches:
            if not batch:
                continue
            if not started:
                out.write(exporter.header())
                started = True
            out.write(exporter.lines(batch, await _approvals(store, batch)))
        out.flush()


async def _approvals(store: AuditStore, entries: Sequence[AuditEntry]) -> dict[str, str]:
    """Who asked and who approved or denied the requests of `entries` that awaited approval
    (request key → one line): one read for the batch."""
    decided = await store.approval_decisions(sorted({e.request_key for e in entries}))
    return {
        key: summary
        for key, record in decided.items()
        if (summary := approval_summary(record)) is not None
    }


async def _one(entries: list[AuditEntry]) -> AsyncIterator[list[AuditEntry]]:
    yield entries


async def _pages(
    entries: AsyncIterator[AuditEntry], size: int = PAGE_ROWS
) -> AsyncIterator[list[AuditEntry]]:
    batch: list[AuditEntry] = []
    async for entry in entries:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    yield batch


def format_entries(
    entries: Sequence[AuditEntry], fmt: str, approvals: Mapping[str, str] | None = None
) -> str:
    """`entries` as `table` (fixed-width, long cells cut with "…"), or one of the export formats
    (`bot.audit.export`: `md`, `jsonl`, `csv`), in the order given. No trailing newline; with no
    entries, `table` gives `NO_ENTRIES` and the others an empty string. `approvals` (request
    key → who asked and who approved or denied it) fills the exports' `approval` column and adds
    one to the table when it names any of the entries' requests.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if not entries:
        return NO_ENTRIES if fmt == "table" else ""
    known = approvals or {}
    if fmt == "table":
        return _table(
            entries,
            {e.request_key: known[e.request_key] for e in entries if e.request_key in known},
        )
    exporter = Exporter(fmt)
    return (exporter.header() + exporter.lines(entries, known)).removesuffix("\n")


# (header, cell, widest allowed, right-aligned). The RequestId is what Tencent support asks for,
# so its cap fits a whole one (`Id-<32 hex>-O-Seq-<n>`).
_COLUMNS: Final[tuple[tuple[str, Callable[[AuditEntry], str], int, bool], ...]] = (
    ("time", lambda e: iso_utc(e.created_at), 20, False),
    ("user", lambda e: e.user_id, 14, False),
    ("source", lambda e: e.source, 8, False),
    ("verb", lambda e: e.verb or "", 14, False),
    ("room", lambda e: e.room_id or "", 24, False),
    ("outcome", lambda e: e.outcome.value, 11, False),
    ("code", lambda e: "" if e.error_code is None else str(e.error_code), 7, True),
    ("request id", lambda e: e.tencent_request_id or "", 48, False),
    ("ms", lambda e: "" if e.latency_ms is None else f"{e.latency_ms:.0f}", 8, True),
)


def _table(entries: Sequence[AuditEntry], shown: Mapping[str, str]) -> str:
    columns = _COLUMNS
    if shown:
        columns = (*columns, ("approval", lambda e: shown.get(e.request_key, ""), 120, False))
    cells = [[_one_line(cell(e)) for _, cell, _, _ in columns] for e in entries]
    widths = [
        min(cap, max(len(header), *(len(row[i]) for row in cells)))
        for i, (header, _, cap, _) in enumerate(columns)
    ]
    rights = [right for *_, right in columns]
    lines = [_line([header for header, *_ in columns], widths, rights)]
    lines += [_line(row, widths, rights) for row in cells]
    return "\n".join(lines)


def _line(cells: Sequence[str], widths: Sequence[int], rights: Sequence[bool]) -> str:
    parts = []
    for text, width, right in zip(cells, widths, rights, strict=True):
        cut = text if len(text) <= width else text[: width - 1] + "…"
        parts.append(cut.rjust(width) if right else cut.ljust(width))
    return "  ".join(parts).rstrip()


def _one_line(text: str) -> str:
    # A cell must not break the table: newlines and tabs become single spaces.
    return " ".join(text.split())
