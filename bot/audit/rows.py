"""Rows as both backends store them: column lists, argument checks, and conversions between the
record types and database values (JSON as text, outcomes as their string values).

Both stores use these, so a row reads back the same from SQLite and PostgreSQL and `roombot
audit` prints the same either way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from bot.audit.records import (
    PROVISIONAL_OUTCOMES,
    REFUSED_OUTCOMES,
    AuditEntry,
    AuditError,
    Confirmation,
    ConfirmationState,
    ConfirmationStatus,
    NewEntry,
    Outcome,
    RequestRecord,
    RequestState,
)

# Column names are the dataclass field names, so rows map to entries by position.
ENTRY_COLUMNS: Final = tuple(f.name for f in fields(AuditEntry))
INSERT_COLUMNS: Final = tuple(f.name for f in fields(NewEntry))
CONFIRMATION_COLUMNS: Final = "key, user_id, team_id, channel_id, text, created_at, state"
REQUEST_COLUMNS: Final = tuple(f.name for f in fields(RequestRecord))
#: Every request column, for a SELECT (or RETURNING) whose rows `request_from_row` reads.
REQUEST_SELECT: Final = ", ".join(REQUEST_COLUMNS)
#: The outcomes `complete()` may replace, as SQL string literals for an `IN (...)` list.
PROVISIONAL_SQL: Final = ", ".join(f"'{o.value}'" for o in sorted(PROVISIONAL_OUTCOMES))
#: The outcomes `room_trail()` leaves out, as SQL string literals for a `NOT IN (...)` list.
REFUSED_SQL: Final = ", ".join(f"'{o.value}'" for o in sorted(REFUSED_OUTCOMES))
#: Claims older than this are pruned; a key may be claimed again after it.
CLAIM_RETENTION_S: Final = 86_400.0
#: Confirmation prompts older than this are forgotten (far beyond any sensible TTL).
CONFIRMATION_RETENTION_S: Final = 86_400.0


@dataclass(frozen=True)
class Completion:
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

    def params(self, row_id: int) -> dict[str, Any]:
        """The named parameters of the completion UPDATE (`COMPLETE_ENTRY`)."""
        return {
            "outcome": self.outcome.value,
            "tencent_request_id": self.tencent_request_id,
            "error_code": self.error_code,
            "error_info": self.error_info,
            "latency_ms": self.latency_ms,
            "previous": to_json(self.previous, "previous"),
            "detail": self.detail,
            "id": row_id,
        }


def check_new_entries(entries: Sequence[NewEntry], *, final: bool) -> None:
    """`begin()` writes pending rows only, `record()` finished ones only (ValueError otherwise)."""
    for entry in entries:
        pending = Outcome(entry.outcome) is Outcome.PENDING
        if final and pending:
            raise ValueError("record() writes finished rows; use begin() for pending ones")
        if not final and not pending:
            raise ValueError(f"begin() writes pending rows; got outcome {entry.outcome!s}")


def insert_params(entry: NewEntry, *, final: bool) -> dict[str, Any]:
    """An entry's values as the named parameters of `INSERT_ENTRY` (`created_at` is the
    database's clock; `final` rows are finished at that same moment)."""
    values = {f.name: getattr(entry, f.name) for f in fields(NewEntry)}
    values["patch"] = to_json(entry.patch, "patch")
    values["previous"] = to_json(entry.previous, "previous")
    values["outcome"] = Outcome(entry.outcome).value
    values["final"] = final
    return values


def to_json(value: dict[str, Any] | None, what: str) -> str | None:
    """A dict as compact, key-sorted JSON text (None stays None); `AuditError` if it cannot be."""
    if value is None:
        return None
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise AuditError(f"the audit entry's {what} cannot be stored as JSON: {exc}") from exc


def from_json(text: str | None, where: str) -> dict[str, Any] | None:
    """A stored JSON object back as a dict; `AuditError` naming `where` if it is not one."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise AuditError(f"{where} holds malformed JSON") from exc
    if not isinstance(value, dict):
        raise AuditError(f"{where} holds JSON that is not an object")
    return value


def entry_from_row(row: Sequence[Any]) -> AuditEntry:
    """A stored row (columns in `ENTRY_COLUMNS` order) as an `AuditEntry`."""
    values = dict(zip(ENTRY_COLUMNS, row, strict=True))
    row_id = int(values["id"])
    try:
        values["outcome"] = Outcome(values["outcome"])
    except ValueError as exc:
        raise AuditError(f"audit row {row_id} has an unknown outcome") from exc
    values["id"] = row_id
    values["patch"] = from_json(values["patch"], f"audit row {row_id}")
    values["previous"] = from_json(values["previous"], f"audit row {row_id}")
    return AuditEntry(**values)


def confirmation_from_row(row: Sequence[Any]) -> Confirmation:
    """A stored prompt (columns in `CONFIRMATION_COLUMNS` order) as a `Confirmation`."""
    return Confirmation(*row)


def request_from_row(row: Sequence[Any]) -> RequestRecord:
    """A stored request (columns in `REQUEST_COLUMNS` order) as a `RequestRecord`."""
    values = dict(zip(REQUEST_COLUMNS, row, strict=True))
    key = values["request_key"]
    try:
        values["state"] = RequestState(values["state"])
    except ValueError as exc:
        raise AuditError(f"request {key} has an unknown state") from exc
    values["plan"] = from_json(values["plan"], f"the plan of request {key}") or {}
    values["reply"] = from_json(values["reply"], f"the reply address of request {key}") or {}
    for name in ("created_at", "updated_at"):
        values[name] = float(values[name])
    for name in ("run_after", "lease_until", "expires_at", "decided_at"):
        values[name] = None if values[name] is None else float(values[name])
    values["fence"] = int(values["fence"])
    values["takeovers"] = int(values["takeovers"])
    return RequestRecord(**values)


def json_text(value: dict[str, Any], what: str) -> str:
    """A JSON-ready dict as JSON text; `AuditError` naming `what` if it is not JSON-ready."""
    text = to_json(dict(value), what)
    assert text is not None
    return text


def settle(
    prompt: Confirmation,
    user_id: str,
    to: ConfirmationState,
    ttl_s: float | None,
    now: float,
) -> tuple[ConfirmationStatus, ConfirmationState | None]:
    """What resolving or cancelling `prompt` means: the status, and the state to store (None when
    nothing changes). Shared by both backends, which call it with the row locked."""
    if prompt.user_id != user_id:
        return ConfirmationStatus.WRONG_USER, None
    if prompt.state == ConfirmationState.EXPIRED:
        return ConfirmationStatus.EXPIRED, None
    if prompt.state != ConfirmationState.PENDING:
        return ConfirmationStatus.ALREADY_RESOLVED, None
    if ttl_s is not None and now - prompt.created_at > ttl_s:
        return ConfirmationStatus.EXPIRED, ConfirmationState.EXPIRED
    return ConfirmationStatus.OK, to


#: Every audit column, for a SELECT whose rows `entry_from_row` reads (both backends).
SELECT_ENTRIES: Final = f"SELECT {', '.join(ENTRY_COLUMNS)} FROM audit_entries"  # noqa: S608


def entries_query(
    *,
    room: str | None,
    user: str | None,
    since: float | None,
    limit: int,
) -> tuple[str, dict[str, Any]]:
    """The SQL and named parameters of `AuditStore.query`: up to `limit` rows, newest first,
    for this room and/or user, since `since`."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    clauses: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    for column, value, test in (
        ("room_id", room, "="),
        ("user_id", user, "="),
        ("created_at", since, ">="),
    ):
        if value is not None:
            clauses.append(f"{column} {test} %({column})s")
            params[column] = value
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"{SELECT_ENTRIES}{where} ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
    return sql, params
