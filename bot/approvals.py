"""Two-person approval (DESIGN §2.12): a write the policy's `[approval]` table names is not run;
it waits, on record, for a second person.

* **Ask** (`Approvals.ask`): the request is recorded `awaiting_approval` with its plan (what
  would run, immutable from here on) and an expiry (`RequestLife.schedule`), then the adapter's
  `ApprovalNotices.asked` shows it (Slack: the thread with Approve / Deny, the approvals
  channel) and may grow its reply address (the thread it posted), which is recorded.
* **Approve** (`Approvals.approve`): whoever clicks must be an approver, not the requester, and
  allowed by the normal policy to run the verb in the request's channel, all judged now; the
  requester must still be allowed it too (a policy change since stops the request). Anyone else
  is refused and the refusal is audited. Then `AuditStore.approve_waiting` takes the request for
  this replica (of any number of clicks on any replicas, exactly one wins; a retried click finds
  it taken) and `RequestLife.carry_out` runs it from the recorded plan, reported through its
  own delivery.
* **Deny** (`Approvals.deny`): an approver ends it `denied`, with an optional reason; its
  requester may withdraw it (`cancelled`).
* **Expire**: a replica's loop ends every request past its expiry `expired` with its look for
  work (`AuditStore.find_work`) and hands them to `Approvals.expired` to tell people.

Every decision is on the request record: who asked and when (`user_id`, `created_at`), who
approved or denied and when (`decided_by`, `decided_at`), why (`decision_note`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Final, Protocol

from bot.audit import AuditError, AuditStore, Outcome, RequestRecord, RequestState
from bot.audit.approvals import approval_summary
from bot.audit.records import ApprovalDecision
from bot.outcomes import Actor, ApprovalPending, Plan, Rejected, RunKind, RunResult
from bot.policy import Decision, GroupDirectory, Policy
from bot.policy.approval import ApprovalRule
from bot.requests.delivery import Deliveries, Delivery
from bot.requests.life import RequestLife
from bot.requests.plans import PlanUnreadable, plan_from_json
from bot.requests.recorder import AuditRecorder, entries, new_request_key

log = logging.getLogger(__name__)

#: Decides whether an actor may run a verb (the service's `authorize`).
Authorize = Callable[[str, Actor], Awaitable[Decision]]

#: The longest reason a denial keeps.
MAX_NOTE: Final = 300


class ApprovalNotices(Protocol):
    """How an adapter shows a request awaiting approval and what became of it."""

    async def asked(self, pending: ApprovalPending) -> Mapping[str, Any] | None:
        """Show `pending` (what would run, who may approve, until when, Approve / Deny).
        Returns the reply address to record from now on (grown by what was posted: the run
        is then reported there), or None to keep it."""
        ...

    async def decided(self, record: RequestRecord) -> None:
        """Show the decision on a request that awaited approval (`record.decision`: approved
        by whom, denied by whom and why, withdrawn, expired), where it was shown."""
        ...


#: Builds the notices of a recorded request from its reply address.
NoticesFactory = Callable[[Mapping[str, Any]], ApprovalNotices]


class LoggedNotices:
    """Notices nobody sees but the log (an adapter that shows none)."""

    def __init__(self, address: Mapping[str, Any]) -> None:
        self._address = dict(address)

    async def asked(self, pending: ApprovalPending) -> Mapping[str, Any] | None:
        log.info("request %s awaits approval: %s", pending.request_key, pending.why)
        return None

    async def decided(self, record: RequestRecord) -> None:
        log.info(
            "request %s awaited approval: %s by %s",
            record.request_key,
            record.decision,
            record.decided_by or "nobody",
        )


def rooms_of(plan: Plan) -> int:
    """How many rooms `plan` changes (what `above_rooms` counts)."""
    rooms = {getattr(call, "room_id", None) for call in plan.calls}
    rooms.discard(None)
    return len(rooms) or len(plan.command.rooms)


def judged_verb(plan: Plan) -> str:
    """The verb whoever decides on `plan` must be allowed: its own, or for an undo its inverse
    when it has one (`unban`), else the original verb (the one whose change it reverts)."""
    if plan.kind is RunKind.UNDO and plan.command.spec.undo_verb is not None:
        return plan.command.spec.undo_verb
    return plan.command.verb


def approval_verb(plan: Plan) -> str | None:
    """The verb an approval rule judges `plan` by: its own verb; for an undo or a time-boxed
    change's revert, the inverse verb when it has one (`unban` for a ban), else none (only its
    room count then counts: a revert of 200 rooms is a mass change of its own)."""
    if plan.kind in (RunKind.UNDO, RunKind.REVERT):
        return plan.command.spec.undo_verb
    return plan.command.verb


class Approvals:
    """Two-person approval for one process (see the module docstring)."""

    def __init__(
        self,
        store: AuditStore,
        life: RequestLife,
        audit: AuditRecorder,
        *,
        policy: Callable[[], Policy],
        groups: GroupDirectory | None,
        authorize: Authorize,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._life = life
        self._audit = audit
        self._policy = policy
        self._groups = groups
        self._authorize = authorize
        self._clock = clock
        self._notices: dict[str, NoticesFactory] = {}
        #: The deliveries an approved request is reported through (the composition root
        #: passes the loop's, so a click on any replica reports where the request asked).
        self.deliveries = Deliveries()

    def register(self, adapter: str, notices: NoticesFactory) -> None:
        """Show the approvals of requests whose address names `adapter` with `notices`."""
        self._notices[adapter] = notices

    def notices_for(self, address: Mapping[str, Any]) -> ApprovalNotices:
        """The notices for a recorded reply address (logging ones when no adapter claims it)."""
        factory = self._notices.get(str(address.get("adapter") or "unknown"))
        return LoggedNotices(address) if factory is None else factory(address)

    @property
    def rule(self) -> ApprovalRule | None:
        """The policy's `[approval]` table now (None: nothing needs approval)."""
        return self._policy().approval

    def why(self, plan: Plan) -> str | None:
        """Why `plan` needs a second person's approval before it runs, or None."""
        rule = self.rule
        if rule is None:
            return None
        verb = approval_verb(plan)
        rooms = rooms_of(plan)
        if verb is None:
            return rule.why("", rooms)
        return rule.why(verb, rooms)

    async def hold_due(self, plan: Plan, delivery: Delivery) -> str | None:
        """Why a request whose time came (a time-boxed change's revert) must first wait for a
        second person, having asked for it; None when it may run now. It waits when the table
        would demand approval for that plan itself (DESIGN §2.12: "a mass unmute of 200 rooms
        does need approval"), asked once, as a request of its own, in the same thread. Only a
        revert: any other request that falls due (an approved one a survivor took over) was
        approved already."""
        if plan.kind is not RunKind.REVERT:
            return None
        why = self.why(plan)
        if why is None:
            return None
        asked = replace(plan, request_key=new_request_key())
        # A repeat (a tick retried after asking) finds the approval already asked: it stands.
        await self.ask(asked, delivery, why, dedupe_key=f"approve:{plan.request_key}")
        return why

    # -- ask -------------------------------------------------------------------------------------

    async def ask(
        self, plan: Plan, delivery: Delivery, why: str, *, dedupe_key: str | None = None
    ) -> ApprovalPending | None:
        """Record `plan` awaiting approval and show it (see the module docstring). None for a
        repeat (`dedupe_key` on record: nothing is shown again). Raises `AuditError` when it
        cannot be recorded (nothing would run, nothing is shown)."""
        rule = self.rule
        assert rule is not None
        expires_at = self._clock() + rule.expire_s
        recorded = await self._life.schedule(
            plan,
            delivery,
            run_after=None,
            waiting=RequestState.AWAITING_APPROVAL,
            dedupe_key=dedupe_key,
            expires_at=expires_at,
        )
        if not recorded:
            return None
        pending = ApprovalPending(
            plan=plan,
            why=why,
            approvers=rule.approvers,
            expires_at=expires_at,
            channel=rule.channel,
        )
        address = await self.notices_for(delivery.address()).asked(pending)
        if address is not None:
            try:
                await self._store.readdress_waiting(plan.request_key, dict(address))
            except AuditError as exc:
                self._audit.failed("approval address", exc)
        return pending

    # -- decide ----------------------------------------------------------------------------------

    async def approve(self, request_key: str, actor: Actor) -> RunResult | Rejected:
        """`actor` approves the request: checked now, then run exactly once (see the module
        docstring). The run, or why not (refusals are audited)."""
        found = await self._waiting(request_key)
        if isinstance(found, Rejected):
            return found
        record, plan = found
        refusal = await self._may_decide(record, plan, actor)
        if refusal is not None:
            return refusal
        stopped = await self._stopped_by_policy(record, plan, actor)
        if stopped is not None:
            return stopped
        taken = await self._store.approve_waiting(request_key, by=actor.user_id)
        if taken is None:
            return await self._gone(request_key)
        await self._tell(taken.record)
        delivery = self.deliveries.for_address(taken.record.reply)
        return await self._life.carry_out(plan, delivery, taken.lease)

    async def deny(
        self, request_key: str, actor: Actor, reason: str | None = None
    ) -> RequestRecord | Rejected:
        """`actor` denies the request with `reason` (its requester: withdraws it). The record
        as it ended, or why not (refusals are audited)."""
        found = await self._waiting(request_key)
        if isinstance(found, Rejected):
            return found
        record, plan = found
        withdrawn = actor.user_id == record.user_id
        if not withdrawn:
            refusal = await self._may_decide(record, plan, actor)
            if refusal is not None:
                return refusal
        note = " ".join((reason or "").split())[:MAX_NOTE] or None
        ended = await self._store.decline_waiting(
            request_key, by=actor.user_id, note=note, withdrawn=withdrawn
        )
        if ended is None:
            return await self._gone(request_key)
        await self._ended(ended, plan)
        return ended

    async def expired(self, records: Iterable[RequestRecord]) -> None:
        """Tell people about requests that expired waiting (the loop found them)."""
        for record in records:
            try:
                plan: Plan | None = plan_from_json(record.plan, record.request_key)
            except PlanUnreadable:
                plan = None
            await self._ended(record, plan)

    async def awaiting_for(self, user_id: str, *, limit: int = 10) -> list[ApprovalPending]:
        """The requests `user_id` could approve now (an approver, not the requester), newest
        first: what the App Home lists. Whether the policy lets them run the command there is
        judged when they click."""
        rule = self.rule
        if rule is None:
            return []
        check = await rule.check(user_id, self._groups)
        if not check.ok:
            return []
        pending = []
        for record in await self._store.awaiting_approval(limit=50):
            if record.user_id == user_id:
                continue
            try:
                plan = plan_from_json(record.plan, record.request_key)
            except PlanUnreadable:
                continue
            pending.append(
                ApprovalPending(
                    plan=plan,
                    why=self.why(plan) or "it needs a second person's approval",
                    approvers=rule.approvers,
                    expires_at=record.expires_at or 0.0,
                    channel=rule.channel,
                )
            )
            if len(pending) >= limit:
                break
        return pending

    # -- the checks ------------------------------------------------------------------------------

    async def _waiting(self, request_key: str) -> tuple[RequestRecord, Plan] | Rejected:
        record = await self._store.get_request(request_key)
        if record is None:
            return Rejected(message="this approval request is unknown; nothing was done")
        if record.state is not RequestState.AWAITING_APPROVAL:
            return Rejected(message=ended_message(record))
        try:
            plan = plan_from_json(record.plan, record.request_key)
        except PlanUnreadable as exc:
            return Rejected(message=f"this request cannot be read ({exc}); nothing was done")
        return record, plan

    async def _may_decide(self, record: RequestRecord, plan: Plan, actor: Actor) -> Rejected | None:
        """None when `actor` may approve or deny `record` now; else the audited refusal."""
        rule = self.rule
        where = replace(actor, channel_id=record.channel_id)
        why: str | None = None
        decision: Decision | None = None
        if actor.user_id == record.user_id:
            why = "you asked for this request, so you cannot approve it: a second person must"
        elif rule is None:
            why = "the policy no longer has an [approval] table, so nobody can approve this"
        else:
            check = await rule.check(actor.user_id, self._groups)
            if not check.ok:
                why = "you are not one of this request's approvers"
                if check.problems:
                    why += " (" + "; ".join(check.problems) + ")"
            else:
                verb = judged_verb(plan)
                decision = await self._authorize(verb, where)
                if not decision.allowed:
                    why = (
                        f"you are an approver, but the policy does not let you run "
                        f"`{verb}` in this request's channel: {decision.reason}"
                    )
        if why is None:
            return None
        detail = f"approval of request {record.request_key} refused: {why}"
        await self._audit.record(
            entries(where, plan.command, plan.raw_text, outcome=Outcome.DENIED, detail=detail)
        )
        return Rejected(message=why, denied=True)

    async def _stopped_by_policy(
        self, record: RequestRecord, plan: Plan, actor: Actor
    ) -> Rejected | None:
        """The requester must still be allowed what they asked: a policy change since the
        request stops it (denied on record, people told)."""
        decision = await self._authorize(judged_verb(plan), plan.actor)
        if decision.allowed:
            return None
        note = f"stopped: the policy no longer allows it ({decision.reason})"
        ended = await self._store.decline_waiting(record.request_key, by=actor.user_id, note=note)
        if ended is not None:
            await self._ended(ended, plan)
        return Rejected(message=f"this request cannot run any more: {decision.reason}")

    async def _gone(self, request_key: str) -> Rejected:
        record = await self._store.get_request(request_key)
        if record is None:
            return Rejected(message="this approval request is unknown; nothing was done")
        return Rejected(message=ended_message(record))

    async def _ended(self, record: RequestRecord, plan: Plan | None) -> None:
        """A request that will never run: its rows say so (one a target, under its own key,
        so `history` and `roombot audit` show it), and people are told."""
        if plan is not None:
            outcome = Outcome.DENIED if record.state is RequestState.DENIED else Outcome.CANCELLED
            rows = entries(
                plan.actor,
                plan.command,
                plan.raw_text,
                outcome=outcome,
                detail=approval_summary(record),
            )
            await self._audit.record([replace(r, request_key=record.request_key) for r in rows])
        await self._tell(record)

    async def _tell(self, record: RequestRecord) -> None:
        try:
            await self.notices_for(record.reply).decided(record)
        except Exception:
            log.exception("could not show the decision on request %s", record.request_key)


def ended_message(record: RequestRecord) -> str:
    """Why a request that awaited approval can be decided no more, in one sentence."""
    by = f" by `{record.decided_by}`" if record.decided_by else ""
    decision = record.decision
    if decision == ApprovalDecision.APPROVED:
        return f"this request was already approved{by}; it runs once, nothing was done again"
    if decision == ApprovalDecision.DENIED:
        note = f" ({record.decision_note})" if record.decision_note else ""
        return f"this request was denied{by}{note}; nothing was done"
    if decision == ApprovalDecision.WITHDRAWN:
        return "this request was withdrawn by its requester; nothing was done"
    if decision == ApprovalDecision.EXPIRED or record.state is RequestState.EXPIRED:
        return "this request expired before anyone approved it; nothing was done, ask again"
    return "this request no longer awaits approval; nothing was done"
