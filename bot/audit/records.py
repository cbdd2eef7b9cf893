"""What the audit store holds: entries (one row per room per request), confirmation prompts, and
the one error type every store operation raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.errors import RoombotError


class AuditError(RoombotError):
    """The audit store could not do what was asked (I/O, locking, corruption, a closed store...).

    Every SQLite failure is turned into this; no `sqlite3` exception leaves the store. The message
    is one line and never carries the stored text or a secret.
    """


class Outcome(StrEnum):
    """How a request ended for one room."""

    PENDING = "pending"  # written before the Tencent call; not yet completed
    OK = "ok"
    NOOP = "noop"  # succeeded, but the values were already so
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"  # withdrawn before its call: credentials refused, audit down
    DENIED = "denied"
    INVALID = "invalid"
    DRY_RUN = "dry_run"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # the process stopped before the outcome was recorded


class Source(StrEnum):
    """Where a request came from (`NewEntry.source` takes these; any string is stored)."""

    SLASH = "slash"
    MENTION = "mention"
    BUTTON = "button"
    CONSOLE = "console"


@dataclass(frozen=True)
class NewEntry:
    """What the service knows when it starts a row: one room (or none) of one request."""

    request_key: str
    source: str
    user_id: str
    verb: str | None
    raw_text: str
    room_id: str | None = None
    team_id: str | None = None
    channel_id: str | None = None
    reason: str | None = None
    patch: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None
    outcome: Outcome = Outcome.PENDING
    detail: str | None = None
    undo_of: int | None = None
    error_code: int | None = None
    error_info: str | None = None


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """A stored row: every `NewEntry` field plus what the store and the call added.

    `created_at` and `finished_at` are Unix seconds; `finished_at` is None while the row is
    pending and for rows recovered as `unknown`.
    """

    id: int
    created_at: float
    finished_at: float | None
    request_key: str
    source: str
    user_id: str
    verb: str | None
    raw_text: str
    room_id: str | None
    team_id: str | None
    channel_id: str | None
    reason: str | None
    patch: dict[str, Any] | None
    previous: dict[str, Any] | None
    outcome: Outcome
    detail: str | None
    undo_of: int | None
    error_code: int | None
    error_info: str | None
    tencent_request_id: str | None
    latency_ms: float | None


class ConfirmationState(StrEnum):
    """Where a confirmation prompt is in its life; only `PENDING` can still change."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class ConfirmationStatus(StrEnum):
    """The answer to resolving or cancelling a confirmation prompt."""

    OK = "ok"
    NOT_FOUND = "not_found"
    WRONG_USER = "wrong_user"
    EXPIRED = "expired"
    ALREADY_RESOLVED = "already_resolved"


@dataclass(frozen=True)
class Confirmation:
    """A confirmation prompt as stored; `state` is a `ConfirmationState` value."""

    key: str
    user_id: str
    team_id: str | None
    channel_id: str | None
    text: str
    created_at: float
    state: str
