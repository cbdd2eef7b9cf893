"""A write request's life in one replica (`RequestLife`, through `RoomService.submit`/`run`): on
record from the claim with its lease, four store transactions for a one-room write, reported
through its delivery and then released; a claim that cannot be written refuses the request (or
lets it run unaudited, and logged, when allowed); a request another replica took over is fenced
(a begin or complete refused, a lease found lost before a call) and this replica sends and posts
nothing more; a run cancelled by shutdown keeps its lease and pending rows for a survivor; an
unexpected error hands the request back at once; audit retries stay within their allowance.
Also: the rate budget that grants nothing, Retry of what a survivor found not applied, and a
client built with the store's budget."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx
import pytest

from bot.audit import AuditError, Lease, NewEntry, NewRequest, Outcome, RequestState
from bot.audit.rows import Completion
from bot.budget import RateBudgetUnavailable
from bot.config import load_settings
from bot.failures import describe_failure
from bot.outcomes import Approved, FailureKind, Plan, RunKind, RunResult
from bot.requests.delivery import Deliveries
from bot.requests.leases import LeaseBook
from bot.requests.life import RequestLife
from bot.requests.loop import RequestLoop
from bot.requests.recorder import AuditRecorder
from bot.requests.runner import READ_BEFORE_MAX_ROOMS, Runner
from bot.tencent.client import RoomEngineClient
from testkit.clock import FakeClock
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import ALICE, SDKAPPID, SECRET_KEY, BrokenStore, Core, actor, plan_for
from tests.bot.requestkit import RecordingDelivery

LEASE_S = 30.0


class Replica:
    """Another view of the core's database: a replica named `owner` on the core's fake clock
    (its leases' deadlines too), with a request life of its own (`life`)."""

    def __init__(self, core: Core, owner: str, *, allow_unaudited: bool = False) -> None:
        # The core's store class, so the faults it can make can be set on this one too.
        self.store = type(core.store)(
            core.store.dialect,
            clock=core.clock,
            monotonic=core.clock,
            owner=owner,
            lease_s=LEASE_S,
        )
        self.book = LeaseBook(self.store, monotonic=core.clock)
        recorder = AuditRecorder(self.store)
        runner = Runner(
            core.client,
            recorder,
            allow_unaudited=allow_unaudited,
            sleep=core.clock.sleep,
            monotonic=core.clock,
        )
        self.life = RequestLife(
            self.store,
            runner,
            recorder,
            book=self.book,
            allow_unaudited=allow_unaudited,
            sleep=core.clock.sleep,
            monotonic=core.clock,
        )


async def take_it_over(core: Core, survivor: Replica) -> Lease:
    """Let the lease run out and have `survivor` take the one request over."""
    core.clock.advance(LEASE_S + 1)
    [taken] = await survivor.store.take_over(adapters=("test",))
    return taken.lease


async def submit(
    life: RequestLife, plan: Plan, delivery: RecordingDelivery | None = None
) -> tuple[RunResult, RecordingDelivery]:
    delivery = delivery or RecordingDelivery()
    run = await life.submit(plan, delivery)
    assert run is not None
    return run, delivery


# -- the life of one request --------------------------------------------------------------------


async def test_the_record_exists_from_the_claim_and_the_lease_covers_every_call(
    core: Core,
) -> None:
    plan = core.service.plan(await _approved(core, "mute-all room-test room-2"))
    seen: list[tuple[str, RequestState, str | None, list[Outcome]]] = []

    async def look(command: str, body: dict[str, Any]) -> httpx.Response | None:
        record = await core.store.get_request(plan.request_key)
        assert record is not None  # on record before the first call, reads included
        rows = await core.store.rows_for_request(plan.request_key)
        seen.append((command, record.state, record.owner, [r.outcome for r in rows]))
        return None

    core.wire.hook = look
    delivery = RecordingDelivery(reply={"adapter": "test", "channel": "C1"})
    run = await core.service.submit(plan, delivery)
    assert run is not None

    assert [(c, s, o) for c, s, o, _ in seen] == [
        ("get_room_info", RequestState.RECEIVED, "test-replica"),
        ("get_room_info", RequestState.RECEIVED, "test-replica"),
        ("update_room_info", RequestState.RUNNING, "test-replica"),
        ("update_room_info", RequestState.RUNNING, "test-replica"),
    ]
    assert all(rows == [] for c, _, _, rows in seen if c == "get_room_info")
    assert [Outcome.PENDING, Outcome.PENDING] in [rows for _, _, _, rows in seen]
    assert delivery.kinds() == ["start", "progress", "finish"]
    [finished] = delivery.of("finish")
    assert finished is run
    record = await core.store.get_request(plan.request_key)
    assert record is not None
    assert (record.state, record.owner, record.lease_until) == (RequestState.REPORTED, None, None)
    assert record.reply == {"adapter": "test", "channel": "C1"}
    assert record.plan["calls"]  # what a survivor needs to know what was asked
    assert [r.outcome for r in await core.store.rows_for_request(plan.request_key)] == [
        Outcome.OK,
        Outcome.OK,
    ]
    assert core.service.book is not None
    assert core.service.book.held == frozenset()


async def test_a_one_room_write_makes_four_store_transactions(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    actions: list[str] = []
    dialect = core.store.dialect

    def counted(
        run: Callable[[str, Any], Awaitable[Any]], kind: str
    ) -> Callable[[str, Any], Awaitable[Any]]:
        async def wrapper(action: str, body: Any) -> Any:
            actions.append(f"{kind} {action}")
            return await run(action, body)

        return wrapper

    monkeypatch.setattr(dialect, "write", counted(dialect.write, "write"))
    monkeypatch.setattr(dialect, "read", counted(dialect.read, "read"))
    run = await core.service.run(plan_for("mute-all room-test"))
    assert run.results[0].ok
    # Ended well within a third of its lease: no heartbeat write either.
    assert actions == [
        "write record a request",
        "write start a request",
        "write complete a request",
        "write finish a request",
    ]


@pytest.mark.parametrize("rooms", [1, READ_BEFORE_MAX_ROOMS + 1])
async def test_the_parents_thread_is_on_record_before_any_change_is_sent(
    make_core: CoreFactory, rooms: int
) -> None:
    # The parent is posted while the rooms are read (a big request reads none); the begin
    # records its ts, so a replica stopped mid-way is reported in that thread, not beside it.
    names = [f"room-{i:02d}" for i in range(rooms)]
    core = await make_core(rooms=names, confirm_above=0)

    class Posting(RecordingDelivery):
        async def start(self, plan: Plan) -> None:
            await super().start(plan)
            await asyncio.sleep(0.05)  # Slack takes a moment to answer
            self.reply["parent_ts"] = "1700000000.000200"

    plan = plan_for("mute-all " + " ".join(names))
    seen: list[dict[str, Any]] = []

    async def look(command: str, body: dict[str, Any]) -> None:
        if command == "update_room_info":
            record = await core.store.get_request(plan.request_key)
            assert record is not None
            seen.append(record.reply)

    core.wire.hook = look
    await core.service.submit(plan, Posting())
    assert seen == [{"adapter": "test", "parent_ts": "1700000000.000200"}] * rooms


async def test_a_repeat_runs_nothing_and_reports_nothing(core: Core) -> None:
    plan = plan_for("mute-all room-2")
    assert await core.service.submit(plan, RecordingDelivery(), dedupe_key="ev-1") is not None
    calls = len(core.emulator.requests)
    again = RecordingDelivery()
    assert await core.service.submit(plan_for("mute-all room-3"), again, dedupe_key="ev-1") is None
    assert len(core.emulator.requests) == calls
    assert again.events == []


# -- a claim that cannot be written ---------------------------------------------------------------


async def test_a_claim_that_cannot_be_written_refuses_the_request(
    make_core: CoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    core = await make_core(store_class=BrokenStore)
    assert isinstance(core.store, BrokenStore)
    core.store.fail_claim = True
    delivery = RecordingDelivery()
    plan = plan_for("mute-all room-test")
    with caplog.at_level(logging.ERROR):
        run = await core.service.submit(plan, delivery)
    assert isinstance(run, RunResult)
    assert run.refused is not None
    assert "audit trail could not be written" in run.refused
    assert core.emulator.requests == []  # not even a read
    [result] = run.results
    assert result.failure is not None
    assert result.failure.kind is FailureKind.NOT_ATTEMPTED
    assert "could not record a request" in result.failure.message
    assert delivery.kinds() == ["start", "finish"]  # the requester is told
    assert await core.store.get_request(plan.request_key) is None
    failed = [r for r in caplog.records if "AUDIT TRAIL NOT WRITTEN" in r.getMessage()]
    assert len(failed) == 4  # the first try and three retries


async def test_allowed_to_go_unaudited_a_request_whose_claim_failed_runs_and_is_logged(
    make_core: CoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    core = await make_core(store_class=BrokenStore)
    replica = Replica(core, "test-replica", allow_unaudited=True)
    assert isinstance(replica.store, BrokenStore)
    replica.store.fail_claim = True
    with caplog.at_level(logging.ERROR):
        run, delivery = await submit(replica.life, plan_for("mute-all room-test"))
    assert run.refused is None
    assert run.results[0].ok
    assert core.emulator.rooms["room-test"]["IsAudioDisabled"] is True
    assert delivery.kinds() == ["start", "finish"]
    assert await core.rows() == []
    # The requester and the log both learn that this change has no audit record.
    assert run.audit_error is not None
    assert "could not record a request" in run.audit_error
    [line] = [r.getMessage() for r in caplog.records if "UNAUDITED REQUEST" in r.getMessage()]
    logged = json.loads(line.split(" ", 2)[2])
    assert logged["user"] == ALICE
    assert [t["room"] for t in logged["targets"]] == ["room-test"]


class SlowFailures(BrokenStore):
    """A store whose chosen write (`failing`: "claim" or "begin") fails after `wait_s` of the
    core's clock: a pool that waits out its connection timeout against a database that is
    gone."""

    clock = FakeClock()
    failing = "claim"
    wait_s = 0.0
    attempts = 0

    def _fail(self, step: str) -> None:
        if step == self.failing:
            type(self).attempts += 1
            self.clock.advance(self.wait_s)
            raise AuditError(f"the audit store could not {step}: couldn't get a connection")

    async def claim_request(
        self, new: NewRequest, *, hold: bool = True, prefetch: Mapping[str, int] | None = None
    ) -> Lease | None:
        self._fail("claim")
        return await super().claim_request(new, hold=hold, prefetch=prefetch)

    async def begin_request(
        self,
        lease: Lease,
        entries: Sequence[NewEntry],
        reply: Any = None,
        *,
        timer: NewRequest | None = None,
    ) -> list[int]:
        self._fail("begin")
        return await super().begin_request(lease, entries, reply, timer=timer)


@pytest.mark.parametrize("failing", ["claim", "begin"])
@pytest.mark.parametrize(("wait_s", "attempts"), [(0.0, 4), (3.0, 1), (0.6, 3)])
async def test_a_failing_audit_write_is_retried_only_within_the_retry_allowance(
    make_core: CoreFactory, failing: str, wait_s: float, attempts: int
) -> None:
    # Fast failures get every retry; a write that itself took longer than AUDIT_RETRY_S is
    # not tried again, so a person waits about one pool timeout for the refusal, not four.
    SlowFailures.failing, SlowFailures.wait_s, SlowFailures.attempts = failing, wait_s, 0
    core = await make_core(store_class=SlowFailures)
    SlowFailures.clock = core.clock
    replica = Replica(core, "test-replica")
    run, _ = await submit(replica.life, plan_for("mute-all room-test"))
    assert run.refused is not None
    assert SlowFailures.attempts == attempts
    assert core.calls() == []


# -- fencing --------------------------------------------------------------------------------------


async def test_a_begin_refused_by_the_fence_loses_the_run_and_sends_nothing(core: Core) -> None:
    me = Replica(core, "paused")
    survivor = Replica(core, "survivor")
    plan = plan_for("mute-all room-test")

    async def paused_while_reading(command: str, body: dict[str, Any]) -> None:
        if command == "get_room_info":
            await take_it_over(core, survivor)  # this replica was paused past its lease

    core.wire.hook = paused_while_reading
    run, delivery = await submit(me.life, plan)
    assert run.lost is not None
    assert core.calls() == []  # no change sent
    assert await core.store.rows_for_request(plan.request_key) == []  # no row written
    assert delivery.kinds() == ["start"]  # no outcome posted: the survivor reports
    record = await core.store.get_request(plan.request_key)
    assert record is not None
    assert (record.owner, record.fence, record.state) == ("survivor", 2, RequestState.RECEIVED)
    assert me.book.held == frozenset()


async def test_a_complete_refused_by_the_fence_loses_the_run_and_posts_nothing(
    core: Core,
) -> None:
    me = Replica(core, "paused")
    survivor = Replica(core, "survivor")
    plan = plan_for("mute-all room-test")

    async def paused_during_the_call(command: str, body: dict[str, Any]) -> None:
        if command == "update_room_info":
            await take_it_over(core, survivor)

    core.wire.hook = paused_during_the_call
    run, delivery = await submit(me.life, plan)
    assert run.lost is not None
    assert len(core.calls()) == 1
    # Its answer came back too late: the rows are the survivor's to settle.
    rows = await core.store.rows_for_request(plan.request_key)
    assert [r.outcome for r in rows] == [Outcome.PENDING]
    assert delivery.kinds() == ["start"]
    record = await core.store.get_request(plan.request_key)
    assert record is not None
    assert (record.owner, record.state) == ("survivor", RequestState.RUNNING)


async def test_a_lease_lost_mid_run_withdraws_the_calls_still_queued(core: Core) -> None:
    me = Replica(core, "paused")
    survivor = Replica(core, "survivor")
    plan = plan_for("mute-all room-test room-2 room-3")
    taken = asyncio.Event()
    pauses = 0

    class OneAtATime(RecordingDelivery):
        async def pause(self) -> None:
            # Three reads, then the first write; the other writes wait until it was answered.
            nonlocal pauses
            pauses += 1
            if pauses > 4:
                await taken.wait()

    async def paused_during_the_first_write(command: str, body: dict[str, Any]) -> None:
        if command == "update_room_info" and not taken.is_set():
            try:
                await take_it_over(core, survivor)
            finally:
                taken.set()  # never leave the other writes waiting

    core.wire.hook = paused_during_the_first_write
    run, delivery = await submit(me.life, plan, OneAtATime())
    assert run.lost is not None
    assert "taken over" in run.lost
    assert len(core.calls()) == 1  # the queued writes were withdrawn
    assert len(core.calls("get_room_info")) == 3
    assert delivery.kinds() == ["start"]
    rows = await core.store.rows_for_request(plan.request_key)
    assert [r.outcome for r in rows] == [Outcome.PENDING] * 3


class TakenAfterComplete(BrokenStore):
    """A store that runs `after_complete` once a request's outcome is recorded: what happens
    to the replica between its complete and its report."""

    after_complete: Callable[[], Awaitable[None]] | None = None

    async def complete_request(
        self, lease: Lease, completions: Sequence[tuple[int, Completion]], reply: Any = None
    ) -> None:
        await super().complete_request(lease, completions, reply)
        if self.after_complete is not None:
            await self.after_complete()


async def test_a_request_taken_over_between_its_outcome_and_its_report_is_not_reported_here(
    make_core: CoreFactory,
) -> None:
    core = await make_core(store_class=TakenAfterComplete)
    me = Replica(core, "paused")
    survivor = Replica(core, "survivor")
    assert isinstance(me.store, TakenAfterComplete)

    async def paused() -> None:
        await take_it_over(core, survivor)

    me.store.after_complete = paused
    plan = plan_for("mute-all room-test")
    run, delivery = await submit(me.life, plan)
    assert run.lost is not None
    assert delivery.kinds() == ["start"]  # the survivor reports it, once
    record = await core.store.get_request(plan.request_key)
    assert record is not None
    assert (record.owner, record.state) == ("survivor", RequestState.DONE)


class OutOfReach(BrokenStore):
    """A store whose lease writes (renewing, handing back) fail while `down` is set: the
    database is out of reach."""

    down = False

    async def renew_leases(self, leases: Iterable[Lease]) -> tuple[list[Lease], list[Lease]]:
        if self.down:
            raise AuditError("the audit store could not renew leases: connection refused")
        return await super().renew_leases(leases)

    async def abandon_request(self, lease: Lease) -> None:
        if self.down:
            raise AuditError("the audit store could not hand a request back: connection refused")
        await super().abandon_request(lease)


async def test_a_lease_that_ran_out_with_nobody_taking_it_is_still_reported(
    make_core: CoreFactory,
) -> None:
    core = await make_core(store_class=OutOfReach)
    me = Replica(core, "alone")  # the only replica (SQLite: always)
    assert isinstance(me.store, OutOfReach)
    store = me.store

    async def database_gone_past_the_lease(command: str, body: dict[str, Any]) -> None:
        if command == "get_room_info" and core.wire.hook is not None:
            core.wire.hook = None  # once
            store.down = True
            core.clock.advance(LEASE_S + 1)

    core.wire.hook = database_gone_past_the_lease
    plan = plan_for("mute-all room-test")
    run, delivery = await submit(me.life, plan)
    assert run.lost is not None  # it cannot know nobody took it: it sends nothing more
    assert core.calls() == []
    store.down = False  # the database is back
    deliveries = Deliveries()
    deliveries.register("test", lambda address: delivery)
    loop = RequestLoop(store, core.client, deliveries, me.book, monotonic=core.clock)
    for _ in range(3):
        core.clock.advance(LEASE_S)
        await loop.tick()
    assert delivery.kinds() == ["start", "takeover"]  # never silence


# -- shutdown and the unexpected ---------------------------------------------------------------


async def test_a_run_cancelled_by_shutdown_keeps_its_lease_and_pending_rows(core: Core) -> None:
    plan = plan_for("mute-all room-test")
    calling = asyncio.Event()

    async def hang(command: str, body: dict[str, Any]) -> httpx.Response | None:
        if command == "update_room_info":
            calling.set()
            await asyncio.sleep(60)
        return None

    core.wire.hook = hang
    task = asyncio.create_task(core.service.submit(plan, RecordingDelivery()))
    await calling.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = await core.store.get_request(plan.request_key)
    assert record is not None
    # Still this replica's: it expires once the process stops, then a survivor reports.
    assert (record.owner, record.state) == ("test-replica", RequestState.RUNNING)
    assert record.lease_until is not None
    assert record.lease_until > core.clock.now
    [row] = await core.store.rows_for_request(plan.request_key)
    assert row.outcome is Outcome.PENDING
    assert core.service.book is not None
    assert core.service.book.held == frozenset()  # this process renews it no more


async def test_an_unexpected_error_hands_the_request_back_at_once(core: Core) -> None:
    class Broken(RecordingDelivery):
        async def finish(self, run: RunResult) -> None:
            raise RuntimeError("a bug in the adapter")

    plan = plan_for("mute-all room-test")
    with pytest.raises(RuntimeError, match="a bug in the adapter"):
        await core.service.submit(plan, Broken())
    record = await core.store.get_request(plan.request_key)
    assert record is not None
    assert record.state is RequestState.DONE  # the outcome is on record, not yet reported
    survivor = Replica(core, "survivor")
    [taken] = await survivor.store.take_over(adapters=("test",))  # at once: no lease to wait
    assert taken.request_key == plan.request_key
    assert [r.outcome for r in taken.rows] == [Outcome.OK]


# -- the rate budget, Retry, a client from settings ---------------------------------------------


class Unavailable:
    """A rate budget whose database grants nothing."""

    async def acquire(self, api: str) -> None:
        raise RateBudgetUnavailable("no slot granted within 10 s: connection refused")

    @contextlib.asynccontextmanager
    async def slot(self, api: str) -> AsyncIterator[None]:
        await self.acquire(api)
        yield


async def test_a_budget_that_grants_nothing_sends_nothing_and_says_why(core: Core) -> None:
    failure = describe_failure(RateBudgetUnavailable("no slot"))
    assert failure.kind is FailureKind.NOT_ATTEMPTED
    assert failure.correlation_id is None  # expected, not a bug
    assert "rate budget" in failure.message
    assert "`roombot check`" in failure.hint

    async with RoomEngineClient(
        base_url=core.emulator.base_url,
        sdkappid=SDKAPPID,
        secret_key=SECRET_KEY,
        admin_id="administrator",
        rate_budget=Unavailable(),
    ) as client:
        runner = Runner(client, AuditRecorder(core.store), sleep=core.clock.sleep)
        plan = plan_for("mute-all room-test room-2 room-3 " + "--reason x")
        run = await runner.run(plan, held=await core.leased(plan))
    assert core.emulator.requests == []
    assert all(r.failure and r.failure.kind is FailureKind.NOT_ATTEMPTED for r in run.results)
    rows = await core.store.rows_for_request(run.request_key)
    assert {r.outcome for r in rows} == {Outcome.NOT_ATTEMPTED}


class Counting:
    """A budget that counts the call slots it grants."""

    def __init__(self) -> None:
        self.slots = 0

    async def acquire(self, api: str) -> None:
        self.slots += 1

    @contextlib.asynccontextmanager
    async def slot(self, api: str) -> AsyncIterator[None]:
        await self.acquire(api)
        yield


async def test_a_client_from_settings_paces_its_calls_with_the_budget_it_is_given(
    core: Core,
) -> None:
    settings = load_settings(
        env_file=None,
        tencent_sdkappid=SDKAPPID,
        tencent_secret_key=SECRET_KEY,
        tencent_api_url=core.emulator.base_url,
    )
    budget = Counting()
    async with RoomEngineClient.from_settings(settings, rate_budget=budget) as client:
        await client.get_room_info("room-test")
        await client.get_room_info("room-2")
    assert budget.slots == 2


async def test_retry_runs_again_what_a_survivor_found_not_applied(core: Core) -> None:
    def row(room: str, outcome: Outcome) -> NewEntry:
        return NewEntry(
            request_key="req-1",
            source="slash",
            user_id=ALICE,
            verb="mute-all",
            raw_text="mute-all room-test room-2 room-3",
            room_id=room,
            channel_id="C0GENERAL1",
            patch={"IsAudioDisabled": True},
            outcome=outcome,
        )

    await core.store.record(
        [
            row("room-test", Outcome.IN_PLACE),
            row("room-2", Outcome.NOT_APPLIED),
            row("room-3", Outcome.UNKNOWN),
        ]
    )
    plan = await core.service.plan_retry("req-1", actor())
    assert isinstance(plan, Plan)
    assert plan.kind is RunKind.RETRY
    run = await core.service.run(plan)
    assert sorted(r.room_id for r in run.results) == ["room-2", "room-3"]
    assert all(r.ok for r in run.results)
    assert core.emulator.rooms["room-2"]["IsAudioDisabled"] is True


async def _approved(core: Core, text: str) -> Approved:
    answer = await core.service.prepare(text, actor())
    assert isinstance(answer, Approved)
    return answer
