"""The audit trail: every request recorded in SQLite before and after the Room Engine call, plus
the shared state several bot instances need (one-shot claims, confirmation prompts).

- `records`: the data types (`NewEntry`, `AuditEntry`, `Outcome`, `Confirmation`, ...) and
  `AuditError`, the only exception a store operation raises for a storage problem.
- `schema`: connection settings and the ordered migrations (`PRAGMA user_version`).
- `store`: `AuditStore`, all SQLite work on one worker thread.
- `report`: `parse_since` and `format_entries`, what `roombot audit` prints.

Import from here: `from bot.audit import AuditStore, NewEntry, Outcome`.
"""

from bot.audit.records import (
    AuditEntry,
    AuditError,
    Confirmation,
    ConfirmationState,
    ConfirmationStatus,
    NewEntry,
    Outcome,
    Source,
)
from bot.audit.report import NO_ENTRIES, format_entries, parse_since, read_entries
from bot.audit.store import DEFAULT_CONFIRMATION_TTL_S, RECOVERED_DETAIL, AuditStore

__all__ = [
    "DEFAULT_CONFIRMATION_TTL_S",
    "NO_ENTRIES",
    "RECOVERED_DETAIL",
    "AuditEntry",
    "AuditError",
    "AuditStore",
    "Confirmation",
    "ConfirmationState",
    "ConfirmationStatus",
    "NewEntry",
    "Outcome",
    "Source",
    "format_entries",
    "parse_since",
    "read_entries",
]
