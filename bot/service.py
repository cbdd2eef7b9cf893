"""The use cases of a `/room` request, free of Slack and terminal types.

A request goes through two steps so adapters can answer fast:

1. `prepare(text, actor)` parses and checks the policy (no Room Engine call) and returns what to
   do: `Rejected`, `HelpReply`, `DryRun`, `NeedsConfirmation` or `Approved` (`bot.outcomes`).
2. `run(plan)` (writes, through `bot.runner`), `show(approved)` / `history(approved)` (reads)
   call Room Engine or the audit store and return outcomes.

Button clicks come back as `confirm`, `cancel`, `plan_undo` and `plan_retry`, each re-checking
the policy for whoever clicked. Every request is audited; an audit failure is reported, never
fatal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Final

from bot.audit import AuditEntry, AuditError, AuditStore, ConfirmationStatus, NewEntry, Outcome
from bot.commands import (
    VERBS,
    Command,
    ParseError,
    VerbKind,
    parse_command,
    render_help,
    render_verb_help,
)
from bot.defaults import CONFIRM_ABOVE, CONFIRMATION_TTL_S, CONFIRMATION_TTL_TEXT, MAX_ROOMS
from bot.failures import describe_failure
from bot.models import RoomPatch
from bot.outcomes import (
    Actor,
    Approved,
    Deferrer,
    DryRun,
    HelpReply,
    HistoryView,
    NeedsConfirmation,
    Plan,
    Prepared,
    ProgressCallback,
    Rejected,
    RoomView,
    RunKind,
    RunResult,
)
from bot.policy import Decision, GroupDirectory, Policy
from bot.recorder import AuditRecorder, entries, entry
from bot.runner import Runner
from bot.tencent.client import RoomEngineClient

#: Verbs that always ask for confirmation, whatever the room count.
ALWAYS_CONFIRM: Final = frozenset({"lockdown", "lift-lockdown"})
#: How many audit entries `history` shows.
HISTORY_LIMIT: Final = 10


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


class RoomService:
    """Parses, authorizes and carries out `/room` requests against Room Engine."""

    def __init__(
        self,
        *,
        client: RoomEngineClient,
        policy: Policy,
        groups: GroupDirectory | None = None,
        audit: AuditStore | None = None,
        max_rooms: int = MAX_ROOMS,
        confirm_above: int = CONFIRM_ABOVE,
    ) -> None:
        self._client = client
        self._policy = policy
        self._groups = groups
        self._audit = AuditRecorder(audit)
        self._runner = Runner(client, self._audit)
        self._max_rooms = max_rooms
        self._confirm_above = confirm_above

    def set_policy(self, policy: Policy) -> None:
        """Swap in a reloaded policy; requests and clicks from now on are decided by it."""
        self._policy = policy

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
            invalid = entry(actor, None, text, outcome=Outcome.INVALID, detail=exc.message)
            await self._record_refusal([invalid], defer)
            return Rejected(message=exc.message, usage=exc.usage)
        if command.spec.kind is VerbKind.HELP:
            return HelpReply(text=await self.help_text(actor, topic=command.topic))
        decision = await self.authorize(command.verb, actor)
        if not decision.allowed:
            denied = entries(actor, command, text, outcome=Outcome.DENIED, detail=decision.reason)
            await self._record_refusal(denied, defer)
            return Rejected.by_policy(decision)
        if command.dry_run and command.spec.kind is VerbKind.WRITE:
            dry = entries(actor, command, text, outcome=Outcome.DRY_RUN)
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

    async def _record_refusal(self, rows: list[NewEntry], defer: Deferrer | None) -> None:
        """Audit rows for a request that calls nothing: now, or later through `defer`."""

        async def record() -> None:
            await self._audit.record(rows)

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
            return Decision.allow(verb, actor.user_id, "local operator")
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
                key, user_id=actor.user_id, ttl_s=CONFIRMATION_TTL_S
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
                entries(actor, command, prompt.text, outcome=Outcome.DENIED, detail=decision.reason)
            )
            return Rejected.by_policy(decision)
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
            entries(
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
        """Carry out a plan (see `bot.runner.Runner.run`): read before write for small requests,
        audit before and after each call, rooms concurrently.

        `yield_to`, if given, is awaited before each Room Engine call: an adapter's way to let
        more urgent work (Slack acks) go first.
        """
        return await self._runner.run(plan, progress=progress, yield_to=yield_to)

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
            return Rejected.by_policy(decision)
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


_CONFIRM_PROBLEMS: dict[ConfirmationStatus, str] = {
    ConfirmationStatus.NOT_FOUND: "this confirmation prompt is unknown; run the command again",
    ConfirmationStatus.WRONG_USER: "only the person who ran the command can confirm or cancel it",
    ConfirmationStatus.EXPIRED: (
        f"this confirmation expired (prompts last {CONFIRMATION_TTL_TEXT}); run the command again"
    ),
    ConfirmationStatus.ALREADY_RESOLVED: "this request was already confirmed or cancelled",
}


def _freeze(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


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
