"""The statements of the audit trail, one-shot claims and confirmation prompts, as transaction
bodies (`bot.audit.sql`) the store runs on either dialect.

Each function returns a generator: `AuditStore` hands it to its dialect's `write` or `read`.
Row times (`created_at`, `finished_at`) are the store's clock, passed in; leases and budgets use
the database's (`$NOW`, in `bot.audit.life`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from bot.audit.records import (
    AuditEntry,
    AuditError,
    Confirmation,
    ConfirmationState,
    ConfirmationStatus,
    NewEntry,
)
from bot.audit.rows import (
    CLAIM_RETENTION_S,
    CONFIRMATION_COLUMNS,
    CONFIRMATION_RETENTION_S,
    INSERT_COLUMNS,
    PROVISIONAL_SQL,
    REFUSED_SQL,
    SELECT_ENTRIES,
    Completion,
    confirmation_from_row,
    entries_query,
    entry_from_row,
    insert_params,
    settle,
)
from bot.audit.sql import Body, Query

_COLUMNS: Final = (*INSERT_COLUMNS, "created_at", "finished_at")
INSERT_ENTRY: Final = (
    f"INSERT INTO audit_entries ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(f'%({c})s' for c in INSERT_COLUMNS)}, %(created_at)s, "
    "CASE WHEN %(final)s THEN %(created_at)s ELSE NULL END) RETURNING id"
)
# Columns in SET expressions read the row's values from before the update, so `outcome` in the
# CASE is the old one: a late completion of a provisional row drops the provisional note.
COMPLETE_ENTRY: Final = f"""
    UPDATE audit_entries
       SET outcome = %(outcome)s, finished_at = %(finished_at)s,
           tencent_request_id = %(tencent_request_id)s, error_code = %(error_code)s,
           error_info = %(error_info)s, latency_ms = %(latency_ms)s,
           previous = COALESCE(%(previous)s, previous),
           detail = COALESCE(%(detail)s, CASE WHEN outcome = 'pending' THEN detail ELSE NULL END)
     WHERE id = %(id)s AND outcome IN ({PROVISIONAL_SQL})
 RETURNING id
"""  # noqa: S608
_ROWS_OF_REQUESTS: Final = f"{SELECT_ENTRIES} WHERE request_key $IN(keys) ORDER BY id"


def insert_entries(entries: Sequence[NewEntry], *, final: bool, now: float) -> Body[list[int]]:
    """Write rows (pending, or `final` ones finished at `now`); their ids in order."""
    if not entries:
        return []
    many = [{**insert_params(e, final=final), "created_at": now} for e in entries]
    result = yield Query(INSERT_ENTRY, many=many)
    if len(result.rows) != len(entries):
        raise AuditError("the database returned no id for a new audit row")
    return [int(row[0]) for row in result.rows]


def complete_entries(
    completions: Sequence[tuple[int, Completion]], *, now: float
) -> Body[list[int]]:
    """Complete rows (see `AuditStore.complete`); the ids that could not be (missing, or with
    the call's own outcome already)."""
    if not completions:
        return []
    many = [{**c.params(row_id), "finished_at": now} for row_id, c in completions]
    result = yield Query(COMPLETE_ENTRY, many=many)
    done = {int(row[0]) for row in result.rows}
    return [row_id for row_id, _ in completions if row_id not in done]


def rows_of(keys: Sequence[str]) -> Body[list[AuditEntry]]:
    """Every row of these requests, in id order."""
    result = yield Query(_ROWS_OF_REQUESTS, {"keys": list(keys)})
    return [entry_from_row(row) for row in result.rows]


def get_entry(row_id: int) -> Body[AuditEntry | None]:
    """The row with this id, or None."""
    result = yield Query(f"{SELECT_ENTRIES} WHERE id = %(id)s", {"id": row_id})
    row = result.one()
    return None if row is None else entry_from_row(row)


def query_entries(
    *, room: str | None, user: str | None, since: float | None, limit: int
) -> Body[list[AuditEntry]]:
    """Up to `limit` rows, newest first (see `AuditStore.query`)."""
    sql, params = entries_query(room=room, user=user, since=since, limit=limit)
    result = yield Query(sql, params)
    return [entry_from_row(row) for row in result.rows]


def room_trail(room_id: str, limit: int) -> Body[list[AuditEntry]]:
    """Up to `limit` rows of `room_id` that say something about its settings, newest first."""
    result = yield Query(
        f"{SELECT_ENTRIES} WHERE room_id = %(room)s "
        "AND (patch IS NOT NULL OR previous IS NOT NULL) "
        f"AND outcome NOT IN ({REFUSED_SQL}) ORDER BY id DESC LIMIT %(limit)s",
        {"room": room_id, "limit": limit},
    )
    return [entry_from_row(row) for row in result.rows]


# -- claims -----------------------------------------------------------------------------------


def claim(key: str, now: float) -> Body[bool]:
    """Claim `key` once (a key older than the retention is claimed afresh); True if this did."""
    cutoff = now - CLAIM_RETENTION_S
    # Pruning never waits: rows another replica is already deleting are skipped.
    yield Query(
        "DELETE FROM claims WHERE key IN (SELECT key FROM claims WHERE claimed_at < %(cutoff)s "
        "LIMIT 1000 $SKIP_LOCKED)",
        {"cutoff": cutoff},
    )
    # A concurrent claim of the same key waits for this one and then finds it: of any number
    # of replicas exactly one inserts (or revives a forgotten claim).
    result = yield Query(
        "INSERT INTO claims (key, claimed_at) VALUES (%(key)s, %(now)s) "
        "ON CONFLICT (key) DO UPDATE SET claimed_at = excluded.claimed_at "
        "WHERE claims.claimed_at < %(cutoff)s RETURNING key",
        {"key": key, "now": now, "cutoff": cutoff},
    )
    return bool(result.rows)


def claimed(keys: Sequence[str], now: float) -> Body[frozenset[str]]:
    """Those of `keys` claimed now (within the retention)."""
    result = yield Query(
        "SELECT key FROM claims WHERE key $IN(keys) AND claimed_at >= %(cutoff)s",
        {"keys": list(keys), "cutoff": now - CLAIM_RETENTION_S},
    )
    return frozenset(str(key) for (key,) in result.rows)


# -- confirmation prompts ---------------------------------------------------------------------


def create_confirmation(
    key: str, *, user_id: str, team_id: str | None, channel_id: str | None, text: str, now: float
) -> Body[str]:
    """Store a prompt awaiting `user_id`'s click (and forget prompts past their retention)."""
    yield Query(
        "DELETE FROM confirmations WHERE key IN (SELECT key FROM confirmations "
        "WHERE created_at < %(cutoff)s LIMIT 1000 $SKIP_LOCKED)",
        {"cutoff": now - CONFIRMATION_RETENTION_S},
    )
    values: dict[str, Any] = {
        "key": key,
        "user_id": user_id,
        "team_id": team_id,
        "channel_id": channel_id,
        "text": text,
        "created_at": now,
        "state": ConfirmationState.PENDING.value,
    }
    yield Query(
        f"INSERT INTO confirmations ({CONFIRMATION_COLUMNS}) VALUES "  # noqa: S608
        "(%(key)s, %(user_id)s, %(team_id)s, %(channel_id)s, %(text)s, %(created_at)s, "
        "%(state)s)",
        values,
    )
    return key


def settle_confirmation(
    key: str, user_id: str, to: ConfirmationState, ttl_s: float | None, now: float
) -> Body[tuple[ConfirmationStatus, Confirmation | None]]:
    """Check and settle a prompt, atomically: the row is locked (PostgreSQL: `FOR UPDATE`, so
    a concurrent click on another replica waits, then sees what this one wrote; SQLite: the
    write transaction holds the database)."""
    result = yield Query(
        f"SELECT {CONFIRMATION_COLUMNS} FROM confirmations WHERE key = %(key)s "  # noqa: S608
        "$FOR_UPDATE",
        {"key": key},
    )
    row = result.one()
    if row is None:
        return ConfirmationStatus.NOT_FOUND, None
    prompt = confirmation_from_row(row)
    status, state = settle(prompt, user_id, to, ttl_s, now)
    if state is None:
        return status, prompt
    yield Query(
        "UPDATE confirmations SET state = %(state)s, resolved_at = %(now)s "
        "WHERE key = %(key)s AND state = %(pending)s",
        {"state": state.value, "now": now, "key": key, "pending": ConfirmationState.PENDING.value},
    )
    return status, replace(prompt, state=state.value)
