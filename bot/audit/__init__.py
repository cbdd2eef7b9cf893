"""The audit store: every request recorded from its receipt to its report, plus the state several
replicas must share (request records with their leases, one-shot claims, confirmation prompts,
the Room Engine rate budget).

- `records`: the data types (`NewEntry`, `AuditEntry`, `Outcome`, `NewRequest`, `RequestRecord`,
  `RequestState`, `Lease`, `TakenRequest`, `Confirmation`...) and the errors (`AuditError` for
  storage problems, `LeaseLost` for a request another replica took over).
- `store`: `AuditStore`, one class for both databases; `factory.open_store` opens it on the
  dialect the target calls for: a SQLite path (`sqlite_dialect`, one worker thread) or a
  `postgresql://` URL (`postgres_dialect`, psycopg's async pool), imported only when used.
- `sql`: transaction bodies as generators of statements, so each is written once; `trail` and
  `life` hold them; `schema`: the one list of migrations both dialects apply.
- `budget`: `SharedRateBudget`, the Room Engine rate budget on PostgreSQL.
- `health`: `check_database`, is a target reachable, migrated and writable (`roombot check`).
- `report`: `parse_since`, `read_entries` and `format_entries`, what `roombot audit` prints.

Import from here: `from bot.audit import AuditStore, NewEntry, Outcome, open_store`.
"""

from bot.audit.factory import StoreTarget, open_store
from bot.audit.records import (
    IN_FLIGHT,
    PROVISIONAL_OUTCOMES,
    AuditEntry,
    AuditError,
    Confirmation,
    ConfirmationState,
    ConfirmationStatus,
    FoundWork,
    Lease,
    LeaseLost,
    NewEntry,
    NewRequest,
    Outcome,
    RequestRecord,
    RequestState,
    Source,
    TakenRequest,
)
from bot.audit.report import NO_ENTRIES, format_entries, parse_since, read_entries
from bot.audit.store import (
    ANY_ADAPTER,
    DEFAULT_CONFIRMATION_TTL_S,
    DEFAULT_LEASE_S,
    AuditStore,
)
from bot.audit.timers import REVERT_KIND

__all__ = [
    "ANY_ADAPTER",
    "DEFAULT_CONFIRMATION_TTL_S",
    "DEFAULT_LEASE_S",
    "IN_FLIGHT",
    "NO_ENTRIES",
    "PROVISIONAL_OUTCOMES",
    "REVERT_KIND",
    "AuditEntry",
    "AuditError",
    "AuditStore",
    "Confirmation",
    "ConfirmationState",
    "ConfirmationStatus",
    "FoundWork",
    "Lease",
    "LeaseLost",
    "NewEntry",
    "NewRequest",
    "Outcome",
    "RequestRecord",
    "RequestState",
    "Source",
    "StoreTarget",
    "TakenRequest",
    "format_entries",
    "open_store",
    "parse_since",
    "read_entries",
]
