"""Reading the audit trail back for people and tools: `--since` values, and entries rendered as a
fixed-width table, JSON Lines or CSV (what `roombot audit` prints).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Final

from bot.audit.approvals import approval_summary
from bot.audit.factory import StoreTarget, open_store
from bot.audit.records import AuditEntry

FORMATS: Final = ("table", "jsonl", "csv")
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
    entries, _ = await read_report(path, room=room, user=user, since=since, limit=limit)
    return entries


async def read_report(
    path: StoreTarget,
    *,
    room: str | None = None,
    user: str | None = None,
    since: float | None = None,
    limit: int = 50,
) -> tuple[list[AuditEntry], dict[str, str]]:
    """`read_entries`, and who asked and who approved or denied each of their requests that
    awaited a second person's approval (request key → one line), read-only."""
    async with await open_store(path, read_only=True) as store:
        entries = await store.query(room=room, user=user, since=since, limit=limit)
        decided = await store.approval_decisions([e.request_key for e in entries])
    approvals = {
        key: summary
        for key, record in decided.items()
        if (summary := approval_summary(record)) is not None
    }
    return entries, approvals


def format_entries(
    entries: Sequence[AuditEntry], fmt: str, approvals: Mapping[str, str] | None = None
) -> str:
    """`entries` as `table` (fixed-width, long cells cut with "…"), `jsonl` (one object per
    entry, every field) or `csv` (a header row, every field). No trailing newline; with no
    entries, `table` gives `NO_ENTRIES` and the others an empty string. `approvals` (request
    key → who asked and who approved or denied it) adds an `approval` column (table, csv) or
    field (jsonl) when it names any of the entries' requests.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if not entries:
        return NO_ENTRIES if fmt == "table" else ""
    known = approvals or {}
    shown = {e.request_key: known[e.request_key] for e in entries if e.request_key in known}
    if fmt == "jsonl":
        return "\n".join(
            json.dumps(_with_approval(_record(e), shown), ensure_ascii=False) for e in entries
        )
    if fmt == "csv":
        return _csv(entries, shown)
    return _table(entries, shown)


def _with_approval(record: dict[str, Any], shown: Mapping[str, str]) -> dict[str, Any]:
    approval = shown.get(str(record["request_key"]))
    return record if approval is None else {**record, "approval": approval}


def iso_utc(timestamp: float, *, timespec: str = "seconds") -> str:
    """Unix seconds as an ISO 8601 UTC time ending in `Z`."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def _record(entry: AuditEntry) -> dict[str, Any]:
    """Every field, JSON-ready; times as ISO UTC with milliseconds."""
    record = {name: getattr(entry, name) for name in _ENTRY_FIELDS}
    record["created_at"] = iso_utc(entry.created_at, timespec="milliseconds")
    if entry.finished_at is not None:
        record["finished_at"] = iso_utc(entry.finished_at, timespec="milliseconds")
    record["outcome"] = entry.outcome.value
    return record


def _csv(entries: Sequence[AuditEntry], shown: Mapping[str, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = (*_ENTRY_FIELDS, "approval") if shown else _ENTRY_FIELDS
    writer.writerow(names)
    for entry in entries:
        record = _with_approval(_record(entry), shown)
        if entry.detail is not None:
            record["detail"] = plain_text(entry.detail)
        writer.writerow(_csv_cell(record.get(name)) for name in names)
    return out.getvalue().removesuffix("\n")


# Slack's markup: <#C…|name>, <@U…|name>, <!subteam^S…|@handle>, <!here>, <url|label>, <url>.
_SLACK_MARKUP = re.compile(r"<([#@!])?([^<>|]+)(?:\|([^<>]*))?>")
_CODE_SPAN = re.compile(r"`([^`\n]*)`")


def plain_text(text: str) -> str:
    """`text` (an audit row's `detail`, worded for chat) as plain text for a spreadsheet: code
    spans as 'quotes', mentions as `#name` / `@name`, links as `label (url)`."""

    def markup(match: re.Match[str]) -> str:
        sigil, target, label = match.group(1), match.group(2), match.group(3)
        if sigil == "#":
            return "#" + (label or target)
        if sigil in ("@", "!"):
            shown = label or target.split("^", 1)[-1]
            return shown if shown.startswith("@") else "@" + shown
        return f"{label} ({target})" if label else target

    return _CODE_SPAN.sub(r"'\1'", _SLACK_MARKUP.sub(markup, text))


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


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
