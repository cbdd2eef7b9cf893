"""What the audit store holds: entries (one row per room per request), confirmation prompts,
request records with their leases, and the error types a store operation raises (`AuditError`
for storage problems, `LeaseLost` when a request's lease is no longer this replica's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


class LeaseLost(RoombotError):
    """This replica no longer holds a request's lease: another replica took it over (this one
    was paused, partitioned, or slow past `ROOMBOT_LEASE_S`). The request is that replica's now;
    this one must write nothing more for it and post nothing about it."""


class RequestState(StrEnum):
    """Where a request is in its life (DESIGN §2.10): `received → [awaiting_approval] →
    [scheduled] → running → done → reported`, or `denied`, `expired`, `cancelled`."""

    RECEIVED = "received"  # on record; no change sent yet (it may be reading rooms)
    AWAITING_APPROVAL = "awaiting_approval"
    SCHEDULED = "scheduled"
    RUNNING = "running"  # its rows are written; changes may be in flight
    DONE = "done"  # every row has its outcome; not yet reported
    REPORTED = "reported"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


#: The states a request is in while a replica carries it out (and holds its lease).
IN_FLIGHT: frozenset[RequestState] = frozenset(
    {RequestState.RECEIVED, RequestState.RUNNING, RequestState.DONE}
)


@dataclass(frozen=True)
class NewRequest:
    """A request as the core first records it (`AuditStore.claim_request`).

    `plan` is what to do and `reply` where to report (both JSON-ready; `reply["adapter"]` names
    the adapter that can deliver it). `dedupe_key`, when given, makes the request once-only: a
    second request with the same key is not recorded (a Slack retry, a replayed command, a
    second click). `run_after` is when it may run, for a request that does not run at once;
    `waiting` the state it waits in when no replica holds it from the start.
    """

    request_key: str
    kind: str
    source: str
    user_id: str
    verb: str | None
    raw_text: str
    plan: dict[str, Any]
    reply: dict[str, Any]
    team_id: str | None = None
    channel_id: str | None = None
    reason: str | None = None
    dedupe_key: str | None = None
    run_after: float | None = None
    #: The state of a request recorded without a holder: `scheduled` by default when it has a
    #: `run_after`, or e.g. `awaiting_approval`.
    waiting: RequestState | None = None
    #: When a request awaiting approval expires (Unix seconds).
    expires_at: float | None = None

    @property
    def adapter(self) -> str:
        """The adapter that delivers this request's messages."""
        return str(self.reply.get("adapter") or "unknown")


@dataclass(frozen=True, kw_only=True)
class RequestRecord:
    """A stored request: every `NewRequest` field, its state and its lease.

    `owner` is the replica holding the lease (None when nobody does), `lease_until` its expiry
    on the database's clock, `fence` the fencing number (it grows at every takeover), and
    `takeovers` how often survivors took it over.
    """

    request_key: str
    dedupe_key: str | None
    state: RequestState
    kind: str
    created_at: float
    updated_at: float
    source: str
    team_id: str | None
    channel_id: str | None
    user_id: str
    verb: str | None
    raw_text: str
    reason: str | None
    plan: dict[str, Any]
    reply: dict[str, Any]
    adapter: str
    run_after: float | None
    owner: str | None
    lease_until: float | None
    fence: int
    takeovers: int
    #: Two-person approval: when a waiting request expires, and the decision on it
    #: (`ApprovalDecision` values), who made it, when, and why (a denial's reason).
    expires_at: float | None = None
    decision: str | None = None
    decided_by: str | None = None
    decided_at: float | None = None
    decision_note: str | None = None


class ApprovalDecision(StrEnum):
    """What became of a request that awaited approval (`RequestRecord.decision`)."""

    APPROVED = "approved"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"  # the requester took it back
    EXPIRED = "expired"


@dataclass(frozen=True)
class Lease:
    """This replica's hold on a request: its `fence` (every write for the request checks it),
    and how long the hold lasts: `deadline` on this process's monotonic clock, reckoned from
    before the statement that set it was sent, so it errs early (a survivor cannot take the
    request over before `deadline` has passed here, however long this process was paused);
    `until`, the same moment in Unix seconds as this process reckons it (for people: the
    database keeps its own reckoning, on its own clock)."""

    request_key: str
    owner: str
    fence: int
    until: float
    deadline: float


@dataclass(frozen=True)
class TakenRequest:
    """A request this replica just took over (or found due): its record, now held by this
    replica under `lease`, its audit rows in id order, and who held it before (None: nobody,
    or a version that did not record it)."""

    record: RequestRecord
    lease: Lease
    rows: tuple[AuditEntry, ...]
    previous_owner: str | None

    @property
    def request_key(self) -> str:
        """The request's key."""
        return self.record.request_key

    @property
    def unsettled_rows(self) -> tuple[AuditEntry, ...]:
        """The rows without the call's own answer: pending, unknown, or an earlier survivor's
        verdict (that survivor may have stopped before reporting it)."""
        return tuple(r for r in self.rows if r.outcome in PROVISIONAL_OUTCOMES)


@dataclass(frozen=True)
class FoundWork:
    """What one look for work took for this replica (`AuditStore.find_work`): requests taken
    over from a stopped holder, and scheduled requests whose time has come."""

    taken_over: list[TakenRequest]
    due: list[TakenRequest]
    #: Requests that waited for an approver past their expiry, now `expired` (to tell people).
    expired: list[RequestRecord] = field(default_factory=list)
