"""The audit trail: every request recorded before and after the Room Engine call, plus the state
several replicas must share (one-shot claims, confirmation prompts, leases on requests being
carried out, the Room Engine rate budget).

- `records`: the data types (`NewEntry`, `AuditEntry`, `Outcome`, `Confirmation`, `Lease`,
  `StrandedRequest`...) and `AuditError`, the only exception a store raises for a storage problem.
- `store`: the `AuditStore` interface and `open_store`, which picks the backend by the target:
  a SQLite path (`sqlite`: `SqliteAuditStore`, one worker thread) or a `postgresql://` URL
  (`postgres`: `PostgresAuditStore`, psycopg's async pool), imported only when used.
- `schema` / `pg_schema`: each backend's numbered, forward-only migrations.
- `budget`: `SharedRateBudget`, the Room Engine rate budget on PostgreSQL.
- `heartbeat`: `LeaseHeartbeat`, one task per replica renewing all of its leases.
- `health`: `check_database`, is a target reachable, migrated and writable (`roombot check`).
- `report`: `parse_since`, `read_entries` and `format_entries`, what `roombot audit` prints.

Import from here: `from bot.audit import AuditStore, NewEntry, Outcome, open_store`.
"""

from bot.audit.records import (
    PROVISIONAL_OUTCOMES,
    AuditEntry,
    AuditError,
    Confirmation,
    ConfirmationState,
    ConfirmationStatus,
    Lease,
    NewEntry,
    Outcome,
    Source,
    StrandedRequest,
)
from bot.audit.report import NO_ENTRIES, format_entries, parse_since, read_entries
from bot.audit.store import (
    DEFAULT_CONFIRMATION_TTL_S,
    DEFAULT_LEASE_S,
    RECOVERED_DETAIL,
    AuditStore,
    StoreTarget,
    open_store,
)

__all__ = [
    "DEFAULT_CONFIRMATION_TTL_S",
    "DEFAULT_LEASE_S",
    "NO_ENTRIES",
    "PROVISIONAL_OUTCOMES",
    "RECOVERED_DETAIL",
    "AuditEntry",
    "AuditError",
    "AuditStore",
    "Confirmation",
    "ConfirmationState",
    "ConfirmationStatus",
    "Lease",
    "NewEntry",
    "Outcome",
    "Source",
    "StoreTarget",
    "StrandedRequest",
    "format_entries",
    "open_store",
    "parse_since",
    "read_entries",
]
