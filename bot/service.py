"""The one use case: a `/room` request from an actor → policy → Room Engine calls → outcomes.

Free of Slack types: the Slack handlers and the console are both thin adapters over `RoomService`.
A request goes through two steps so adapters can answer fast:

1. `prepare(text, actor)` parses and checks the policy (no Room Engine call) and returns what to
   do: `Rejected`, `HelpReply`, `DryRun`, `NeedsConfirmation` or `Approved`.
2. `execute(approved)` (writes), `show(approved)` / `history(approved)` (reads) call Room Engine
   or the audit store and return outcomes.

Button clicks come back as `confirm`, `cancel`, `undo` and `retry_failed`, each re-checking the
policy for whoever clicked. Every request is audited; an audit failure is reported, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from bot.audit import (
    AuditEntry,
    AuditError,
    AuditStore,
    ConfirmationStatus,
    NewEntry,
    Outcome,
)
from bot.audit import Source as Source  # re-exported: adapters build Actors with it
from bot.commands import (
    VERBS,
    Command,
    ParseError,
    VerbKind,
    parse_command,
    render_help,
    render_verb_help,
)
from bot.config import Settings
from bot.models import RoomPatch
from bot.policy import Decision, GroupDirectory, Policy
from bot.tencent.client import RoomEngineClient, RoomSnapshot
from bot.tencent.errors import (
    ApiError,
    MalformedResponse,
    RequestTimeout,
    RoomEngineError,
    TransportError,
)

log = logging.getLogger(__name__)

#: Rooms of one request in flight at once; the client's rate budget paces the actual calls.
MAX_CONCURRENT_ROOMS = 64
#: Requests for more rooms than this skip read-before-write (it doubles the API calls), so they
#: get no Undo; the result says so.
READ_BEFORE_MAX_ROOMS = 20
#: Verbs that always ask for confirmation, whatever the room count.
ALWAYS_CONFIRM = frozenset({"lockdown", "lift-lockdown"})
#: How long a confirmation prompt stays valid.
CONFIRM_TTL_S = 600.0
#: How many audit entries `history` shows.
HISTORY_LIMIT = 10


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
    """Nothing will be called: the text did not parse, the policy said no, or a click was stale."""

    message: str
    usage: str | None = None
    denied: bool = False


@dataclass(frozen=True)
class HelpReply:
    """`help` or `help VERB`: text listing only what the caller may run."""

    text: str


@dataclass(frozen=True)
class DryRun:
    """`--dry-run`: the exact request bodies that would be sent; nothing is called."""

    command: Command
    bodies: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Approved:
    """Parsed and permitted: ready for `execute` (writes) or `show`/`history` (reads)."""

    command: Command
    actor: Actor
    decision: Decision


@dataclass(frozen=True)
class NeedsConfirmation:
    """High impact (lockdown, or many rooms): the requester must confirm with `key` first."""

    command: Command
    actor: Actor
    key: str
    reason: str


Prepared = Rejected | HelpReply | DryRun | NeedsConfirmation | Approved


class RunKind(StrEnum):
    """What a run of patches is: a request, an undo of one, or a retry of its failed rooms."""

    REQUEST = "request"
    UNDO = "undo"
    RETRY = "retry"


@dataclass(frozen=True)
class Plan:
    """Exactly which patches a run will send, for whom, and (for undo) what must still hold."""

    command: Command
    actor: Actor
    patches: tuple[RoomPatch, ...]
    raw_text: str
    kind: RunKind = RunKind.REQUEST
    #: undo: room → the audit row being reverted.
    undo_of: Mapping[str, int] | None = None
    #: undo: room → the values roombot set; a room that no longer has them is left alone.
    expected: Mapping[str, dict[str, Any]] | None = None


# -- outcomes of calls ----------------------------------------------------------------------------


class FailureKind(StrEnum):
    """How a room's request failed, coarsely, for rendering."""

    API = "api"
    TRANSPORT = "transport"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"
    CONFLICT = "conflict"
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
    """The outcome of one room's `update_room_info`."""

    room_id: str
    changes: dict[str, Any]
    request_id: str | None = None
    failure: Failure | None = None
    attempts: int = 0
    elapsed_s: float = 0.0
    #: The values of the changed fields before the call, when they were read first.
    previous: dict[str, Any] | None = None
    #: The audit row of this room's request.
    row_id: int | None = None

    @property
    def ok(self) -> bool:
        """True when Tencent answered OK."""
        return self.failure is None

    @property
    def noop(self) -> bool:
        """True when the room already had these values (the call was still made and succeeded)."""
        return self.ok and self.previous is not None and self.previous == self.changes

    @property
    def undoable(self) -> bool:
        """True when this room changed and we know what it was before."""
        return self.ok and self.previous is not None and not self.noop


@dataclass(frozen=True)
class RoomView:
    """The outcome of one room's `get_room_info`."""

    room_id: str
    snapshot: RoomSnapshot | None = None
    failure: Failure | None = None


@dataclass(frozen=True)
class HistoryView:
    """`history ROOM`: the newest audit entries for one room (or why there are none)."""

    room_id: str
    entries: tuple[AuditEntry, ...] = ()
    problem: str | None = None


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

    @property
    def failed(self) -> list[RoomResult]:
        """The rooms that did not change."""
        return [r for r in self.results if not r.ok]

    @property
    def succeeded(self) -> list[RoomResult]:
        """The rooms Tencent confirmed."""
        return [r for r in self.results if r.ok]

    @property
    def undoable(self) -> bool:
        """True when an Undo button makes sense: some room changed and its old values are known."""
        return self.kind is not RunKind.UNDO and any(r.undoable for r in self.results)


ProgressCallback = Callable[[Progress], Awaitable[None]]
#: Runs a coroutine later (e.g. after a Slack ack); the adapter keeps it referenced.
Deferrer = Callable[[Coroutine[Any, Any, None]], object]


def known_verbs() -> dict[str, str]:
    """Every word the policy file may use for a verb (names and aliases) → canonical name."""
    words: dict[str, str] = {}
    for name, spec in VERBS.items():
        words[name] = name
        for alias in spec.aliases:
            words[alias] = name
    return words


def load_policy(settings: Settings) -> Policy:
    """The policy from `ROOMBOT_ALLOWED_USERS` and `ROOMBOT_POLICY_FILE` (raises PolicyError)."""
    return Policy.load(
        allowed_users=settings.roombot_allowed_users,
        policy_file=settings.roombot_policy_file,
        known_verbs=known_verbs(),
    )


def verbs_that_set(field_name: str, value: Any) -> frozenset[str]:
    """The write verbs able to set `field_name` to `value` (what undo needs permission for)."""
    verbs = set()
    for name, spec in VERBS.items():
        if spec.kind is not VerbKind.WRITE:
            continue
        if spec.sets:
            if (field_name, value) in spec.sets:
                verbs.add(name)
        elif field_name in spec.fields:
            verbs.add(name)
    return frozenset(verbs)


def new_correlation_id() -> str:
    """A short id for an unexpected error, shown to the user and written to the log."""
    return secrets.token_hex(4)


def describe_failure(exc: BaseException, *, room_id: str | None = None) -> Failure:
    """Turn any exception from a Room Engine call into a `Failure` (the one place this happens).

    Unexpected exceptions are logged with a fresh correlation id, which the `Failure` carries.
    """
    if isinstance(exc, ApiError):
        return Failure(
            kind=FailureKind.API,
            message=exc.info or f"error {exc.code}",
            hint=exc.hint,
            code=exc.code,
            request_id=exc.request_id,
        )
    if isinstance(exc, RequestTimeout):
        return Failure(
            kind=FailureKind.TIMEOUT,
            message="Room Engine did not answer in time",
            hint=exc.hint,
            request_id=exc.request_id,
        )
    if isinstance(exc, MalformedResponse):
        return Failure(
            kind=FailureKind.MALFORMED,
            message="Room Engine sent a reply roombot could not read",
            hint=exc.hint,
            request_id=exc.request_id,
        )
    if isinstance(exc, TransportError | RoomEngineError):
        return Failure(
            kind=FailureKind.TRANSPORT, message=str(exc), hint=exc.hint, request_id=exc.request_id
        )
    correlation_id = new_correlation_id()
    log.error(
        "unexpected error [%s] room=%s: %s",
        correlation_id,
        room_id,
        type(exc).__name__,
        exc_info=exc,
    )
    return Failure(
        kind=FailureKind.INTERNAL,
        message="unexpected error inside roombot",
        hint=f"report error id {correlation_id} to the roombot maintainers",
        correlation_id=correlation_id,
    )


async def _no_pause() -> None:
    return None


def _new_key() -> str:
    return uuid.uuid4().hex


class _Audit:
    """The audit store seen from the service: failures are logged loudly and remembered, never
    raised, so a broken audit trail can never make a Room Engine request fail."""

    def __init__(self, store: AuditStore | None) -> None:
        self.store = store

    async def begin(self, entries: Sequence[NewEntry]) -> tuple[list[int | None], str | None]:
        if self.store is None:
            return [None] * len(entries), None
        try:
            return list(await self.store.begin(entries)), None
        except AuditError as exc:
            return [None] * len(entries), self.failed("begin", exc)

    async def record(self, entries: Sequence[NewEntry]) -> str | None:
        if self.store is None or not entries:
            return None
        try:
            await self.store.record(entries)
        except AuditError as exc:
            return self.failed("record", exc)
        return None

    async def complete(self, row_id: int | None, **fields: Any) -> str | None:
        if self.store is None or row_id is None:
            return None
        try:
            await self.store.complete(row_id, **fields)
        except AuditError as exc:
            return self.failed("complete", exc)
        return None

    @staticmethod
    def failed(step: str, exc: AuditError) -> str:
        log.error("AUDIT TRAIL NOT WRITTEN (%s): %s", step, exc)
        return str(exc) or type(exc).__name__


class RoomService:
    """Parses, authorizes and carries out `/room` requests against Room Engine."""

    def __init__(
        self,
        *,
        client: RoomEngineClient,
        policy: Policy,
        groups: GroupDirectory | None = None,
        audit: AuditStore | None = None,
        max_rooms: int = 500,
        confirm_above: int = 5,
        read_before_max_rooms: int = READ_BEFORE_MAX_ROOMS,
    ) -> None:
        self._client = client
        self._policy = policy
        self._groups = groups
        self._audit = _Audit(audit)
        self._max_rooms = max_rooms
        self._confirm_above = confirm_above
        self._read_before_max = read_before_max_rooms

    @property
    def client(self) -> RoomEngineClient:
        """The Room Engine client this service calls."""
        return self._client

    def set_policy(self, policy: Policy) -> None:
        """Swap in a reloaded policy; requests and clicks from now on are decided by it."""
        self._policy = policy

    @property
    def audit(self) -> AuditStore | None:
        """The audit store, if any."""
        return self._audit.store

    # -- step 1: parse, authorize, decide --------------------------------------------------------

    async def prepare(self, text: str, actor: Actor, *, defer: Deferrer | None = None) -> Prepared:
        """Parse `text` and check the policy for `actor`. Calls nothing on Room Engine.

        Refused, invalid and dry-run requests are audited here. An adapter that must answer fast
        (a Slack ack) passes `defer`, which runs that write after the answer; without it the
        write is awaited.
        """
        try:
            command = parse_command(text, max_rooms=self._max_rooms)
        except ParseError as exc:
            entry = self._entry(actor, None, text, outcome=Outcome.INVALID, detail=exc.message)
            await self._record_refusal([entry], defer)
            return Rejected(message=exc.message, usage=exc.usage)
        if command.spec.kind is VerbKind.HELP:
            return HelpReply(text=await self.help_text(actor, topic=command.topic))
        decision = await self.authorize(command.verb, actor)
        if not decision.allowed:
            denied = self._entries(
                actor, command, text, outcome=Outcome.DENIED, detail=decision.reason
            )
            await self._record_refusal(denied, defer)
            return Rejected(message=decision.reason, denied=True)
        if command.dry_run and command.spec.kind is VerbKind.WRITE:
            dry = self._entries(actor, command, text, outcome=Outcome.DRY_RUN)
            await self._record_refusal(dry, defer)
            return DryRun(command=command, bodies=tuple(p.body() for p in command.patches()))
        why = self.confirmation_reason(command)
        if why is not None and self._audit.store is not None:
            try:
                key = await self._audit.store.create_confirmation(
                    user_id=actor.user_id,
                    team_id=actor.team_id,
                    channel_id=actor.channel_id,
                    text=command.canonical_text(),
                )
            except AuditError as exc:
                self._audit.failed("confirmation", exc)
                return Rejected(
                    message="this request needs a confirmation, but the audit store that keeps "
                    "confirmations is not working; nothing was done"
                )
            return NeedsConfirmation(command=command, actor=actor, key=key, reason=why)
        return Approved(command=command, actor=actor, decision=decision)

    async def _record_refusal(self, entries: list[NewEntry], defer: Deferrer | None) -> None:
        """Audit rows for a request that calls nothing: now, or later through `defer`."""

        async def record() -> None:
            await self._audit.record(entries)

        if defer is None:
            await record()
        else:
            defer(record())

    def confirmation_reason(self, command: Command) -> str | None:
        """Why `command` needs a confirmation first, or None."""
        if command.spec.kind is not VerbKind.WRITE:
            return None
        if command.verb in ALWAYS_CONFIRM:
            return f"`{command.verb}` changes several settings at once"
        if self._confirm_above and len(command.rooms) > self._confirm_above:
            return f"it changes {len(command.rooms)} rooms (more than {self._confirm_above})"
        return None

    async def authorize(self, verb: str, actor: Actor) -> Decision:
        """The policy's decision for `actor` running `verb` (canonical) in the actor's channel."""
        if actor.is_operator:
            return Decision(
                allowed=True, verb=verb, user_id=actor.user_id, reason="local operator", role=None
            )
        return await self._policy.decide(
            user_id=actor.user_id, verb=verb, channel_id=actor.channel_id, groups=self._groups
        )

    async def help_text(self, actor: Actor, *, topic: str | None = None) -> str:
        """Help listing only the verbs `actor` may run (or one verb's usage)."""
        if topic is not None:
            return render_verb_help(topic)
        if actor.is_operator:
            return render_help(None)
        allowed = await self._policy.allowed_verbs(
            user_id=actor.user_id, channel_id=actor.channel_id, groups=self._groups
        )
        return render_help(lambda verb: verb in allowed or verb == "help")

    # -- confirmations ---------------------------------------------------------------------------

    async def confirm(self, key: str, actor: Actor) -> Approved | Rejected:
        """The requester confirmed: re-check the policy now, then the request may run (once)."""
        store = self._audit.store
        if store is None:
            return Rejected(message="confirmations are not available without the audit store")
        try:
            status, prompt = await store.resolve_confirmation(
                key, user_id=actor.user_id, ttl_s=CONFIRM_TTL_S
            )
        except AuditError as exc:
            return Rejected(
                message=f"could not read the confirmation: {self._audit.failed('confirm', exc)}"
            )
        if status is not ConfirmationStatus.OK or prompt is None:
            return Rejected(message=_CONFIRM_PROBLEMS.get(status, "this prompt cannot be used"))
        actor = replace(actor, channel_id=prompt.channel_id or actor.channel_id)
        command = parse_command(prompt.text, max_rooms=self._max_rooms)
        decision = await self.authorize(command.verb, actor)
        if not decision.allowed:
            await self._audit.record(
                self._entries(
                    actor, command, prompt.text, outcome=Outcome.DENIED, detail=decision.reason
                )
            )
            return Rejected(message=decision.reason, denied=True)
        return Approved(command=command, actor=actor, decision=decision)

    async def cancel(self, key: str, actor: Actor) -> Rejected | Command:
        """The requester cancelled: the prompt is spent; returns the command that will not run."""
        store = self._audit.store
        if store is None:
            return Rejected(message="confirmations are not available without the audit store")
        try:
            status, prompt = await store.cancel_confirmation(key, user_id=actor.user_id)
        except AuditError as exc:
            return Rejected(
                message=f"could not read the confirmation: {self._audit.failed('cancel', exc)}"
            )
        if status is not ConfirmationStatus.OK or prompt is None:
            return Rejected(message=_CONFIRM_PROBLEMS.get(status, "this prompt cannot be used"))
        command = parse_command(prompt.text, max_rooms=self._max_rooms)
        await self._audit.record(
            self._entries(
                actor,
                command,
                prompt.text,
                outcome=Outcome.CANCELLED,
                detail="cancelled by the requester",
            )
        )
        return command

    # -- step 2: writes --------------------------------------------------------------------------

    def plan(self, approved: Approved) -> Plan:
        """The patches an approved write request will send."""
        command = approved.command
        return Plan(
            command=command,
            actor=approved.actor,
            patches=tuple(command.patches()),
            raw_text=command.canonical_text(),
        )

    async def execute(
        self, approved: Approved, *, progress: ProgressCallback | None = None
    ) -> RunResult:
        """Send each room's patch (concurrently, paced by the client's rate budget), audited."""
        return await self.run(self.plan(approved), progress=progress)

    async def run(
        self,
        plan: Plan,
        *,
        progress: ProgressCallback | None = None,
        yield_to: Callable[[], Awaitable[None]] | None = None,
    ) -> RunResult:
        """Carry out a plan: read previous values (small requests), audit each room before its
        call, send the patches concurrently, and complete each audit row with the outcome.

        `yield_to`, if given, is awaited before each Room Engine call: an adapter's way to let
        more urgent work (Slack acks) go first.
        """
        started = time.monotonic()
        pause = yield_to or _no_pause
        request_key = _new_key()
        patches = plan.patches
        expected = plan.expected
        read_before = len(patches) <= self._read_before_max
        previous: dict[str, dict[str, Any] | None] = {}
        conflicts: dict[str, Failure] = {}
        if read_before or expected is not None:
            previous, conflicts = await self._read_previous(patches, expected, pause)

        entries = [
            self._entry(
                plan.actor,
                plan.command,
                plan.raw_text,
                room_id=p.room_id,
                patch=p.changes(),
                previous=previous.get(p.room_id),
                undo_of=(plan.undo_of or {}).get(p.room_id),
                request_key=request_key,
            )
            for p in patches
        ]
        row_ids, audit_error = await self._audit.begin(entries)

        total = len(patches)
        done = failed = 0
        gate = asyncio.Semaphore(MAX_CONCURRENT_ROOMS)

        async def one(index: int) -> RoomResult:
            nonlocal done, failed, audit_error
            patch = patches[index]
            if patch.room_id in conflicts:
                result = RoomResult(
                    room_id=patch.room_id, changes=patch.changes(), failure=conflicts[patch.room_id]
                )
            else:
                async with gate:
                    await pause()
                    result = await self._update(patch)
                result = replace(result, previous=previous.get(patch.room_id))
            result = replace(result, row_id=row_ids[index])
            audit_error = await self._complete(result) or audit_error
            done += 1
            failed += 0 if result.ok else 1
            if progress is not None:
                try:
                    await progress(Progress(done=done, failed=failed, total=total))
                except Exception:  # a progress display must never break the request itself
                    log.exception("progress callback failed")
            return result

        results = await asyncio.gather(*(one(i) for i in range(total)))
        return RunResult(
            command=plan.command,
            actor=plan.actor,
            request_key=request_key,
            results=list(results),
            elapsed_s=time.monotonic() - started,
            kind=plan.kind,
            read_before=read_before or expected is not None,
            audit_error=audit_error,
        )

    async def _read_previous(
        self,
        patches: Sequence[RoomPatch],
        expected: Mapping[str, dict[str, Any]] | None,
        pause: Callable[[], Awaitable[None]],
    ) -> tuple[dict[str, dict[str, Any] | None], dict[str, Failure]]:
        """Read each room's current values of the fields about to change.

        With `expected` (undo), a room whose current values differ from what we set is a conflict:
        someone changed it since, and undo must not clobber that.
        """
        previous: dict[str, dict[str, Any] | None] = {}
        conflicts: dict[str, Failure] = {}
        gate = asyncio.Semaphore(MAX_CONCURRENT_ROOMS)

        async def one(patch: RoomPatch) -> None:
            fields = list(patch.changes())
            try:
                async with gate:
                    await pause()
                    snapshot = await self._client.get_room_info(patch.room_id)
            except Exception as exc:
                previous[patch.room_id] = None
                if expected is not None:
                    conflicts[patch.room_id] = describe_failure(exc, room_id=patch.room_id)
                return
            current = snapshot.room.api_values(fields)
            previous[patch.room_id] = current
            want = (expected or {}).get(patch.room_id)
            if want is not None and current != want:
                conflicts[patch.room_id] = Failure(
                    kind=FailureKind.CONFLICT,
                    message="changed since: " + _differences(want, current),
                    hint="not undone, so someone else's change is not overwritten",
                    request_id=snapshot.request_id,
                )

        await asyncio.gather(*(one(p) for p in patches))
        return previous, conflicts

    async def _update(self, patch: RoomPatch) -> RoomResult:
        started = time.monotonic()
        try:
            outcome = await self._client.update_room_info(patch)
        except Exception as exc:
            failure = describe_failure(exc, room_id=patch.room_id)
            return RoomResult(
                room_id=patch.room_id,
                changes=patch.changes(),
                failure=failure,
                request_id=failure.request_id,
                elapsed_s=time.monotonic() - started,
            )
        return RoomResult(
            room_id=patch.room_id,
            changes=patch.changes(),
            request_id=outcome.request_id,
            attempts=outcome.attempts,
            elapsed_s=time.monotonic() - started,
        )

    async def _complete(self, result: RoomResult) -> str | None:
        failure = result.failure
        if failure is None:
            outcome = Outcome.NOOP if result.noop else Outcome.OK
        else:
            outcome = Outcome.FAILED
        return await self._audit.complete(
            result.row_id,
            outcome=outcome,
            tencent_request_id=result.request_id,
            error_code=failure.code if failure else None,
            error_info=(failure.message if failure else None),
            latency_ms=round(result.elapsed_s * 1000, 3),
            previous=result.previous,
            detail=failure.kind.value if failure and failure.kind is FailureKind.CONFLICT else None,
        )

    # -- undo and retry (button clicks) ----------------------------------------------------------

    async def plan_undo(self, request_key: str, actor: Actor) -> Plan | Rejected:
        """Plan restoring the previous values of a request's changed rooms. Refused when the
        clicker lacks permission for a restored field, or the request was already undone."""
        rows = await self._rows(request_key)
        if isinstance(rows, Rejected):
            return rows
        targets = [
            r
            for r in rows
            if r.outcome is Outcome.OK
            and r.room_id
            and r.previous
            and r.patch
            and r.previous != r.patch
        ]
        if not targets:
            return Rejected(message="there is nothing to undo for this request")
        needed = {(k, _freeze(v)) for r in targets for k, v in (r.previous or {}).items()}
        refusal = await self._refuse_fields(actor, needed, "undo this")
        if refusal is not None:
            return refusal
        if not await self._claim(f"undo:{request_key}"):
            return Rejected(message="this request was already undone")
        original = targets[0]
        return Plan(
            command=_command_like(
                original,
                rooms=tuple(r.room_id or "" for r in targets),
                reason=f"undo of {original.verb} run by {original.user_id}",
            ),
            actor=actor,
            patches=tuple(RoomPatch.of(r.room_id or "", dict(r.previous or {})) for r in targets),
            raw_text=f"undo {request_key}",
            kind=RunKind.UNDO,
            undo_of={r.room_id or "": r.id for r in targets},
            expected={r.room_id or "": dict(r.patch or {}) for r in targets},
        )

    async def plan_retry(self, request_key: str, actor: Actor) -> Plan | Rejected:
        """Plan re-running just the rooms of a request that failed (or whose outcome is unknown).
        The clicker needs the request's verb; a request's failures are retried once."""
        rows = await self._rows(request_key)
        if isinstance(rows, Rejected):
            return rows
        failed = [
            r
            for r in rows
            if r.outcome in (Outcome.FAILED, Outcome.UNKNOWN) and r.room_id and r.patch
        ]
        if not failed:
            return Rejected(message="no room of this request failed, so there is nothing to retry")
        verb = failed[0].verb or "set"
        decision = await self.authorize(verb, actor)
        if not decision.allowed:
            return Rejected(message=decision.reason, denied=True)
        if not await self._claim(f"retry:{request_key}"):
            return Rejected(message="the failed rooms of this request were already retried")
        return Plan(
            command=_command_like(failed[0], rooms=tuple(r.room_id or "" for r in failed)),
            actor=actor,
            patches=tuple(RoomPatch.of(r.room_id or "", dict(r.patch or {})) for r in failed),
            raw_text=f"retry failed of {request_key}",
            kind=RunKind.RETRY,
        )

    async def _rows(self, request_key: str) -> list[AuditEntry] | Rejected:
        store = self._audit.store
        if store is None:
            return Rejected(message="this needs the audit trail, which is not configured")
        try:
            rows = await store.rows_for_request(request_key)
        except AuditError as exc:
            return Rejected(
                message=f"could not read the audit trail: {self._audit.failed('read', exc)}"
            )
        if not rows:
            return Rejected(message="that request is not in the audit trail")
        return rows

    async def _refuse_fields(
        self, actor: Actor, changes: set[tuple[str, Any]], action: str
    ) -> Rejected | None:
        for field_name, value in sorted(changes, key=str):
            candidates = sorted(verbs_that_set(field_name, value))
            for verb in candidates:
                if (await self.authorize(verb, actor)).allowed:
                    break
            else:
                names = ", ".join(f"`{v}`" for v in candidates) or "a verb"
                return Rejected(
                    message=f"You (`{actor.user_id}`) may not {action}: restoring {field_name} "
                    f"needs permission for {names}.",
                    denied=True,
                )
        return None

    async def _claim(self, key: str) -> bool:
        store = self._audit.store
        if store is None:
            return True
        try:
            return await store.claim(key)
        except AuditError as exc:
            self._audit.failed("claim", exc)
            return False

    async def first_delivery(self, key: str) -> bool:
        """True the first time `key` (e.g. a Slack event_id) is seen on this audit store."""
        return await self._claim(f"event:{key}")

    # -- reads -----------------------------------------------------------------------------------

    async def show(self, approved: Approved) -> list[RoomView]:
        """Read each named room with `get_room_info`."""

        async def one(room_id: str) -> RoomView:
            try:
                return RoomView(room_id=room_id, snapshot=await self._client.get_room_info(room_id))
            except Exception as exc:
                return RoomView(room_id=room_id, failure=describe_failure(exc, room_id=room_id))

        return list(await asyncio.gather(*(one(r) for r in approved.command.rooms)))

    async def history(self, approved: Approved) -> HistoryView:
        """The newest audit entries for the room named in a `history` command."""
        room_id = approved.command.rooms[0]
        store = self._audit.store
        if store is None:
            return HistoryView(room_id=room_id, problem="the audit trail is not configured")
        try:
            entries = await store.query(room=room_id, limit=HISTORY_LIMIT)
        except AuditError as exc:
            return HistoryView(room_id=room_id, problem=self._audit.failed("history", exc))
        return HistoryView(room_id=room_id, entries=tuple(entries))

    # -- audit rows ------------------------------------------------------------------------------

    def _entry(
        self,
        actor: Actor,
        command: Command | None,
        raw_text: str,
        *,
        room_id: str | None = None,
        patch: dict[str, Any] | None = None,
        previous: dict[str, Any] | None = None,
        outcome: Outcome = Outcome.PENDING,
        detail: str | None = None,
        undo_of: int | None = None,
        request_key: str | None = None,
    ) -> NewEntry:
        return NewEntry(
            request_key=request_key or _new_key(),
            source=actor.source.value,
            user_id=actor.user_id,
            verb=command.verb if command else None,
            raw_text=raw_text,
            room_id=room_id,
            team_id=actor.team_id,
            channel_id=actor.channel_id,
            reason=command.reason if command else None,
            patch=patch,
            previous=previous,
            outcome=outcome,
            detail=detail,
            undo_of=undo_of,
        )

    def _entries(
        self,
        actor: Actor,
        command: Command,
        raw_text: str,
        *,
        outcome: Outcome,
        detail: str | None = None,
    ) -> list[NewEntry]:
        key = _new_key()
        patches = {p.room_id: p.changes() for p in command.patches()}
        rooms: Sequence[str | None] = command.rooms or [None]
        return [
            self._entry(
                actor,
                command,
                raw_text,
                room_id=room,
                patch=patches.get(room) if room is not None else None,
                outcome=outcome,
                detail=detail,
                request_key=key,
            )
            for room in rooms
        ]


_CONFIRM_PROBLEMS: dict[ConfirmationStatus, str] = {
    ConfirmationStatus.NOT_FOUND: "this confirmation prompt is unknown; run the command again",
    ConfirmationStatus.WRONG_USER: "only the person who ran the command can confirm or cancel it",
    ConfirmationStatus.EXPIRED: (
        "this confirmation expired (prompts last 10 minutes); run the command again"
    ),
    ConfirmationStatus.ALREADY_RESOLVED: "this request was already confirmed or cancelled",
}


def _freeze(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _differences(want: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{name} is now {current.get(name)!r} (roombot set {value!r})"
        for name, value in want.items()
        if current.get(name) != value
    )


def _command_like(
    row: AuditEntry, *, rooms: tuple[str, ...] | None = None, reason: str | None = None
) -> Command:
    """A `Command` describing an undo or retry, for the parent message and the audit rows."""
    return Command(
        verb=row.verb or "set",
        rooms=rooms if rooms is not None else (row.room_id or "",),
        changes=dict(row.patch or {}),
        reason=reason if reason is not None else row.reason,
    )
