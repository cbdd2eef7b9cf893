"""The use cases of a `/room` request, free of Slack and terminal types.

A request goes through two steps so adapters can answer fast:

1. `prepare(text, actor)` parses and checks the policy (no Room Engine call) and returns what to
   do: `Rejected`, `HelpReply`, `DryRun`, `NeedsConfirmation` or `Approved` (`bot.outcomes`).
2. `submit(plan, delivery)` (writes, through `bot.requests`), `show(approved)` /
   `history(approved)` (reads) call Room Engine or the audit store and return outcomes.

Button clicks come back as `confirm`, `cancel`, `plan_undo` and `plan_retry` (planned in
`bot.followups`), each re-checking the policy for whoever clicked. The reads (`show`, `members`,
`banned`, `seats`, `history`, and a user's `access` and `activity` for surfaces such as Slack's App
Home) are carried out by `bot.reads`. This class is the one entry point adapters call.

Every request is audited; an audit failure is reported, never fatal. A write request lives as a
record the core owns (`submit`, `bot.requests.life`): claimed, run and reported through the
adapter's `Delivery`; if this process stops mid-way, a survivor's loop reports the request where
it came from (`bot.requests.loop`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Final

from bot.approvals import Approvals
from bot.audit import (
    REVERT_KIND,
    AuditError,
    AuditStore,
    ConfirmationStatus,
    NewEntry,
    Outcome,
    Source,
    TakenRequest,
)
from bot.commands import (
    VERBS,
    Command,
    InvalidValue,
    ParseError,
    VerbKind,
    parse_command,
    render_help,
    render_verb_help,
)
from bot.commands.window import DEFAULT_TIMELINE_MAX_S, WindowSpec, resolve_window
from bot.defaults import (
    CONFIRM_ABOVE,
    CONFIRMATION_TTL_S,
    CONFIRMATION_TTL_TEXT,
    MAX_ROOMS,
    MAX_TIMEBOX_S,
)
from bot.followups import FollowUps
from bot.outcomes import (
    Access,
    Activity,
    Actor,
    ApprovalPending,
    Approved,
    BannedView,
    Deferrer,
    DryRun,
    HelpReply,
    HistoryView,
    MembersView,
    NeedsConfirmation,
    Plan,
    Prepared,
    Progress,
    ProgressCallback,
    Rejected,
    RoomView,
    RunKind,
    RunResult,
    SeatsView,
    TimersView,
)
from bot.policy import Decision, GroupDirectory, Policy
from bot.reads import SHOW_SEATS_MAX_ROOMS, Reads
from bot.requests.delivery import Delivery, LoggedDelivery
from bot.requests.due import DueRequests, HeldForApproval
from bot.requests.leases import LeaseBook
from bot.requests.life import RequestLife
from bot.requests.recorder import AuditRecorder, entries, entry
from bot.requests.runner import Runner
from bot.seat_wording import dry_run_note
from bot.tencent.client import RoomEngineClient
from bot.timeline import TimelineView, timeline_view
from bot.timers import Timers, count_revert
from bot.wording.timers import dry_run_revert_note

#: Why the verbs that always ask first (`VerbSpec.confirm`) do.
_ALWAYS_CONFIRM_WHY: Final = {
    "lockdown": "`lockdown` changes several settings at once",
    "lift-lockdown": "`lift-lockdown` changes several settings at once",
    "destroy": "`destroy` removes the room for everyone in it and cannot be undone",
}


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
        max_timebox: int = MAX_TIMEBOX_S,
        confirm_above: int = CONFIRM_ABOVE,
        allow_unaudited: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timeline_max_s: float = DEFAULT_TIMELINE_MAX_S,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`allow_unaudited` (ROOMBOT_ALLOW_UNAUDITED) lets changes go ahead when their audit rows
        cannot be written (each outcome is then logged instead); `sleep` paces retries;
        `timeline_max_s` is the widest `timeline` window (ROOMBOT_TIMELINE_MAX); `wall` is Unix
        time (when a time-boxed change's revert is due, what "now" is for `timeline` windows)."""
        self._store = audit
        self._timeline_max_s = timeline_max_s
        self._client = client
        self._policy = policy
        self._groups = groups
        self._audit = AuditRecorder(audit)
        self._book = LeaseBook(audit) if audit is not None else None
        self._runner = Runner(
            client, self._audit, allow_unaudited=allow_unaudited, sleep=sleep, wall=wall
        )
        self._wall = wall
        self._life = RequestLife(
            audit,
            self._runner,
            self._audit,
            book=self._book,
            allow_unaudited=allow_unaudited,
            sleep=sleep,
        )
        self._due = DueRequests(audit, self._life) if audit is not None else None
        self._timers = Timers(audit, client, self.authorize, wall=wall) if audit else None
        if self._due is not None and self._timers is not None:
            self._due.on_due(REVERT_KIND, self._timers.build_revert, done=count_revert)
        self._approvals = (
            None
            if audit is None
            else Approvals(
                audit,
                self._life,
                self._audit,
                policy=lambda: self._policy,
                groups=groups,
                authorize=self.authorize,
            )
        )
        if self._due is not None and self._approvals is not None:
            # A due revert that the [approval] table names for itself waits for a second person.
            self._due.hold = self._approvals.hold_due
        self._max_rooms = max_rooms
        self._max_timebox = max_timebox
        self._confirm_above = confirm_above
        self._followups = FollowUps(self._audit, self.authorize)
        self._reads = Reads(client, self._audit, lambda: self._policy, groups, self.allowed_verbs)

    @property
    def book(self) -> LeaseBook | None:
        """This process's leases on the requests it carries out (None without an audit store):
        what its `RequestLoop` renews."""
        return self._book

    @property
    def due(self) -> DueRequests | None:
        """What carries out this process's due requests (None without an audit store): the
        `RequestLoop`'s `due`; features register how a kind's plan is made (`on_due`)."""
        return self._due

    @property
    def approvals(self) -> Approvals | None:
        """Two-person approval (None without an audit store): Approve / Deny clicks, and
        what the composition root wires (the adapters' notices, the loop's deliveries)."""
        return self._approvals

    def set_policy(self, policy: Policy) -> None:
        """Swap in a reloaded policy; requests and clicks from now on are decided by it."""
        self._policy = policy

    @property
    def max_rooms(self) -> int:
        """The most rooms one command may name (what `prepare` parses with)."""
        return self._max_rooms

    # -- step 1: parse, authorize, decide --------------------------------------------------------

    def parse(self, text: str) -> Command:
        """`parse_command` with this service's limits (rooms, `--for`); raises `ParseError`."""
        return parse_command(text, max_rooms=self._max_rooms, max_timebox=self._max_timebox)

    async def prepare(self, text: str, actor: Actor, *, defer: Deferrer | None = None) -> Prepared:
        """Parse `text` and check the policy for `actor`. Calls nothing on Room Engine.

        Refused, invalid and dry-run requests are audited here. An adapter that must answer fast
        (a Slack ack) passes `defer`, which runs that write after the answer; without it the
        write is awaited.
        """
        try:
            command = self.parse(text)
        except ParseError as exc:
            invalid = entry(actor, None, text, outcome=Outcome.INVALID, detail=exc.message)
            await self._record_refusal([invalid], defer)
            return Rejected(message=exc.message, usage=exc.usage)
        if command.spec.kind is VerbKind.HELP:
            return HelpReply(text=await self.help_text(actor, topic=command.topic))
        if command.spec.windowed:
            # A window refused (too wide, reversed, in the future) is said in the ack.
            try:
                resolve_window(
                    command.window or WindowSpec(), now=self._wall(), max_s=self._timeline_max_s
                )
            except InvalidValue as exc:
                invalid = entry(actor, None, text, outcome=Outcome.INVALID, detail=str(exc))
                await self._record_refusal([invalid], defer)
                return Rejected(message=str(exc), usage=command.spec.usage)
        decision = await self.authorize(command.verb, actor)
        if not decision.allowed:
            denied = entries(actor, command, text, outcome=Outcome.DENIED, detail=decision.reason)
            await self._record_refusal(denied, defer)
            return Rejected.by_policy(decision)
        if command.dry_run and command.spec.kind is VerbKind.WRITE:
            dry = entries(actor, command, text, outcome=Outcome.DRY_RUN)
            await self._record_refusal(dry, defer)
            calls = command.calls(actor.user_id)
            notes = [dry_run_note(command)]
            if command.timebox_s is not None:
                notes.append(dry_run_revert_note(command.timebox_s, self._wall()))
            return DryRun(
                command=command,
                bodies=tuple(c.body() for c in calls),
                note=" ".join(n for n in notes if n) or None,
            )
        approval = self.approval_reason(command)
        if approval is not None and actor.source is Source.CONSOLE:
            detail = f"needs approval: {approval}"
            await self._record_refusal(
                entries(actor, command, text, outcome=Outcome.DENIED, detail=detail), defer
            )
            return Rejected(message=console_approval_refusal(command, approval), denied=True)
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
        return Approved(command=command, actor=actor, decision=decision, approval=approval)

    async def refuse(self, actor: Actor, raw_text: str, why: str) -> Rejected:
        """Refuse input an adapter cannot take as a request (a button value roombot did not
        write): audited as invalid, like text that does not parse; nothing is called."""
        invalid = entry(actor, None, raw_text, outcome=Outcome.INVALID, detail=why)
        await self._record_refusal([invalid], None)
        return Rejected(message=why)

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
        if command.spec.seat_verb:
            # One room, many seats (or accounts): each is a call, so they are what counts.
            count, noun = (
                (len(command.seats), "seats") if command.seats else (len(command.accounts), "")
            )
            if self._confirm_above and count > self._confirm_above:
                what = f"changes {count} seats" if noun else f"takes {count} accounts off seats"
                return f"it {what} (more than {self._confirm_above})"
            return None
        if self._confirm_above and len(command.rooms) > self._confirm_above:
            return f"it changes {len(command.rooms)} rooms (more than {self._confirm_above})"
        return None

    def approval_reason(self, command: Command) -> str | None:
        """Why `command` needs a second person's approval before it runs, or None (reads,
        dry runs, and everything when the policy has no `[approval]` table)."""
        rule = self._policy.approval
        if rule is None or command.spec.kind is not VerbKind.WRITE or command.dry_run:
            return None
        return rule.why(command.verb, len(command.rooms) or 1)

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
        command = self.parse(prompt.text)
        decision = await self.authorize(command.verb, actor)
        if not decision.allowed:
            await self._audit.record(
                entries(actor, command, prompt.text, outcome=Outcome.DENIED, detail=decision.reason)
            )
            return Rejected.by_policy(decision)
        approval = self.approval_reason(command)
        return Approved(command=command, actor=actor, decision=decision, approval=approval)

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
        command = self.parse(prompt.text)
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

    async def submit(
        self, plan: Plan, delivery: Delivery, *, dedupe_key: str | None = None
    ) -> RunResult | ApprovalPending | None:
        """Carry out a write request through its whole life, reported through `delivery` (see
        `bot.requests.life`). None when `dedupe_key` is already on record: a repeat (a Slack
        retry, a replayed command, a second click), not run again.

        A request the policy's `[approval]` table names is not run: it is recorded to await a
        second person and shown (`bot.approvals`); its `ApprovalPending` is returned. From the
        console it is refused (the console cannot ask for approval)."""
        rule = self._policy.approval
        if rule is not None:
            why = self._approvals.why(plan) if self._approvals is not None else None
            if self._approvals is None and rule.why(plan.command.verb, len(plan.command.rooms)):
                why = "it needs a second person's approval, which needs the audit store"
            if why is not None:
                return await self._ask_approval(plan, delivery, why, dedupe_key)
        return await self._life.submit(plan, delivery, dedupe_key=dedupe_key)

    async def _ask_approval(
        self, plan: Plan, delivery: Delivery, why: str, dedupe_key: str | None
    ) -> RunResult | ApprovalPending | None:
        """Record `plan` to await approval, or refuse it where approval cannot be asked for."""
        approvals = self._approvals
        if approvals is None or plan.actor.source is Source.CONSOLE:
            run = self._runner.not_run(plan, console_approval_refusal(plan.command, why))
            await delivery.start(plan)
            await delivery.finish(run)
            return run
        return await approvals.ask(plan, delivery, why, dedupe_key=dedupe_key or plan.dedupe_key)

    async def run(self, plan: Plan, *, progress: ProgressCallback | None = None) -> RunResult:
        """`submit` for callers with no adapter to report through (scripts, tests): the
        request lives as any other, its outcome is returned and logged; `progress` is called
        as it goes."""
        run = await self._life.submit(plan, _Quiet(progress))
        if run is None:  # the plan's dedupe key is on record: an undo or retry done already
            done = "undone" if plan.kind is RunKind.UNDO else "retried"
            return self._runner.not_run(plan, f"this request was already {done}")
        return run

    async def execute(
        self, approved: Approved, *, progress: ProgressCallback | None = None
    ) -> RunResult:
        """Send each room's patch (concurrently, paced by the client's rate budget), audited."""
        return await self.run(self.plan(approved), progress=progress)

    # -- undo and retry (button clicks): `bot.followups` ----------------------------------------

    async def plan_undo(self, request_key: str, actor: Actor) -> Plan | Rejected:
        """Plan undoing a request (see `FollowUps.plan_undo`)."""
        return await self._followups.plan_undo(request_key, actor)

    async def plan_retry(self, request_key: str, actor: Actor) -> Plan | Rejected:
        """Plan retrying what a request did not do (see `FollowUps.plan_retry`)."""
        return await self._followups.plan_retry(request_key, actor)

    async def first_delivery(self, key: str) -> bool:
        """True the first time `key` is seen (see `FollowUps.first_delivery`)."""
        return await self._followups.first_delivery(key)

    # -- time-boxed changes: `bot.timers` ------------------------------------------------------

    @property
    def timers(self) -> Timers | None:
        """Time-boxed changes' timers: list, keep, extend, revert now (None without a store)."""
        return self._timers

    async def pending_timers(self, approved: Approved) -> TimersView:
        """`timers [ROOM...]`: the pending reverts (of those rooms), soonest first."""
        rooms = approved.command.rooms
        if self._timers is None:
            return TimersView(rooms=rooms, problem="timers need the audit store")
        return await self._timers.view(rooms)

    async def revert_now(
        self, revert_key: str, actor: Actor, delivery: Delivery
    ) -> RunResult | Rejected:
        """Revert now: take the timer (once, whoever else clicks or whichever loop looks) and
        carry its revert out at once, reported through `delivery`."""
        if self._timers is None or self._due is None:
            return Rejected(message="timers need the audit store, which is not configured")
        taken = await self._timers.take_now(revert_key, actor)
        if isinstance(taken, Rejected):
            return taken
        return await self._carry_out_taken(taken, delivery)

    async def _carry_out_taken(
        self, taken: TakenRequest, delivery: Delivery
    ) -> RunResult | Rejected:
        assert self._due is not None
        run = await self._due.carry_out_due(taken, delivery)
        if run is None:
            return Rejected(
                message="nothing to revert: the change set nothing that can be set back"
            )
        if isinstance(run, HeldForApproval):
            return Rejected(
                message=f"the revert was not run: {run.why}; it is asked for in the thread"
            )
        return run

    # -- reads: `bot.reads` --------------------------------------------------------------------

    async def show(self, approved: Approved) -> list[RoomView]:
        """Read each named room with `get_room_info`; for a few rooms (room cards), with their
        time-boxed changes still to revert."""
        views = await self._reads.show(approved)
        if self._timers is None or len(views) > SHOW_SEATS_MAX_ROOMS:
            return views
        try:
            pending = await self._timers.pending(approved.command.rooms)
        except AuditError as exc:
            self._audit.failed("read", exc)
            return views
        return [
            replace(v, timers=tuple(t for t in pending if v.room_id in t.command.rooms))
            for v in views
        ]

    async def members(self, approved: Approved) -> MembersView:
        """`members ROOM`: every member (up to a cap), and the total."""
        return await self._reads.members(approved)

    async def banned(self, approved: Approved) -> BannedView:
        """`banned ROOM`: every ban with its end time (up to a cap)."""
        return await self._reads.banned(approved)

    async def seats(self, approved: Approved) -> SeatsView:
        """`seats ROOM`: who sits on each seat, and what each forbids."""
        return await self._reads.seats(approved)

    async def history(self, approved: Approved) -> HistoryView:
        """The newest audit entries for the room named in a `history` command."""
        return await self._reads.history(approved)

    async def timeline(self, approved: Approved) -> TimelineView:
        """The timeline of a `timeline` command's window and rooms (DESIGN §2.14)."""
        return await timeline_view(
            self._store, approved.command, now=self._wall(), max_s=self._timeline_max_s
        )

    async def access(self, user_id: str) -> Access:
        """What `user_id` may run everywhere, and what more only in guardrailed channels."""
        return await self._reads.access(user_id)

    async def activity(self, user_id: str, **limits: int) -> Activity:
        """`user_id`'s newest requests, the rooms they touched lately, and their time-boxed
        changes still to revert."""
        activity = await self._reads.activity(user_id, **limits)
        if self._timers is None:
            return activity
        try:
            pending = await self._timers.pending()
        except AuditError as exc:
            self._audit.failed("read", exc)
            return activity
        return replace(activity, timers=tuple(t for t in pending if t.user_id == user_id))


def console_approval_refusal(command: Command, why: str) -> str:
    """The console's refusal of a request that needs a second person's approval."""
    return (
        f"`{command.verb}` was not run: {why}, and the console cannot ask for it. "
        f"Ask in Slack instead (`/room {command.canonical_text()}`): an approver approves it "
        "there."
    )


_CONFIRM_PROBLEMS: dict[ConfirmationStatus, str] = {
    ConfirmationStatus.NOT_FOUND: "this confirmation prompt is unknown; run the command again",
    ConfirmationStatus.WRONG_USER: "only the person who ran the command can confirm or cancel it",
    ConfirmationStatus.EXPIRED: (
        f"this confirmation expired (prompts last {CONFIRMATION_TTL_TEXT}); run the command again"
    ),
    ConfirmationStatus.ALREADY_RESOLVED: "this request was already confirmed or cancelled",
}


class _Quiet(LoggedDelivery):
    """The delivery of a request no adapter reports: logged, progress relayed to a callback."""

    progress_interval = 0.0

    def __init__(self, progress: ProgressCallback | None) -> None:
        super().__init__({"adapter": "log"})
        self._on_progress = progress

    async def progress(self, plan: Plan, progress: Progress) -> None:
        if self._on_progress is not None:
            await self._on_progress(progress)
