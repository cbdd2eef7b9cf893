"""What the audit store holds: entries (one row per room per request), confirmation prompts,
leases on requests being carried out, and the one error type every store operation raises.
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
    # A survivor's verdict on a request whose replica stopped mid-call: it read the room back.
    IN_PLACE = "in_place"  # the room holds the values the request set
    NOT_APPLIED = "not_applied"  # the room does not hold them (offer Retry)


#: Outcomes of requests that called nothing: their rows say nothing about a room's settings.
REFUSED_OUTCOMES: frozenset[Outcome] = frozenset(
    {Outcome.DENIED, Outcome.INVALID, Outcome.DRY_RUN, Outcome.CANCELLED}
)


#: Outcomes that are a guess or a later reading rather than the call's own answer: `complete()`
#: may still replace them with the truth when the call that was thought lost does report back.
PROVISIONAL_OUTCOMES: frozenset[Outcome] = frozenset(
    {Outcome.PENDING, Outcome.UNKNOWN, Outcome.IN_PLACE, Outcome.NOT_APPLIED}
)


class Source(StrEnum):
    """Where a request came from (`NewEntry.source` takes these; any string is stored)."""

    SLASH = "slash"
    MENTION = "mention"
    BUTTON = "button"  # a button on a message, a room card or the App Home tab
    CONSOLE = "console"
    MODAL = "modal"  # the form `/room` opens when typed without text
    HOME = "home"  # the App Home tab being opened (nothing is requested by that alone)
    #: A change made outside roombot, reported by a Room Engine callback (`bot.callbacks`).
    TENCENT = "tencent"


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


@dataclass(frozen=True)
class Lease:
    """A replica's claim on a request it is carrying out.

    `owner` is the holding store's `owner` id; `context` is what the adapter stored to report in
    the request's original place (channel, thread, response_url...), opaque to the store.
    `expires_at` is Unix seconds on the database's clock (PostgreSQL) or the store's (SQLite);
    `takeovers` counts how many times survivors have claimed it.
    """

    request_key: str
    owner: str
    context: dict[str, Any]
    taken_at: float
    expires_at: float
    takeovers: int = 0


@dataclass(frozen=True)
class StrandedRequest:
    """A request whose replica stopped before finishing it, now held by the store that found it.

    `rows` are all its audit rows in id order (`unsettled_rows` are the ones to verify);
    `context` and `previous_owner` come from its lease, and are `{}` and None when it had none
    (rows written without `take_lease`, or by a version without leases); the rows' `channel_id`
    is then all there is to report to.
    `takeovers` counts this claim too.
    """

    request_key: str
    previous_owner: str | None
    context: dict[str, Any]
    rows: tuple[AuditEntry, ...]
    takeovers: int = 1

    @property
    def unsettled_rows(self) -> tuple[AuditEntry, ...]:
        """The rows without the call's own answer: pending, unknown, or an earlier survivor's
        verdict (that survivor may have stopped before reporting it)."""
        return tuple(r for r in self.rows if r.outcome in PROVISIONAL_OUTCOMES)
