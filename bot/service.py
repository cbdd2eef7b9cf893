"""The use cases of a `/room` request, free of Slack and terminal types.

A request goes through two steps so adapters can answer fast:

1. `prepare(text, actor)` parses and checks the policy (no Room Engine call) and returns what to
   do: `Rejected`, `HelpReply`, `DryRun`, `NeedsConfirmation` or `Approved` (`bot.outcomes`).
2. `run(plan)` (writes, through `bot.runner`), `show(approved)` / `history(approved)` (reads)
   call Room Engine or the audit store and return outcomes.

Button clicks come back as `confirm`, `cancel`, `plan_undo` and `plan_retry`, each re-checking
the policy for whoever clicked. Every request is audited; an audit failure is reported, never
fatal. Every write run is leased (`leases`, `hold`): if this process stops mid-way, a survivor
reports the request where it came from (`bot.takeover`). `access` and `activity` describe a user
rather than a request (what they may run, what they did lately) for surfaces such as Slack's App
Home.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import replace
from typing import Any, Final

from bot.audit import AuditEntry, AuditError, AuditStore, ConfirmationStatus, NewEntry, Outcome
from bot.callbacks import outside_conflicts
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
from bot.leases import LeaseKeeper
from bot.models import (
    BANNED_PAGE_MAX,
    Call,
    DestroyCall,
    MemberApi,
    MemberCall,
    RoomPatch,
    chunked,
    restorable,
)
from bot.outcomes import (
    Access,
    Activity,
    Actor,
    Approved,
    BannedView,
    Deferrer,
    DryRun,
    Failure,
    FailureKind,
    HelpReply,
    HistoryView,
    MembersView,
    NeedsConfirmation,
    Plan,
    Prepared,
    ProgressCallback,
    Rejected,
    RequestSummary,
    RoomView,
    RunKind,
    RunResult,
)
from bot.policy import Decision, GroupDirectory, Policy
from bot.recorder import AuditRecorder, entries, entry
from bot.runner import Runner
from bot.tencent.client import RoomEngineClient
from bot.wording import outside_summary

#: Why the verbs that always ask first (`VerbSpec.confirm`) do.
_ALWAYS_CONFIRM_WHY: Final = {
    "lockdown": "`lockdown` changes several settings at once",
    "lift-lockdown": "`lift-lockdown` changes several settings at once",
    "destroy": "`destroy` removes the room for everyone in it and cannot be undone",
}
#: The outcomes Retry runs again: not done, or not known to be done.
RETRY_OUTCOMES: Final = frozenset(
    {Outcome.FAILED, Outcome.UNKNOWN, Outcome.NOT_ATTEMPTED, Outcome.NOT_APPLIED}
)
#: How many audit entries `history` shows.
HISTORY_LIMIT: Final = 10
#: Most members `members` lists; most bans `banned` lists (each is "… and N more" beyond).
MEMBERS_LIMIT: Final = 500
BANNED_LIMIT: Final = 500
#: How many requests and rooms `activity` returns, and how many audit rows it reads to find them.
RECENT_REQUESTS: Final = 10
RECENT_ROOMS: Final = 10
_ACTIVITY_ROWS: Final = 2_000
#: Outcomes of rows that called nothing: their rooms were not "touched".
_UNTOUCHED: Final = frozenset({Outcome.DENIED, Outcome.INVALID, Outcome.CANCELLED, Outcome.DRY_RUN})


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
        allow_unaudited: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`allow_unaudited` (ROOMBOT_ALLOW_UNAUDITED) lets changes go ahead when their audit rows
        cannot be written (each outcome is then logged instead); `sleep` paces retries."""
        self._client = client
        self._policy = policy
        self._groups = groups
        self._audit = AuditRecorder(audit)
        self._leases = LeaseKeeper(audit) if audit is not None else None
        self._runner = Runner(
            client,
            self._audit,
            leases=self._leases,
            allow_unaudited=allow_unaudited,
            sleep=sleep,
        )
        self._max_rooms = max_rooms
        self._confirm_above = confirm_above

    @property
    def leases(self) -> LeaseKeeper | None:
        """This process's leases on the requests it carries out (None without an audit store)."""
        return self._leases

    async def aclose(self) -> None:
        """Stop renewing leases (before the audit store closes); requests still held expire."""
        if self._leases is not None:
            await self._leases.aclose()

    def set_policy(self, policy: Policy) -> None:
        """Swap in a reloaded policy; requests and clicks from now on are decided by it."""
        self._policy = policy

    @property
    def max_rooms(self) -> int:
        """The most rooms one command may name (what `prepare` parses with)."""
        return self._max_rooms

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
            calls = command.calls(actor.user_id)
            return DryRun(command=command, bodies=tuple(c.body() for c in calls))
        why = self.confirmation_reason(command)
        if why is not None and self._audit.store is None:
            return Rejected(
                message=f"this request needs a confirmation ({why}), which needs the audit "
                "store; nothing was done"
            )
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
        if command.spec.confirm:
            return _ALWAYS_CONFIRM_WHY.get(command.verb, f"`{command.verb}` always asks first")
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

    async def allowed_verbs(self, actor: Actor) -> frozenset[str]:
        """The canonical verbs `actor` may run in the actor's channel, `help` included."""
        if actor.is_operator:
            return frozenset(VERBS)
        return await self._policy.allowed_verbs(
            user_id=actor.user_id, channel_id=actor.channel_id, groups=self._groups
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
        """The calls an approved write request will make."""
        command = approved.command
        return Plan(
            command=command,
            actor=approved.actor,
            calls=tuple(command.calls(approved.actor.user_id)),
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
        context: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Carry out a plan (see `bot.runner.Runner.run`): read before write for small requests,
        audit before and after each call, rooms concurrently, under the request's lease.

        `yield_to`, if given, is awaited before each Room Engine call: an adapter's way to let
        more urgent work (Slack acks) go first. `context` goes with the lease: what a survivor
        needs to report in the request's original place (opaque to the core, JSON-ready).
        """
        return await self._runner.run(plan, progress=progress, yield_to=yield_to, context=context)

    @contextlib.asynccontextmanager
    async def hold(self, plan: Plan, context: Mapping[str, Any]) -> AsyncIterator[None]:
        """Hold `plan`'s lease for the block, with `context`: for an adapter whose request is
        visible before the run starts and until its outcome is delivered after it (a Slack
        parent message and thread), so a survivor reports it whenever this process stops.

        Released when the block ends or raises; kept when it is cancelled (shutdown). A lease
        that cannot be written is logged, and the run then refuses the request if it must.
        Without an audit store it does nothing.
        """
        if self._leases is None:
            yield
            return
        async with self._leases.holding(plan.request_key, context):
            yield

    async def relocate(self, plan: Plan, context: Mapping[str, Any]) -> None:
        """Replace the context of `plan`'s lease (held with `hold`), e.g. once the parent
        message it names exists. A failure is logged: the older context still leads a survivor
        to the request's channel."""
        if self._leases is None or not self._leases.holds(plan.request_key):
            return
        try:
            await self._leases.update(plan.request_key, context)
        except AuditError as exc:
            self._audit.failed("lease", exc)

    # -- undo and retry (button clicks) ----------------------------------------------------------

    async def plan_undo(self, request_key: str, actor: Actor) -> Plan | Rejected:
        """Plan undoing a request: restore the previous values of the rooms it changed (those
        `update_room_info` can set back), or unban the accounts a ban banned. Refused when the
        clicker lacks permission for the inverse, or the request was already undone."""
        rows = await self._rows(request_key)
        if isinstance(rows, Rejected):
            return rows
        banned = [
            r
            for r in rows
            if r.outcome is Outcome.OK and r.verb == "ban" and _account(r) and r.room_id
        ]
        if banned:
            return await self._plan_unban(request_key, actor, banned)
        targets = [
            r
            for r in rows
            if r.outcome is Outcome.OK
            and r.room_id
            and r.patch
            and r.previous
            and r.previous != r.patch
            and restorable(r.previous)
        ]
        if not targets:
            return Rejected(message="there is nothing to undo for this request")
        changed_outside = await self._changed_outside(targets)
        if len(changed_outside) == len(targets):
            rooms = "; ".join(
                f"`{room}` {failure.message.removeprefix('changed outside roombot since ')}"
                for room, failure in changed_outside.items()
            )
            return Rejected(
                message=f"not undone: changed outside roombot since this request — {rooms}. "
                "Undo leaves such rooms alone, so that change is not overwritten; nothing was done."
            )
        needed = {(k, _freeze(v)) for r in targets for k, v in restorable(r.previous or {}).items()}
        refusal = await self._refuse_fields(actor, needed, "undo this")
        if refusal is not None:
            return refusal
        claimed = await self._claim(f"undo:{request_key}", "undone")
        if claimed is not None:
            return claimed
        original = targets[0]
        return Plan(
            command=_command_like(
                original,
                rooms=tuple(r.room_id or "" for r in targets),
                reason=f"undo of {original.verb} run by {original.user_id}",
            ),
            actor=actor,
            calls=tuple(
                RoomPatch.of(r.room_id or "", restorable(r.previous or {})) for r in targets
            ),
            raw_text=f"undo {request_key}",
            kind=RunKind.UNDO,
            undo_of={(r.room_id or "", None): r.id for r in targets},
            expected={
                r.room_id or "": {
                    k: v for k, v in (r.patch or {}).items() if k in restorable(r.previous or {})
                }
                for r in targets
            },
            conflicts=changed_outside or None,
        )

    async def _changed_outside(self, targets: list[AuditEntry]) -> dict[str, Failure]:
        """The rooms of `targets` a Room Engine callback reported changed outside roombot since
        (in a field the undo would restore, or destroyed or re-created), each with the conflict
        to report. Undo then neither reads nor writes them. If the trail cannot be read, none:
        the read before the undo still catches a change."""
        store = self._audit.store
        if store is None:
            return {}
        found: dict[str, Failure] = {}
        for row in targets:
            room = row.room_id or ""
            try:
                later = await store.query(room=room, since=row.created_at, limit=200)
            except AuditError as exc:
                self._audit.failed("undo check", exc)
                return found
            fields = restorable(row.previous or {})
            outside = outside_conflicts(later, after_row=row.id, fields=fields)
            if outside:
                newest = outside[-1]
                found[room] = Failure(
                    kind=FailureKind.CONFLICT,
                    message=f"changed outside roombot since {outside_summary(newest)}",
                    hint="not undone, so that change is not overwritten",
                )
        return found

    async def _plan_unban(
        self, request_key: str, actor: Actor, banned: list[AuditEntry]
    ) -> Plan | Rejected:
        """Undo of a ban: unban exactly the accounts it banned (needs permission for `unban`)."""
        decision = await self.authorize("unban", actor)
        if not decision.allowed:
            return Rejected.by_policy(decision)
        claimed = await self._claim(f"undo:{request_key}", "undone")
        if claimed is not None:
            return claimed
        by_room: dict[str, list[str]] = {}
        for row in banned:
            by_room.setdefault(row.room_id or "", []).append(_account(row) or "")
        calls = tuple(
            MemberCall(api=MemberApi.UNBAN, room_id=room, accounts=chunk)
            for room, accounts in by_room.items()
            for chunk in chunked(accounts)
        )
        original = banned[0]
        return Plan(
            command=Command(
                verb="unban",
                rooms=tuple(by_room),
                accounts=tuple(a for accounts in by_room.values() for a in accounts),
                reason=f"undo of ban run by {original.user_id}",
            ),
            actor=actor,
            calls=calls,
            raw_text=f"undo {request_key}",
            kind=RunKind.UNDO,
            undo_of={(r.room_id or "", _account(r)): r.id for r in banned},
        )

    async def plan_retry(self, request_key: str, actor: Actor) -> Plan | Rejected:
        """Plan re-running just the targets of a request that failed, were not attempted, or
        whose outcome is unknown or, by a survivor's reading, not applied. The clicker needs
        the request's verb; once per request."""
        rows = await self._rows(request_key)
        if isinstance(rows, Rejected):
            return rows
        again = RETRY_OUTCOMES
        failed = [r for r in rows if r.outcome in again and r.room_id and r.verb]
        if not failed:
            return Rejected(message="no room of this request failed, so there is nothing to retry")
        verb = failed[0].verb or "set"
        decision = await self.authorize(verb, actor)
        if not decision.allowed:
            return Rejected.by_policy(decision)
        calls = _calls_again(verb, failed)
        if not calls:
            return Rejected(message="the failed part of this request cannot be retried")
        claimed = await self._claim(f"retry:{request_key}", "retried")
        if claimed is not None:
            return claimed
        return Plan(
            command=_command_like(failed[0], rooms=tuple(dict.fromkeys(c.room_id for c in calls))),
            actor=actor,
            calls=calls,
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

    async def _claim(self, key: str, done: str) -> Rejected | None:
        """Claim a one-shot action (None: go ahead), or say why not: already `done`, or the
        audit store that keeps the claim could not record it."""
        store = self._audit.store
        if store is None:
            return None
        try:
            if await store.claim(key):
                return None
        except AuditError as exc:
            problem = self._audit.failed("claim", exc)
            return Rejected(
                message=f"the audit store could not record this click ({problem}); nothing was "
                "done, try again in a minute"
            )
        return Rejected(message=f"this request was already {done}")

    async def first_delivery(self, key: str) -> bool:
        """True the first time `key` (e.g. a Slack event_id) is seen on this audit store.

        When the store cannot record it the answer is True: the request goes ahead (a write
        then meets the same store and is refused with a clear message), rather than being
        silently dropped as a repeat.
        """
        store = self._audit.store
        if store is None:
            return True
        try:
            return await store.claim(f"event:{key}")
        except AuditError as exc:
            self._audit.failed("claim", exc)
            return True

    # -- reads -----------------------------------------------------------------------------------

    async def show(self, approved: Approved) -> list[RoomView]:
        """Read each named room with `get_room_info`."""

        allowed = await self.allowed_verbs(approved.actor)

        async def one(room_id: str) -> RoomView:
            try:
                snapshot = await self._client.get_room_info(room_id)
            except Exception as exc:
                failure = describe_failure(exc, room_id=room_id)
                return RoomView(room_id=room_id, failure=failure, allowed_verbs=allowed)
            return RoomView(room_id=room_id, snapshot=snapshot, allowed_verbs=allowed)

        return list(await asyncio.gather(*(one(r) for r in approved.command.rooms)))

    async def members(self, approved: Approved) -> MembersView:
        """`members ROOM`: every member, page after page up to `MEMBERS_LIMIT`, and the total."""
        room_id = approved.command.rooms[0]
        try:
            listing = await self._client.get_room_members(room_id, max_members=MEMBERS_LIMIT)
            total = len(listing.members)
            if listing.truncated:
                total = (await self._client.get_room_info(room_id)).room.member_count
        except Exception as exc:
            return MembersView(room_id=room_id, failure=describe_failure(exc, room_id=room_id))
        return MembersView(
            room_id=room_id,
            members=listing.members,
            total=max(total, len(listing.members)),
            truncated=listing.truncated,
            request_ids=listing.request_ids,
        )

    async def banned(self, approved: Approved) -> BannedView:
        """`banned ROOM`: every ban with its end time, page after page up to `BANNED_LIMIT`."""
        room_id = approved.command.rooms[0]
        try:
            listing = await self._client.get_banned_members(
                room_id, max_members=BANNED_LIMIT, page_size=BANNED_PAGE_MAX
            )
        except Exception as exc:
            return BannedView(room_id=room_id, failure=describe_failure(exc, room_id=room_id))
        return BannedView(
            room_id=room_id,
            banned=listing.members,
            truncated=listing.truncated,
            request_ids=listing.request_ids,
        )

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

    # -- about a user (e.g. Slack's App Home) ------------------------------------------------------

    async def access(self, user_id: str) -> Access:
        """What `user_id` may run everywhere, and what more only in guardrailed channels."""
        groups = self._groups
        everywhere = await self._policy.allowed_verbs(
            user_id=user_id, channel_id=None, groups=groups
        )
        channels = sorted({c for role in self._policy.roles for c in role.channels or ()})
        only_in: list[tuple[str, tuple[str, ...]]] = []
        for channel in channels:
            here = await self._policy.allowed_verbs(
                user_id=user_id, channel_id=channel, groups=groups
            )
            if here - everywhere:
                only_in.append((channel, _in_help_order(here - everywhere)))
        return Access(
            user_id=user_id, everywhere=_in_help_order(everywhere), only_in=tuple(only_in)
        )

    async def activity(
        self, user_id: str, *, requests: int = RECENT_REQUESTS, rooms: int = RECENT_ROOMS
    ) -> Activity:
        """`user_id`'s newest `requests` requests and the `rooms` rooms they touched lately,
        from the audit trail (the newest few thousand of their rows)."""
        store = self._audit.store
        if store is None:
            return Activity(user_id=user_id, problem="the audit trail is not configured")
        try:
            rows = await store.query(user=user_id, limit=_ACTIVITY_ROWS)
        except AuditError as exc:
            return Activity(user_id=user_id, problem=self._audit.failed("activity", exc))
        by_request: dict[str, list[AuditEntry]] = {}
        for row in rows:  # newest first, so requests come out newest first too
            by_request.setdefault(row.request_key, []).append(row)
        touched: dict[str, None] = {}  # newest request first; its rooms in the order named
        for group in by_request.values():
            for row in sorted(group, key=lambda r: r.id):
                if row.room_id and row.outcome not in _UNTOUCHED:
                    touched.setdefault(row.room_id)
        return Activity(
            user_id=user_id,
            requests=tuple(
                _summary(key, group) for key, group in list(by_request.items())[:requests]
            ),
            rooms=tuple(touched)[:rooms],
        )


def _in_help_order(verbs: Collection[str]) -> tuple[str, ...]:
    return tuple(verb for verb in VERBS if verb in verbs and VERBS[verb].kind is not VerbKind.HELP)


def _summary(request_key: str, rows: list[AuditEntry]) -> RequestSummary:
    """One request from its rows (given newest first)."""
    ordered = sorted(rows, key=lambda r: r.id)
    return RequestSummary(
        request_key=request_key,
        verb=next((r.verb for r in ordered if r.verb), None),
        rooms=tuple(dict.fromkeys(r.room_id for r in ordered if r.room_id)),
        outcomes=dict(Counter(r.outcome for r in ordered)),
        created_at=ordered[0].created_at,
        source=ordered[0].source,
        text=ordered[0].raw_text,
    )


_CONFIRM_PROBLEMS: dict[ConfirmationStatus, str] = {
    ConfirmationStatus.NOT_FOUND: "this confirmation prompt is unknown; run the command again",
    ConfirmationStatus.WRONG_USER: "only the person who ran the command can confirm or cancel it",
    ConfirmationStatus.EXPIRED: (
        f"this confirmation expired (prompts last {CONFIRMATION_TTL_TEXT}); run the command again"
    ),
    ConfirmationStatus.ALREADY_RESOLVED: "this request was already confirmed or cancelled",
}


def _account(row: AuditEntry) -> str | None:
    account = (row.patch or {}).get("Member_Account")
    return account if isinstance(account, str) else None


def _calls_again(verb: str, rows: list[AuditEntry]) -> tuple[Call, ...]:
    """The calls that retry `rows` (all of one request, so of one verb)."""
    if verb == "destroy":
        return tuple(DestroyCall(room_id=r.room_id or "") for r in rows)
    spec = VERBS.get(verb)
    if spec is not None and spec.takes_accounts:
        api = MemberApi(str(spec.api))
        groups: dict[tuple[str, str | None, int | None], list[str]] = {}
        for row in rows:
            account = _account(row)
            duration = (row.patch or {}).get("Duration")
            if account is None:
                continue
            key = (row.room_id or "", row.reason, duration if isinstance(duration, int) else None)
            groups.setdefault(key, []).append(account)
        return tuple(
            MemberCall(api=api, room_id=room, accounts=chunk, reason=reason, duration_s=duration)
            for (room, reason, duration), accounts in groups.items()
            for chunk in chunked(accounts)
        )
    return tuple(RoomPatch.of(r.room_id or "", dict(r.patch)) for r in rows if r.patch)


def _freeze(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _command_like(
    row: AuditEntry, *, rooms: tuple[str, ...] | None = None, reason: str | None = None
) -> Command:
    """A `Command` describing an undo or retry, for the parent message and the audit rows."""
    patch = {k: v for k, v in (row.patch or {}).items() if k not in ("Member_Account", "Duration")}
    return Command(
        verb=row.verb or "set",
        rooms=rooms if rooms is not None else (row.room_id or "",),
        changes=patch,
        reason=reason if reason is not None else row.reason,
    )
