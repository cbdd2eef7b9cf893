"""The result types every adapter renders: what `RoomService` and the runner return.

Plain data, no behaviour beyond derived properties, no Slack or terminal wording. The flow:

* `RoomService.prepare(text, actor)` returns a `Prepared`: `Rejected`, `HelpReply`, `DryRun`,
  `NeedsConfirmation` or `Approved`.
* An approved write becomes a `Plan` (exactly which calls, for whom); running it yields a
  `RunResult` with one `RoomResult` per target (a room, or one account of a member verb), each
  `ok`, a no-op, or a `Failure`.
* Reads yield `RoomView`s (`show`), a `HistoryView` (`history`), a `MembersView` (`members`),
  a `BannedView` (`banned`) or a `SeatsView` (`seats`).
* About a user rather than a request: `Access` (what they may run, and where) and `Activity`
  (their recent requests and the rooms they touched), for surfaces such as Slack's App Home.
* A Room Engine callback reporting a change roombot did not make yields an `OutsideChange`
  (`bot.callbacks`), which adapters post as an alert.

Text fields here (`Rejected.message`, `Failure.message`, `Failure.hint`) are plain sentences; the
one markup they may hold is a code span in backticks (`like-this`), which each adapter renders in
its own way. They never hold Slack markup: user and channel IDs travel as fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.audit import AuditEntry, Outcome, Source
from bot.commands import Command
from bot.models import (
    BannedMember,
    Call,
    RoomMember,
    RoomSnapshot,
    SeatEvent,
    SeatList,
    is_seat_target,
    restorable,
    seat_undo_flags,
)
from bot.policy import Decision, Denial
from bot.tencent.errors import PERMANENT_CODES

__all__ = [
    "Access",
    "Activity",
    "Actor",
    "Approved",
    "BannedView",
    "ChangeKind",
    "Deferrer",
    "DryRun",
    "Failure",
    "FailureKind",
    "HelpReply",
    "HistoryView",
    "MembersView",
    "NeedsConfirmation",
    "OutsideChange",
    "PendingTimer",
    "Plan",
    "Prepared",
    "Progress",
    "ProgressCallback",
    "RateWarning",
    "Rejected",
    "RequestSummary",
    "RoomResult",
    "RoomView",
    "RunKind",
    "RunResult",
    "SeatsView",
    "Source",
    "TargetKey",
    "TimersView",
]


@dataclass(frozen=True)
class Actor:
    """Who is asking, and where. `user_id` comes from the request envelope, never the text."""

    user_id: str
    source: Source
    team_id: str | None = None
    channel_id: str | None = None
    #: The console's local operator: every verb allowed, no policy lookup.
    is_operator: bool = False


# -- outcomes of `prepare` -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """Nothing will be called: the text did not parse, the policy said no, or a click was stale.

    `message` is a plain sentence; `usage` the relevant usage line, if any. `denied` marks a
    permission refusal; when the policy refused, `denial` holds its reasons for the adapter to
    word (and `message` is then only the plain summary).
    """

    message: str
    usage: str | None = None
    denied: bool = False
    denial: Denial | None = None

    @classmethod
    def by_policy(cls, decision: Decision) -> Rejected:
        """The refusal of a policy decision that did not allow."""
        return cls(message=decision.reason, denied=True, denial=decision.denial)


@dataclass(frozen=True)
class HelpReply:
    """`help` or `help VERB`: text listing only what the caller may run."""

    text: str


@dataclass(frozen=True)
class DryRun:
    """`--dry-run`: the exact request bodies that would be sent; nothing is called. `note` (a
    core sentence) says what the bodies cannot show: a `lock_seat`'s other two flags, read
    only when it runs."""

    command: Command
    bodies: tuple[dict[str, Any], ...]
    note: str | None = None


@dataclass(frozen=True)
class Approved:
    """Parsed and permitted: ready for `execute` (writes) or `show`/`history` (reads)."""

    command: Command
    actor: Actor
    decision: Decision
    #: Why a write needs a second person's approval before it runs (DESIGN §2.12), or None:
    #: the adapter says so in its answer; `RoomService.submit` then asks instead of running.
    approval: str | None = None


@dataclass(frozen=True)
class ApprovalPending:
    """A write recorded to await a second person's approval (DESIGN §2.12), not run: what would
    run (`plan`, immutable), `why` it needs approval, who may approve (user and user group
    IDs), until when (`expires_at`, Unix seconds) and where else it is posted (`channel`)."""

    plan: Plan
    why: str
    approvers: tuple[str, ...]
    expires_at: float
    channel: str | None = None

    @property
    def request_key(self) -> str:
        """The waiting request's key (what Approve / Deny carry)."""
        return self.plan.request_key


@dataclass(frozen=True)
class NeedsConfirmation:
    """High impact (lockdown, or many rooms): the requester must confirm with `key` first."""

    command: Command
    actor: Actor
    key: str
    reason: str


Prepared = Rejected | HelpReply | DryRun | NeedsConfirmation | Approved


class RunKind(StrEnum):
    """What a run of calls is: a request, an undo of one, or a retry of its failed targets."""

    REQUEST = "request"
    UNDO = "undo"
    RETRY = "retry"
    #: The revert of a time-boxed change (`--for`, DESIGN §2.11): an undo roombot runs by
    #: itself when the time is up.
    REVERT = "revert"


#: What one audit row and one result are about: a room, and the account for member verbs.
TargetKey = tuple[str, str | None]


@dataclass(frozen=True)
class Plan:
    """Exactly which calls a run will send, for whom, and (for undo) what must still hold.

    `calls` are `update_room_info` patches, member calls (kick/ban/unban) or `destroy_room`.
    `request_key` groups the run's audit rows, names its lease and is what Undo / Retry buttons
    carry: fresh for each plan, known before the run so an adapter can hold the request's lease
    from its first visible step (run a plan once).
    """

    command: Command
    actor: Actor
    calls: tuple[Call, ...]
    raw_text: str
    kind: RunKind = RunKind.REQUEST
    #: undo: target → the audit row being reverted.
    undo_of: Mapping[TargetKey, int] | None = None
    #: undo: room → the values roombot set; a room that no longer has them is left alone.
    expected: Mapping[str, dict[str, Any]] | None = None
    #: undo: rooms already known to have changed since (a callback said so): each is reported
    #: with this failure and neither read nor written.
    conflicts: Mapping[str, Failure] | None = None
    request_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: Makes the request once-only (`RoomService.submit`): an undo or retry of a request
    #: carries "undo:KEY" / "retry:KEY", so a second click, on any replica, runs nothing.
    dedupe_key: str | None = None
    #: Core sentences the report adds (a revert: the fields it left alone, that it ran late).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PendingTimer:
    """A time-boxed change's revert still to run (`--for`, DESIGN §2.11): what it reverts
    (the change as asked), who asked, and when it is due (Unix seconds)."""

    request_key: str
    #: The time-boxed request's key.
    reverts: str
    command: Command
    user_id: str
    due: float
    channel_id: str | None
    #: (who, with which verb) set every field again through roombot since (`timers` only): the
    #: revert will then set nothing back. None while something is still to go back (or when it
    #: was not looked at).
    superseded_by: tuple[str, str] | None = None


@dataclass(frozen=True)
class TimersView:
    """`timers [ROOM...]`: the pending reverts (of those rooms, or all), soonest first, or why
    they could not be read."""

    rooms: tuple[str, ...]
    timers: tuple[PendingTimer, ...] = ()
    problem: str | None = None


# -- outcomes of calls ----------------------------------------------------------------------------


class FailureKind(StrEnum):
    """How a room's request failed, coarsely, for rendering."""

    API = "api"
    TRANSPORT = "transport"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"
    CONFLICT = "conflict"
    #: Withdrawn before its call: an earlier call proved the credentials wrong, or the audit
    #: trail could not be written.
    NOT_ATTEMPTED = "not_attempted"
    #: Not sent because what it names does not exist or it could not have any effect (a seat
    #: the room does not have, a ban on an empty seat): the seat list read first said so.
    INVALID = "invalid"
    INTERNAL = "internal"


@dataclass(frozen=True)
class Failure:
    """A failed call, ready to show a user: what, the Tencent code if any, and a hint."""

    kind: FailureKind
    message: str
    hint: str
    code: int | None = None
    request_id: str | None = None
    #: Set for unexpected errors only: the id the user can report, also in the log line.
    correlation_id: str | None = None


@dataclass(frozen=True)
class RoomResult:
    """The outcome for one target: a room's `update_room_info` or `destroy_room`, one account
    of a kick, ban, unban or kick-seat (`account` set; `changes` then holds `Member_Account`
    and, for a ban, `Duration`: what the audit row records), or one seat's `lock_seat`
    (`changes` holds its `Index` and the flags set; `previous` its index and all three flags
    as read before)."""

    room_id: str
    changes: dict[str, Any]
    request_id: str | None = None
    failure: Failure | None = None
    attempts: int = 0
    elapsed_s: float = 0.0
    #: The values of the changed fields before the call, when they were read first.
    previous: dict[str, Any] | None = None
    #: The audit row of this target.
    row_id: int | None = None
    #: The member account this result is about (member verbs only).
    account: str | None = None

    @property
    def key(self) -> TargetKey:
        """The room and (member verbs) account this result is about."""
        return (self.room_id, self.account)

    @property
    def ok(self) -> bool:
        """True when Tencent answered OK."""
        return self.failure is None

    @property
    def noop(self) -> bool:
        """True when the room already had these values (the call was still made and succeeded)."""
        previous = self.previous
        if not self.ok or previous is None:
            return False
        # A seat's previous values hold all three flags; the change, those it set.
        return all(name in previous and previous[name] == v for name, v in self.changes.items())

    @property
    def changed(self) -> bool:
        """True when the room certainly changed: read before, and different from the patch."""
        return self.ok and self.previous is not None and not self.noop

    @property
    def undoable(self) -> bool:
        """True when this room changed, we know what it was before, and `update_room_info` can
        set some of that back (a seat mode that was never set cannot be); or this seat's flags
        changed (`lock_seat` sets them back)."""
        if not self.ok or self.previous is None or self.noop:
            return False
        if is_seat_target(self.changes):
            return bool(seat_undo_flags(self.changes, self.previous))
        return bool(restorable(self.previous))


@dataclass(frozen=True)
class RoomView:
    """The outcome of one room's `get_room_info`.

    `allowed_verbs` are the verbs the asker may run where they asked (canonical names), so an
    adapter can offer exactly those as buttons; empty when nobody worked them out. Offering is
    not permitting: a click is checked against the policy again.

    `seats` is the room's `get_seat_list` when `show` read it too (a few rooms: room cards list
    their seats), or `seats_failure` why it could not be read; both None when not read.
    """

    room_id: str
    snapshot: RoomSnapshot | None = None
    failure: Failure | None = None
    allowed_verbs: frozenset[str] = frozenset()
    seats: SeatList | None = None
    seats_failure: Failure | None = None
    #: The room's time-boxed changes still to revert (room cards say "… until 14:30 UTC").
    timers: tuple[PendingTimer, ...] = ()


@dataclass(frozen=True)
class HistoryView:
    """`history ROOM`: the newest audit entries for one room (or why there are none)."""

    room_id: str
    entries: tuple[AuditEntry, ...] = ()
    problem: str | None = None
    #: Request key → who asked and who approved or denied it, with the times (requests that
    #: awaited a second person's approval only).
    approvals: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """How far a many-room request has got."""

    done: int
    failed: int
    total: int


@dataclass
class RunResult:
    """Everything a write request produced, in the order its rooms were named."""

    command: Command
    actor: Actor
    request_key: str
    results: list[RoomResult] = field(default_factory=list)
    elapsed_s: float = 0.0
    kind: RunKind = RunKind.REQUEST
    #: False when the request was too big to read previous values first (so no Undo).
    read_before: bool = True
    #: Set when the audit trail could not be written; the results are still real.
    audit_error: str | None = None
    #: Set when nothing was called at all, and why (the audit trail could not be written).
    refused: str | None = None
    #: Set when another replica took the request over before it ended here, and why: this
    #: replica reports nothing (the other one does).
    lost: str | None = None
    #: Core sentences to report with the outcome (the plan's `notes`).
    notes: tuple[str, ...] = ()
    #: A time-boxed change (`--for`): when its revert is due (Unix seconds), and that
    #: request's key (the Revert now / Extend / Keep buttons name it). None otherwise.
    reverts_at: float | None = None
    revert_key: str | None = None

    @property
    def failed(self) -> list[RoomResult]:
        """The rooms that did not change."""
        return [r for r in self.results if not r.ok]

    @property
    def retryable(self) -> list[RoomResult]:
        """The failed targets that trying again may fix: all but those Tencent refused with a
        code that says the request cannot succeed as it is (`PERMANENT_CODES`: no such room, a
        bad parameter, not a member)."""
        return [
            r for r in self.failed if r.failure is None or r.failure.code not in PERMANENT_CODES
        ]

    @property
    def succeeded(self) -> list[RoomResult]:
        """The rooms Tencent confirmed (changed, already so, or set without a read first)."""
        return [r for r in self.results if r.ok]

    @property
    def changed(self) -> list[RoomResult]:
        """The rooms that certainly changed (their values were read first and differed)."""
        return [r for r in self.results if r.changed]

    @property
    def already(self) -> list[RoomResult]:
        """The rooms that already had the values: the call succeeded and changed nothing."""
        return [r for r in self.results if r.noop]

    @property
    def set_unread(self) -> list[RoomResult]:
        """The rooms Tencent confirmed without a read first: now so, changed or not."""
        return [r for r in self.results if r.ok and r.previous is None]

    @property
    def not_attempted(self) -> list[RoomResult]:
        """The targets withdrawn before their call (they certainly did not change)."""
        return [
            r for r in self.results if r.failure and r.failure.kind is FailureKind.NOT_ATTEMPTED
        ]

    @property
    def undoable(self) -> bool:
        """True when an Undo button makes sense: a room changed and its old values are known, or
        a member verb with an inverse (ban → unban) succeeded for some account."""
        if self.kind is RunKind.UNDO:
            return False
        if self.command.spec.undo_verb is not None:
            return any(r.ok for r in self.results)
        return any(r.undoable for r in self.results)


ProgressCallback = Callable[[Progress], Awaitable[None]]
#: Runs a coroutine later (e.g. after a Slack ack); the adapter keeps it referenced.
Deferrer = Callable[[Coroutine[Any, Any, None]], object]


@dataclass(frozen=True)
class MembersView:
    """`members ROOM`: who is in the room (up to a cap), and how many more there are."""

    room_id: str
    members: tuple[RoomMember, ...] = ()
    #: How many members the room has, when known (`get_room_info`'s MemberCount).
    total: int | None = None
    truncated: bool = False
    request_ids: tuple[str, ...] = ()
    failure: Failure | None = None


@dataclass(frozen=True)
class SeatsView:
    """`seats ROOM`: the room's seats as `get_seat_list` reported them (or why they could not
    be read). A room without seats has an empty list."""

    room_id: str
    seats: SeatList | None = None
    failure: Failure | None = None


@dataclass(frozen=True)
class BannedView:
    """`banned ROOM`: who is banned, until when (up to a cap)."""

    room_id: str
    banned: tuple[BannedMember, ...] = ()
    truncated: bool = False
    request_ids: tuple[str, ...] = ()
    failure: Failure | None = None


@dataclass(frozen=True)
class Access:
    """What `user_id` may run: `everywhere` (in any channel, and where there is none, such as
    the App Home tab), and `only_in` channel → the further verbs a channel guardrail allows
    only there. Verbs are canonical names in help order, `help` left out (everyone has it)."""

    user_id: str
    everywhere: tuple[str, ...] = ()
    only_in: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def nothing(self) -> bool:
        """True when the user may run no verb anywhere."""
        return not self.everywhere and not self.only_in


@dataclass(frozen=True)
class RequestSummary:
    """One request of a user as the audit trail holds it: its rooms and how each ended.

    `outcomes` counts the request's audit rows by outcome (one row per room, or per account
    of a member verb); `created_at` is when it was made (Unix seconds); `text` is what was
    typed (as the audit trail keeps it), for a request that did not parse into a verb.
    """

    request_key: str
    verb: str | None
    rooms: tuple[str, ...]
    outcomes: Mapping[Outcome, int]
    created_at: float
    source: str
    text: str = ""


@dataclass(frozen=True)
class Activity:
    """A user's recent requests, newest first, and the rooms they touched lately (a call was
    made or tried on them), newest first. `problem` says why the audit trail could not be read,
    when it could not."""

    user_id: str
    requests: tuple[RequestSummary, ...] = ()
    rooms: tuple[str, ...] = ()
    problem: str | None = None
    #: The user's time-boxed changes still to revert, soonest first.
    timers: tuple[PendingTimer, ...] = ()


class ChangeKind(StrEnum):
    """What a change made outside roombot did to a room."""

    UPDATED = "updated"
    DESTROYED = "destroyed"
    CREATED = "created"
    SEATS = "seats"  # its seats: a seat locked, a speaker removed, ...


@dataclass(frozen=True)
class OutsideChange:
    """A change to a room that roombot did not make, as a Room Engine callback reported it.

    `operator` is the Room Engine account that made it (not a Slack user) and `platform` the
    callback's `OptPlatform` (`RESTAPI`, `Web`, `Android`, ...). For an update, `changed` holds
    the new values of the fields roombot knew and that differ, with what roombot knew in
    `before`; `reported` the values of fields roombot knew nothing of (all of them when it knew
    nothing of the room). For seats, `seats` holds what happened to them (never plain
    sit/leave traffic). `at` is the event's time (Unix seconds); `row_id` its audit row, None
    when it could not be written (`note` then says so).
    """

    kind: ChangeKind
    room_id: str
    operator: str
    platform: str | None
    at: float
    changed: Mapping[str, Any] = field(default_factory=dict)
    before: Mapping[str, Any] = field(default_factory=dict)
    reported: Mapping[str, Any] = field(default_factory=dict)
    seats: tuple[SeatEvent, ...] = ()
    row_id: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class RateWarning:
    """Tencent warned that the app passed 80% of an API's limit (`Alert.RequestOverLimit`:
    `observed` requests a second against Tencent's `limit`), and roombot halved its own budget
    for `api`, to `budget` calls a second for `until_s` seconds, on every replica. `budget` is
    None when it could not (`note` says why). `at` is when it arrived (Unix seconds).
    """

    api: str
    at: float
    service: str | None = None
    observed: int | None = None
    limit: int | None = None
    budget: float | None = None
    until_s: float | None = None
    note: str | None = None
