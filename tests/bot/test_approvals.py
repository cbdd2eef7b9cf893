"""Two-person approval in the core (DESIGN §2.12), on both store backends: a request that needs
an approver waits on record; exactly one approval runs it, however many clicks on however many
replicas; a denial, an expiry or a policy change stops it; the requester, a non-approver and an
approver without the verb there are refused, and each refusal is audited. The record keeps who
asked and who decided, with the times. The loop ticks by hand.

On PostgreSQL expiry is judged on the server's clock, on SQLite on the store's (fake) clock:
each replica's approvals are given a clock that matches (`approval_clock`), shifted back to
make a request expire at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from bot.approvals import Approvals
from bot.audit import AuditStore, Outcome, RequestRecord, RequestState
from bot.audit.records import ApprovalDecision
from bot.outcomes import Actor, ApprovalPending, Plan, Rejected, RunKind, RunResult, Source
from bot.policy import Decision, Policy, Role, known_verbs
from bot.policy.approval import ApprovalRule
from bot.requests.delivery import Deliveries, Delivery
from bot.requests.due import DueRequests
from bot.requests.leases import LeaseBook
from bot.requests.life import RequestLife
from bot.requests.loop import RequestLoop
from bot.requests.recorder import AuditRecorder
from bot.requests.runner import Runner
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from bot.timeline import Window, build_timeline, entry_lines
from testkit.clock import FakeClock
from tests.bot.corekit import plan_for, room_of
from tests.bot.requestkit import RecordingDelivery, Replicas, new_request

REPLY = {"adapter": "test", "channel": "C0GENERAL1"}
NOW = 1_700_000_000.0
GENERAL = "C0GENERAL1"

ALICE = "U0ALICE01"  # asks; also an approver (so self-approval is a real case)
BOB = "U0BOB0001"  # approver, may mute
ERIN = "U0ERIN001"  # approver, may mute
CAROL = "U0CAROL01"  # approver, may not mute
DAVE = "U0DAVE001"  # may mute, not an approver

RULE = ApprovalRule(verbs=frozenset({"mute-all"}), users=frozenset({ALICE, BOB, ERIN, CAROL}))


def policy(*, alice_may_mute: bool = True, rule: ApprovalRule | None = RULE) -> Policy:
    muters = {BOB, ERIN, DAVE} | ({ALICE} if alice_may_mute else set())
    return Policy(
        roles=[
            Role("muters", frozenset({"mute-all", "unmute-all"}), users=frozenset(muters)),
            Role("viewers", frozenset({"show"}), users=frozenset({CAROL})),
        ],
        verbs=known_verbs().values(),
        approval=rule,
    )


def who(user_id: str, channel: str | None = GENERAL) -> Actor:
    return Actor(user_id=user_id, source=Source.BUTTON, team_id="T1", channel_id=channel)


@dataclass
class RecordingNotices:
    asked: list[ApprovalPending] = field(default_factory=list)
    decided: list[RequestRecord] = field(default_factory=list)

    async def on_asked(self, pending: ApprovalPending) -> Mapping[str, Any] | None:
        self.asked.append(pending)
        return {**REPLY, "thread": "posted"}

    async def on_decided(self, record: RequestRecord) -> None:
        self.decided.append(record)


class _Notices:
    def __init__(self, sink: RecordingNotices) -> None:
        self._sink = sink

    async def asked(self, pending: ApprovalPending) -> Mapping[str, Any] | None:
        return await self._sink.on_asked(pending)

    async def decided(self, record: RequestRecord) -> None:
        await self._sink.on_decided(record)


class Node:
    """One replica: its store, life, approvals (with `notices`) and loop."""

    def __init__(
        self,
        store: AuditStore,
        client: RoomEngineClient,
        clock: Callable[[], float],
        box: list[Policy],
        approval_clock: Callable[[], float],
        notices: RecordingNotices,
    ) -> None:
        self.store = store
        self.delivery = RecordingDelivery(reply=dict(REPLY))
        book = LeaseBook(store, monotonic=clock)
        recorder = AuditRecorder(store)
        # The runner's wall clock (a time box's due time) is the approvals' (the store's).
        runner = Runner(client, recorder, monotonic=clock, wall=approval_clock)
        self.life = RequestLife(store, runner, recorder, book=book)

        async def authorize(verb: str, actor: Actor) -> Decision:
            return await box[0].decide(
                user_id=actor.user_id, verb=verb, channel_id=actor.channel_id, groups=None
            )

        self.approvals = Approvals(
            store,
            self.life,
            recorder,
            policy=lambda: box[0],
            groups=None,
            authorize=authorize,
            clock=approval_clock,
        )
        self.approvals.register("test", lambda _address: _Notices(notices))
        deliveries = Deliveries()
        deliveries.register("test", self._delivery)
        self.approvals.deliveries = deliveries
        self.loop = RequestLoop(
            store,
            client,
            deliveries,
            book,
            monotonic=clock,
            due=DueRequests(store, self.life),
            on_expired=self.approvals.expired,
        )

    def _delivery(self, _address: Mapping[str, Any]) -> Delivery:
        return self.delivery


@dataclass
class Setup:
    cluster: Replicas
    client: RoomEngineClient
    clock: FakeClock
    box: list[Policy] = field(default_factory=lambda: [policy()])
    notices: RecordingNotices = field(default_factory=RecordingNotices)

    async def node(self, name: str, *, shift: float = 0.0) -> Node:
        store = await self.cluster.open(name)

        def approval_clock() -> float:
            base = time.time() if store.backend == "postgresql" else self.clock()
            return base + shift

        return Node(store, self.client, self.cluster.clock, self.box, approval_clock, self.notices)


@pytest.fixture
def setup(cluster: Replicas, client: RoomEngineClient, clock: FakeClock) -> Setup:
    return Setup(cluster, client, clock)


def mute(key: str = "asked", room: str = "room-1", by: str = ALICE) -> Plan:
    return replace(plan_for(f"mute-all {room}", who(by, GENERAL)), request_key=key)


def updates(emulator: RoomEngineEmulator) -> list[str]:
    return [room_of(r.body) for r in emulator.requests if r.command == "update_room_info"]


async def ask(node: Node, plan: Plan | None = None) -> ApprovalPending:
    plan = plan or mute()
    why = node.approvals.why(plan)
    assert why is not None
    pending = await node.approvals.ask(plan, node.delivery, why)
    assert pending is not None
    return pending


async def record(node: Node, key: str = "asked") -> RequestRecord:
    found = await node.store.get_request(key)
    assert found is not None
    return found


async def refusals(node: Node) -> list[str]:
    rows = await node.store.query(limit=50)
    return [r.detail or "" for r in rows if r.outcome is Outcome.DENIED]


# -- asking ----------------------------------------------------------------------------------------


async def test_a_request_that_needs_approval_waits_on_record_and_is_shown(
    setup: Setup, emulator: RoomEngineEmulator
) -> None:
    a = await setup.node("a")
    assert a.approvals.why(mute(room="room-1")) == "`mute-all` needs a second person's approval"
    assert a.approvals.why(plan_for("unmute-all room-1")) is None
    pending = await ask(a)
    assert pending.approvers == tuple(sorted(RULE.users))
    waiting = await record(a)
    assert (waiting.state, waiting.owner, waiting.user_id) == (
        RequestState.AWAITING_APPROVAL,
        None,
        ALICE,
    )
    assert waiting.expires_at == pytest.approx(pending.expires_at)
    assert waiting.reply == {**REPLY, "thread": "posted"}  # where it was shown is recorded
    assert [p.request_key for p in setup.notices.asked] == ["asked"]
    await a.loop.tick()
    assert updates(emulator) == []  # nothing ran
    assert a.delivery.kinds() == []


async def test_a_room_count_rule_counts_the_rooms_of_the_plan(setup: Setup) -> None:
    setup.box[0] = policy(rule=ApprovalRule(above_rooms=1, users=frozenset({BOB})))
    a = await setup.node("a")
    assert a.approvals.why(plan_for("mute-all room-1")) is None
    assert "2 rooms (more than 1)" in (a.approvals.why(plan_for("mute-all room-1 room-2")) or "")


async def test_a_repeated_ask_is_recorded_and_shown_once(setup: Setup) -> None:
    a = await setup.node("a")
    plan = mute()
    assert await a.approvals.ask(plan, a.delivery, "why", dedupe_key="slash:T1") is not None
    again = replace(plan, request_key="asked-again")
    assert await a.approvals.ask(again, a.delivery, "why", dedupe_key="slash:T1") is None
    assert len(setup.notices.asked) == 1


# -- approving -------------------------------------------------------------------------------------


async def test_two_approvers_clicking_at_once_on_two_replicas_run_it_exactly_once(
    setup: Setup, emulator: RoomEngineEmulator
) -> None:
    a = await setup.node("a")
    b = await setup.node("b")
    await ask(a)
    results = await asyncio.gather(
        a.approvals.approve("asked", who(BOB)),
        b.approvals.approve("asked", who(ERIN)),
        a.approvals.approve("asked", who(ERIN)),  # a retried click
        b.approvals.approve("asked", who(BOB)),
    )
    runs = [r for r in results if isinstance(r, RunResult)]
    assert len(runs) == 1
    assert all("already approved" in r.message for r in results if isinstance(r, Rejected))
    assert updates(emulator) == ["room-1"]
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True
    done = await record(a)
    assert done.state is RequestState.REPORTED
    assert done.decision == ApprovalDecision.APPROVED
    assert done.decided_by in (BOB, ERIN)
    assert done.decided_at is not None
    assert done.user_id == ALICE
    assert done.created_at <= done.decided_at
    assert [row.outcome for row in await a.store.rows_for_request("asked")] == [Outcome.OK]
    assert [(d.decision, d.decided_by) for d in setup.notices.decided] == [
        (ApprovalDecision.APPROVED, done.decided_by)
    ]
    # Reported through the request's own delivery, on whichever replica won.
    assert sorted(a.delivery.kinds() + b.delivery.kinds()) == ["finish", "start"]
    # A click after the run changes nothing.
    late = await b.approvals.approve("asked", who(BOB))
    assert isinstance(late, Rejected)
    assert updates(emulator) == ["room-1"]


async def test_the_requester_cannot_approve_their_own_request_and_is_audited(
    setup: Setup, emulator: RoomEngineEmulator
) -> None:
    a = await setup.node("a")
    await ask(a)
    refused = await a.approvals.approve("asked", who(ALICE))
    assert isinstance(refused, Rejected)
    assert refused.denied
    assert "you asked for this request" in refused.message
    assert updates(emulator) == []
    assert (await record(a)).state is RequestState.AWAITING_APPROVAL
    [detail] = await refusals(a)
    assert detail.startswith("approval of request asked refused: you asked for this request")


async def test_a_non_approver_and_an_approver_without_the_verb_there_are_refused(
    setup: Setup, emulator: RoomEngineEmulator
) -> None:
    a = await setup.node("a")
    await ask(a)
    stranger = await a.approvals.approve("asked", who(DAVE))
    assert isinstance(stranger, Rejected)
    assert stranger.message == "you are not one of this request's approvers"
    carol = await a.approvals.approve("asked", who(CAROL))
    assert isinstance(carol, Rejected)
    assert "does not let you run `mute-all` in this request's channel" in carol.message
    # Judged in the request's channel, not where the click came from (the approvals channel).
    setup.box[0] = Policy(
        roles=[
            Role("muters", frozenset({"mute-all"}), users=frozenset({ALICE})),
            Role(
                "elsewhere",
                frozenset({"mute-all"}),
                users=frozenset({BOB}),
                channels=frozenset({"C0APPROVALS"}),
            ),
        ],
        verbs=known_verbs().values(),
        approval=RULE,
    )
    guarded = await a.approvals.approve("asked", who(BOB, "C0APPROVALS"))
    assert isinstance(guarded, Rejected)
    assert "does not let you run" in guarded.message
    assert updates(emulator) == []
    assert len(await refusals(a)) == 3
    assert (await record(a)).state is RequestState.AWAITING_APPROVAL
    # Denying is refused to them too.
    assert isinstance(await a.approvals.deny("asked", who(DAVE), "no"), Rejected)
    assert (await record(a)).state is RequestState.AWAITING_APPROVAL


async def test_a_policy_change_before_the_click_stops_the_request(
    setup: Setup, emulator: RoomEngineEmulator
) -> None:
    a = await setup.node("a")
    await ask(a)
    setup.box[0] = policy(alice_may_mute=False)
    stopped = await a.approvals.approve("asked", who(BOB))
    assert isinstance(stopped, Rejected)
    assert "cannot run any more" in stopped.message
    assert updates(emulator) == []
    ended = await record(a)
    assert (ended.state, ended.decision) == (RequestState.DENIED, ApprovalDecision.DENIED)
    assert (ended.decision_note or "").startswith("stopped: the policy no longer allows it")
    assert [d.decision for d in setup.notices.decided] == [ApprovalDecision.DENIED]


async def test_removing_the_approval_table_leaves_nobody_able_to_approve(
    setup: Setup, emulator: RoomEngineEmulator
) -> None:
    a = await setup.node("a")
    await ask(a)
    setup.box[0] = policy(rule=None)
    refused = await a.approvals.approve("asked", who(BOB))
    assert isinstance(refused, Rejected)
    assert "no longer has an [approval] table" in refused.message
    assert updates(emulator) == []


# -- denying and expiring --------------------------------------------------------------------------


async def test_a_denial_with_a_reason_ends_it_and_no_approval_runs_it_after(
    setup: Setup, emulator: RoomEngineEmulator
) -> None:
    a = await setup.node("a")
    b = await setup.node("b")
    await ask(a)
    ended = await b.approvals.deny("asked", who(BOB), "  not during   the keynote ")
    assert isinstance(ended, RequestRecord)
    assert (ended.state, ended.decision, ended.decided_by, ended.decision_note) == (
        RequestState.DENIED,
        ApprovalDecision.DENIED,
        BOB,
        "not during the keynote",
    )
    assert ended.decided_at is not None
    late = await a.approvals.approve("asked", who(ERIN))
    assert isinstance(late, Rejected)
    assert late.message == (
        f"this request was denied by `{BOB}` (not during the keynote); nothing was done"
    )
    assert updates(emulator) == []
    assert [(d.decision, d.decision_note) for d in setup.notices.decided] == [
        (ApprovalDecision.DENIED, "not during the keynote")
    ]
    # Its rows (one a room, under its own key) say who asked, who denied it, when and why.
    [row] = await a.store.rows_for_request("asked")
    assert (row.outcome, row.room_id, row.user_id) == (Outcome.DENIED, "room-1", ALICE)
    assert row.detail is not None
    assert row.detail.startswith(f"asked by {ALICE} at ")
    assert f"; denied by {BOB} at " in row.detail
    assert row.detail.endswith(": not during the keynote")


async def test_a_denied_undo_may_be_asked_for_again_but_an_approved_one_not(
    setup: Setup,
) -> None:
    a = await setup.node("a")
    plan = mute()
    assert await a.approvals.ask(plan, a.delivery, "why", dedupe_key="undo:K") is not None
    assert isinstance(await a.approvals.deny("asked", who(BOB)), RequestRecord)
    again = replace(plan, request_key="asked-2")
    assert await a.approvals.ask(again, a.delivery, "why", dedupe_key="undo:K") is not None
    assert isinstance(await a.approvals.approve("asked-2", who(BOB)), RunResult)
    third = replace(plan, request_key="asked-3")
    assert await a.approvals.ask(third, a.delivery, "why", dedupe_key="undo:K") is None


async def test_the_requester_may_withdraw_their_request(setup: Setup) -> None:
    a = await setup.node("a")
    await ask(a)
    ended = await a.approvals.deny("asked", who(ALICE))
    assert isinstance(ended, RequestRecord)
    assert (ended.state, ended.decision) == (RequestState.CANCELLED, ApprovalDecision.WITHDRAWN)


async def test_an_expired_request_cannot_be_approved_and_the_loop_ends_it_once(
    setup: Setup, emulator: RoomEngineEmulator
) -> None:
    # Asked "an hour ago": its 15 minutes are over on either backend's clock.
    a = await setup.node("a", shift=-3600)
    b = await setup.node("b")
    await ask(a)
    refused = await b.approvals.approve("asked", who(BOB))  # not yet swept: still refused
    assert isinstance(refused, Rejected)
    assert updates(emulator) == []
    await asyncio.gather(a.loop.tick(), b.loop.tick())
    ended = await record(a)
    assert (ended.state, ended.decision, ended.decided_by) == (
        RequestState.EXPIRED,
        ApprovalDecision.EXPIRED,
        None,
    )
    assert [d.decision for d in setup.notices.decided] == [ApprovalDecision.EXPIRED]  # once
    late = await b.approvals.approve("asked", who(BOB))
    assert isinstance(late, Rejected)
    assert "expired" in late.message
    await asyncio.gather(a.loop.tick(), b.loop.tick())
    assert len(setup.notices.decided) == 1
    assert updates(emulator) == []
    [row] = await a.store.rows_for_request("asked")  # recorded once, by one replica
    assert row.outcome is Outcome.CANCELLED
    assert "expired" in (row.detail or "")


async def test_a_request_not_yet_expired_is_left_waiting_by_the_loop(setup: Setup) -> None:
    a = await setup.node("a")
    await ask(a)
    await a.loop.tick()
    assert (await record(a)).state is RequestState.AWAITING_APPROVAL
    assert setup.notices.decided == []


async def test_a_loop_expires_only_the_requests_its_adapters_can_show(setup: Setup) -> None:
    a = await setup.node("a")  # delivers "test" (and the logged adapters), not Slack
    past = (time.time() if a.store.backend == "postgresql" else setup.clock()) - 60
    assert await a.store.record_request(
        new_request(
            "slack-1",
            reply={"adapter": "slack"},
            waiting=RequestState.AWAITING_APPROVAL,
            expires_at=past,
        )
    )
    await a.loop.tick()
    assert (await record(a, "slack-1")).state is RequestState.AWAITING_APPROVAL
    assert setup.notices.decided == []


# -- with a time box (DESIGN §2.11) ----------------------------------------------------------------


async def test_an_approved_time_box_starts_when_it_runs_not_when_it_was_asked(
    setup: Setup, emulator: RoomEngineEmulator
) -> None:
    a = await setup.node("a")
    plan = replace(plan_for("mute-all room-1 --for 30m", who(ALICE, GENERAL)), request_key="asked")
    await ask(a, plan)
    assert await a.store.pending_timers() == []  # nothing is timed while it waits
    setup.clock.advance(600)  # ten minutes pass before anyone approves

    def wall() -> float:  # the runner's clock: the store's (fake on SQLite, real on PostgreSQL)
        return time.time() if a.store.backend == "postgresql" else setup.clock()

    before = wall()
    run = await a.approvals.approve("asked", who(BOB))
    after = wall()
    assert isinstance(run, RunResult)
    assert run.succeeded
    [timer] = await a.store.pending_timers()
    assert timer.run_after is not None
    assert before + 1800 <= timer.run_after <= after + 1800


async def test_the_timeline_shows_who_asked_and_who_approved_or_denied(
    setup: Setup, emulator: RoomEngineEmulator
) -> None:
    a = await setup.node("a")
    await ask(a)
    await a.approvals.deny("asked", who(BOB), "not during the keynote")
    await ask(a, mute("second", room="room-2"))
    await a.approvals.approve("second", who(ERIN))
    timeline = await build_timeline(a.store, Window(0.0, 4e9))
    denied, approved = (" ".join(entry_lines(e)) for e in timeline.entries)
    assert f"{ALICE} (button) mute-all room-1" in denied
    assert f"denied by {BOB} at " in denied
    assert "not during the keynote" in denied
    assert f"{ALICE} (button) mute-all room-2" in approved
    assert f"approved by {ERIN} at " in approved
    assert "1 ok, RequestId Id-" in approved


async def test_only_a_revert_is_held_for_approval_when_it_falls_due(setup: Setup) -> None:
    """A due request that is no revert (an approved one a survivor carries out) was approved
    already: it is never asked for again."""
    a = await setup.node("a")
    plan = mute()
    assert a.approvals.why(plan) is not None  # the table names it
    assert await a.approvals.hold_due(plan, a.delivery) is None
    assert setup.notices.asked == []
    revert = replace(plan, kind=RunKind.REVERT)
    assert await a.approvals.hold_due(revert, a.delivery) is None  # a mute's revert: no rule
