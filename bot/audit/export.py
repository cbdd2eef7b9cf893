"""Exporting the audit trail for a postmortem or a SIEM (`roombot audit --format md|csv|jsonl`):
rows streamed in pages, oldest first, in constant memory, as Markdown, CSV or JSON Lines.

Streaming is keyset pagination on `(created_at, id)`: each page is one short read that starts
after the last row of the one before, so neither backend holds a cursor (or a transaction, or a
snapshot) open while the output is written, a million rows take the memory of one page, and
every page is a range scan of the time index `audit_entries_time` (tests read the plans).

The columns are `EXPORT_COLUMNS` (JSON Lines and CSV: every one, in this order; Markdown:
`MARKDOWN_COLUMNS`), documented in docs/audit.md; a test pins them, so a change is deliberate.
Text columns carry no Slack markup (`plain_text`), and a CSV cell that a spreadsheet would run
as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) starts with `'`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from bot import metrics
from bot.audit.records import AuditEntry
from bot.audit.rows import ENTRY_COLUMNS, SELECT_ENTRIES, entry_from_row
from bot.audit.sql import Body, Query

if TYPE_CHECKING:
    from bot.audit.store import AuditStore

#: What `roombot audit --format` streams.
EXPORT_FORMATS: Final = ("md", "csv", "jsonl")
#: Every export column, in order (docs/audit.md explains each): the row's, then `approval` (who
#: asked and who approved or denied, for a request that awaited a second person; else empty).
EXPORT_COLUMNS: Final = (*ENTRY_COLUMNS, "approval")
#: The Markdown table's columns: (header, cell).
MARKDOWN_COLUMNS: Final[tuple[tuple[str, Callable[[AuditEntry], str]], ...]] = (
    ("time (UTC)", lambda e: iso_utc(e.created_at)),
    ("request", lambda e: e.request_key),
    ("user", lambda e: e.user_id),
    ("source", lambda e: e.source),
    ("verb", lambda e: e.verb or ""),
    ("room", lambda e: e.room_id or ""),
    ("outcome", lambda e: e.outcome.value),
    ("code", lambda e: "" if e.error_code is None else str(e.error_code)),
    ("RequestId", lambda e: e.tencent_request_id or ""),
    ("reason", lambda e: plain_text(e.reason or "")),
    ("detail", lambda e: plain_text(e.detail or "")),
)
#: Rows per page: one page is what an export holds in memory at a time.
PAGE_ROWS: Final = 2_000
#: The text columns that may carry Slack markup (worded for chat, or typed in Slack).
_TEXT_COLUMNS: Final = ("raw_text", "reason", "detail", "error_info")
#: A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


async def stream_entries(
    store: AuditStore,
    *,
    room: str | None = None,
    rooms: Iterable[str] | None = None,
    user: str | None = None,
    since: float | None = None,
    until: float | None = None,
    page_rows: int = PAGE_ROWS,
) -> AsyncIterator[AuditEntry]:
    """Every row for this room (or any of `rooms`) and/or user, created in `[since, until)`,
    oldest first (by time, then id), read a page of `page_rows` at a time."""
    if page_rows < 1:
        raise ValueError(f"page_rows must be at least 1, got {page_rows}")
    wanted = sorted({*(rooms or ()), *([room] if room is not None else [])})
    after: tuple[float, int] | None = None
    while True:
        body = partial(
            _page, rooms=wanted, user=user, since=since, until=until, after=after, limit=page_rows
        )
        page = await store.dialect.read("export entries", body)
        metrics.count_store_transaction("read")
        for entry in page:
            yield entry
        if len(page) < page_rows:
            return
        last = page[-1]
        after = (last.created_at, last.id)


def window_sql(
    *,
    rooms: list[str],
    user: str | None,
    since: float | None,
    until: float | None,
    after: tuple[float, int] | None,
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (with its parameters) of one page of a window: shared by the export and
    the timeline, and what the EXPLAIN tests look at."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if rooms:
        clauses.append("room_id $IN(rooms)")
        params["rooms"] = rooms
    if user is not None:
        clauses.append("user_id = %(user)s")
        params["user"] = user
    if since is not None:
        clauses.append("created_at >= %(since)s")
        params["since"] = since
    if until is not None:
        clauses.append("created_at < %(until)s")
        params["until"] = until
    if after is not None:
        # Not a row comparison: spelled so, the time index bounds the scan on both backends
        # (only rows at the very same time as the last one are read again and filtered out).
        clauses.append(
            "created_at >= %(after_at)s AND (created_at > %(after_at)s OR id > %(after_id)s)"
        )
        params["after_at"], params["after_id"] = after
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return where, params


def _page(
    *,
    rooms: list[str],
    user: str | None,
    since: float | None,
    until: float | None,
    after: tuple[float, int] | None,
    limit: int,
) -> Body[list[AuditEntry]]:
    where, params = window_sql(rooms=rooms, user=user, since=since, until=until, after=after)
    sql = f"{SELECT_ENTRIES}{where} ORDER BY created_at, id LIMIT %(limit)s"
    result = yield Query(sql, {**params, "limit": limit})
    return [entry_from_row(row) for row in result.rows]


async def newest_entries(
    store: AuditStore,
    *,
    room: str | None,
    user: str | None,
    since: float | None,
    until: float | None,
    limit: int,
) -> list[AuditEntry]:
    """The newest `limit` rows of the window, oldest first (what `--limit` exports)."""
    where, params = window_sql(
        rooms=[room] if room is not None else [], user=user, since=since, until=until, after=None
    )
    sql = f"{SELECT_ENTRIES}{where} ORDER BY created_at DESC, id DESC LIMIT %(limit)s"

    def body() -> Body[list[AuditEntry]]:
        result = yield Query(sql, {**params, "limit": limit})
        return [entry_from_row(row) for row in reversed(result.rows)]

    metrics.count_store_transaction("read")
    return await store.dialect.read("export entries", body)


_USER_ID: Final = re.compile(r"[UW][A-Z0-9]+")


def check_user_id(text: str) -> str:
    """`text` if it is a Slack user ID (`U…` or `W…`); `ValueError` saying so otherwise (the
    trail keeps IDs, never names, so a name would silently match nothing)."""
    if not _USER_ID.fullmatch(text):
        raise ValueError(
            f"expected a Slack user ID such as U0123ABCD (the trail stores IDs, not names; "
            f"copy it from the user's Slack profile), got {text!r}"
        )
    return text


# -- formats ----------------------------------------------------------------------------------


def iso_utc(timestamp: float, *, timespec: str = "seconds") -> str:
    """Unix seconds as an ISO 8601 UTC time ending in `Z`."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def export_record(entry: AuditEntry, approval: str | None = None) -> dict[str, Any]:
    """Every export column of `entry`, JSON-ready: times as ISO UTC with milliseconds, text
    without Slack markup; `approval` as given."""
    record: dict[str, Any] = {name: getattr(entry, name) for name in ENTRY_COLUMNS}
    record["approval"] = None if approval is None else plain_text(approval)
    record["created_at"] = iso_utc(entry.created_at, timespec="milliseconds")
    if entry.finished_at is not None:
        record["finished_at"] = iso_utc(entry.finished_at, timespec="milliseconds")
    record["outcome"] = entry.outcome.value
    for name in _TEXT_COLUMNS:
        if record[name] is not None:
            record[name] = plain_text(record[name])
    return record


class Exporter:
    """Turns entries into one format's text, a batch at a time: `header()` first (may be
    empty), then `lines(entries)` for each batch. Every line ends with a newline."""

    def __init__(self, fmt: str) -> None:
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")
        self.fmt = fmt

    def header(self) -> str:
        """What comes before the first row."""
        if self.fmt == "csv":
            return _csv_line(EXPORT_COLUMNS)
        if self.fmt == "md":
            heads = [*(h for h, _ in MARKDOWN_COLUMNS), "approval"]
            return f"| {' | '.join(heads)} |\n|{'---|' * len(heads)}\n"
        return ""

    def lines(
        self, entries: Iterable[AuditEntry], approvals: Mapping[str, str] | None = None
    ) -> str:
        """The rows of `entries`; `approvals` (request key → who asked and who decided) fills
        the `approval` column."""
        known = approvals or {}
        if self.fmt == "jsonl":
            return "".join(
                json.dumps(export_record(e, known.get(e.request_key)), ensure_ascii=False) + "\n"
                for e in entries
            )
        if self.fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            for entry in entries:
                record = export_record(entry, known.get(entry.request_key))
                writer.writerow([csv_cell(record[n]) for n in EXPORT_COLUMNS])
            return out.getvalue()
        return "".join(
            f"| {' | '.join(md_cell(cell(e)) for _, cell in MARKDOWN_COLUMNS)}"
            f" | {md_cell(plain_text(known.get(e.request_key, '')))} |\n"
            for e in entries
        )


def _csv_line(cells: Iterable[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


def csv_cell(value: Any) -> str:
    """One CSV cell: JSON for objects, and text a spreadsheet would run as a formula prefixed
    with `'` (so `=HYPERLINK(...)` shows as text)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def md_cell(text: str) -> str:
    """Text fit for one Markdown table cell: one line, `|` escaped."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")


# Slack's markup: <#C…|name>, <@U…|name>, <!subteam^S…|@handle>, <!here>, <url|label>, <url>.
_SLACK_MARKUP: Final = re.compile(r"<([#@!])?([^<>|]+)(?:\|([^<>]*))?>")
_CODE_SPAN: Final = re.compile(r"`([^`\n]*)`")


def plain_text(text: str) -> str:
    """`text` (worded for chat, or typed in Slack) as plain text: code spans as 'quotes', a
    channel as `#general (C123)`, a user as `@U1` (or `@bob (U1)` with a label), a group as
    `@ops`, links as `label (url)`."""

    if "<" not in text and "`" not in text:
        return text

    def markup(match: re.Match[str]) -> str:
        sigil, target, label = match.group(1), match.group(2), match.group(3)
        if sigil == "#":
            return f"#{label} ({target})" if label else "#" + target
        if sigil == "@":
            return f"@{label.lstrip('@')} ({target})" if label else "@" + target
        if sigil == "!":
            shown = label or target.split("^", 1)[-1]
            return shown if shown.startswith("@") else "@" + shown
        return f"{label} ({target})" if label else target

    return _CODE_SPAN.sub(r"'\1'", _SLACK_MARKUP.sub(markup, text))
