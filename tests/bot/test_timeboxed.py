"""Time-boxed changes (`--for`, DESIGN §2.11) in the core, on both store backends: the change
records its revert with its rows; the revert waits until due, then exactly one replica's loop
carries it out as an undo with Undo's conflict check, field by field; a later change through
roombot supersedes the timer; a timer survives a restart and says when it ran late; Keep,
Extend and Revert now act once and only for people allowed to run the change.

Time: the store judges due times on SQLite by the replicas' fake clock, on PostgreSQL by the
server's; `Bots.age` moves both the fake clock and (on PostgreSQL) every timer's due time back,
so "30 minutes later" takes no time at all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from bot import metrics
from bot.audit import AuditStore, NewEntry, Outcome, RequestState, Source
from bot.audit.sql import Body, Query
from bot.console.text import PLAIN
from bot.outcomes import Approved, DryRun, Rejected, RunKind, RunResult
from bot.policy import known_verbs, load_policy
from bot.requests.delivery import Deliveries, Delivery
from bot.requests.loop import RequestLoop
from bot.service import RoomService
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from bot.timeline import Window, build_timeline, entry_lines
from bot.wording.timers import timers_lines
from testkit.clock import FakeClock
from tests.bot.corekit import actor, plan_for, room_of
from tests.bot.requestkit import APP, KEY, RecordingDelivery, Replicas, replicas

REPLY = {"adapter": "test", "channel": "C1", "parent_ts": "1700000000.000100"}
NOW = 1_700_000_000.0
ALICE = "U0ALICE01"
MALLORY = "U0MALLORY"


@pytest.fixture
async def emulator() -> AsyncIterator[RoomEngineEmulator]:
    stage = {"RoomId": "stage", "IsSeatEnabled": True, "MaxSeatCount": 4}
    emu = RoomEngineEmulator(sdkappid=APP, secret_key=KEY, rooms=["room-1", "room-2", stage])
    await emu.start()
    yield emu
    await emu.stop()


def _age_timers(seconds: float) -> Body[None]:
    yield Query(
        "UPDATE requests SET run_after = run_after - %(s)s WHERE run_after IS NOT NULL",
        {"s": seconds},
    )


class Bot:
    """One replica: a service over its own store (the policy allows ALICE everything), its
    loop, and what it reported."""

    def __init__(self, store: AuditStore, client: RoomEngineClient, clock: FakeClock) -> None:
        self.store = store
        wall: Callable[[], float] = clock if store.backend == "sqlite" else time.time
        self.service = RoomService(
            client=client,
            policy=load_policy(allowed_users=[ALICE], policy_file=None, known_verbs=known_verbs()),
            audit=store,
            wall=wall,
        )
        self.delivery = RecordingDelivery(reply=dict(REPLY))
        deliveries = Deliveries()
        deliveries.register("test", self._build)
        assert self.service.book is not None
        self.loop = RequestLoop(
            store, client, deliveries, self.service.book, monotonic=clock, due=self.service.due
        )

    def _build(self, address: Mapping[str, Any]) -> Delivery:
        return self.delivery

    async def run(self, text: str) -> RunResult:
        run = await self.service.submit(plan_for(text, actor(ALICE)), self.delivery)
        assert isinstance(run, RunResult)  # no [approval] table here: it runs at once
        return run

    def reverts(self) -> list[RunResult]:
        return [r for r in self.delivery.of("finish") if r.kind is RunKind.REVERT]


class Bots:
    def __init__(self, cluster: Replicas, client: RoomEngineClient) -> None:
        self.cluster = cluster
        self.client = client

    async def open(self, name: str) -> Bot:
        return Bot(await self.cluster.open(name), self.client, self.cluster.clock)

    async def age(self, bot: Bot, seconds: float) -> None:
        """Let `seconds` pass for every timer (see the module docstring)."""
        self.cluster.clock.advance(seconds)
        if bot.store.backend == "postgresql":
            await bot.store.dialect.write("age timers", lambda: _age_timers(seconds))


@pytest.fixture
async def bots(target: str | Path, client: RoomEngineClient) -> AsyncIterator[Bots]:
    async with replicas(target, FakeClock(NOW)) as cluster:
        yield Bots(cluster, client)


def updates(emulator: RoomEngineEmulator) -> list[dict[str, Any]]:
    return [r.body for r in emulator.requests if r.command == "update_room_info"]


async def test_a_timeboxed_change_is_reverted_once_when_due(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    before = metrics.value("roombot_timebox_reverts_total", outcome="reverted")
    run = await bot.run("mute-all room-1 --for 30m")
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True
    assert run.reverts_at is not None
    assert run.revert_key is not None
    [timer] = await bot.service.timers.pending() if bot.service.timers else []
    assert (timer.request_key, timer.reverts, timer.user_id) == (
        run.revert_key,
        run.request_key,
        ALICE,
    )
    assert timer.due == run.reverts_at
    assert timer.command.rooms == ("room-1",)

    await bot.loop.tick()  # not due yet: nothing happens
    await bots.age(bot, 1799)
    await bot.loop.tick()
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True
    assert bot.reverts() == []

    await bots.age(bot, 2)
    await bot.loop.tick()
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is False
    [revert] = bot.reverts()
    assert revert.request_key == run.revert_key
    [result] = revert.results
    assert (result.room_id, result.ok, result.changes) == (
        "room-1",
        True,
        {"IsAudioDisabled": False},
    )
    assert result.request_id  # Tencent's RequestId, reported
    assert revert.notes == ()  # on time, nothing left alone
    record = await bot.store.get_request(run.revert_key)
    assert record is not None
    assert (record.state, record.owner) == (RequestState.REPORTED, None)
    [row] = await bot.store.rows_for_request(run.revert_key)
    [original] = await bot.store.rows_for_request(run.request_key)
    assert (row.verb, row.outcome, row.undo_of, row.user_id) == (
        "revert",
        Outcome.OK,
        original.id,
        ALICE,
    )
    assert bot.service.timers is not None
    assert await bot.service.timers.pending() == []
    # Once: later ticks do nothing more.
    await bots.age(bot, 3600)
    await bot.loop.tick()
    assert len(updates(emulator)) == 2
    assert metrics.value("roombot_timebox_reverts_total", outcome="reverted") == before + 1


async def test_a_change_without_for_schedules_nothing(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    run = await bot.run("mute-all room-1")
    assert (run.reverts_at, run.revert_key) == (None, None)
    assert bot.service.timers is not None
    assert await bot.service.timers.pending() == []


async def test_a_field_changed_since_is_left_alone_and_the_others_go_back(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    emulator.rooms["room-1"]["MaxMemberCount"] = 100
    await bot.run("set room-1 audio=off max-members=50 --for 30m")
    assert emulator.rooms["room-1"]["MaxMemberCount"] == 50
    emulator.rooms["room-1"]["MaxMemberCount"] = 70  # someone else, outside roombot
    await bots.age(bot, 1801)
    await bot.loop.tick()
    room = emulator.rooms["room-1"]
    assert (room["IsAudioDisabled"], room["MaxMemberCount"]) == (False, 70)
    [revert] = bot.reverts()
    [result] = revert.results
    assert result.ok
    assert result.changes == {"IsAudioDisabled": False}
    [note] = revert.notes
    assert "`room-1`" in note
    assert "member limit 70 left alone" in note
    assert "changed since" in note
    assert updates(emulator)[-1]["RoomInfo"] == {"RoomId": "room-1", "IsAudioDisabled": False}


async def test_a_room_changed_in_every_field_is_reported_and_not_written(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    await bot.run("mute-all room-1 room-2 --for 10m")
    emulator.rooms["room-2"]["IsAudioDisabled"] = False  # unmuted outside roombot
    sent = len(updates(emulator))
    await bots.age(bot, 601)
    await bot.loop.tick()
    [revert] = bot.reverts()
    by_room = {r.room_id: r for r in revert.results}
    assert by_room["room-1"].ok
    assert not by_room["room-2"].ok
    failure = by_room["room-2"].failure
    assert failure is not None
    assert "left alone" in failure.message
    assert "changed since" in failure.message
    # Only room-1 was written.
    assert [room_of(b) for b in updates(emulator)[sent:]] == ["room-1"]


async def test_a_later_permanent_change_supersedes_the_timer(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    await bot.run("mute-all room-1 --for 30m")
    assert bot.service.timers is not None
    [listed] = (await bot.service.timers.view()).timers
    assert listed.superseded_by is None
    await bot.run("mute-all room-1")  # the same value, meant to stay
    # `timers` says so before it falls due.
    [listed] = (await bot.service.timers.view()).timers
    assert listed.superseded_by == (ALICE, "mute-all")
    [line] = timers_lines(PLAIN, await bot.service.timers.view(), NOW)[1:]
    assert line.endswith(
        f"superseded: set again since by {ALICE} with /room mute-all, so it will set nothing back"
    )
    sent = len(updates(emulator))
    await bots.age(bot, 1801)
    await bot.loop.tick()
    # The expiring mute does not lift the permanent one made after it.
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True
    assert len(updates(emulator)) == sent
    [revert] = bot.reverts()
    [result] = revert.results
    assert result.failure is not None
    assert "set again by `U0ALICE01` with `/room mute-all`" in result.failure.message


async def test_a_later_change_of_another_field_does_not_supersede(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    await bot.run("mute-all room-1 --for 30m")
    await bot.run("disable-chat room-1")
    assert bot.service.timers is not None
    [listed] = (await bot.service.timers.view()).timers
    assert listed.superseded_by is None
    await bots.age(bot, 1801)
    await bot.loop.tick()
    room = emulator.rooms["room-1"]
    assert (room["IsAudioDisabled"], room["IsMessageDisabled"]) == (False, True)


async def test_a_timer_survives_a_restart_and_says_it_ran_late(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    gone = await bots.open("gone")
    run = await gone.run("disable-video room-1 --for 30m")
    await gone.store.close()  # no replica runs while it falls due
    fresh = await bots.open("fresh")
    await bots.age(fresh, 1800 + 7 * 60)
    await fresh.loop.tick()  # the first tick at start
    assert emulator.rooms["room-1"]["IsVideoDisabled"] is False
    [revert] = fresh.reverts()
    assert revert.request_key == run.revert_key
    [late] = revert.notes
    assert late.startswith("Late: due ")
    assert "after a restart" in late


async def test_three_replicas_over_one_due_revert_call_room_engine_once(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    first, *others = [await bots.open(name) for name in ("a", "b", "c")]
    await first.run("mute-all room-1 --for 10m")
    sent = len(updates(emulator))
    await bots.age(first, 601)
    everyone = [first, *others]
    for _ in range(3):
        await asyncio.gather(*(b.loop.tick() for b in everyone))
    assert len(updates(emulator)) == sent + 1
    assert sum(len(b.reverts()) for b in everyone) == 1
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is False


async def test_keep_drops_the_timer_and_extend_moves_it(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    timers = bot.service.timers
    assert timers is not None
    kept = await bot.run("mute-all room-1 --for 30m")
    extended = await bot.run("disable-chat room-2 --for 30m")
    assert kept.revert_key is not None
    assert extended.revert_key is not None
    # Someone not allowed to run the change may not touch its timer.
    refused = await timers.keep(kept.revert_key, actor(MALLORY))
    assert isinstance(refused, Rejected)
    assert refused.denied
    assert not isinstance(await timers.keep(kept.revert_key, actor(ALICE)), Rejected)
    again = await timers.keep(kept.revert_key, actor(ALICE))
    assert isinstance(again, Rejected)
    moved = await timers.extend(extended.revert_key, actor(ALICE))
    assert not isinstance(moved, Rejected)
    assert extended.reverts_at is not None
    assert moved.due == pytest.approx(extended.reverts_at + 1800)
    assert [t.request_key for t in await timers.pending()] == [extended.revert_key]

    await bots.age(bot, 1801)
    await bot.loop.tick()
    # Kept: stays muted for good; extended: not yet.
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True
    assert emulator.rooms["room-2"]["IsMessageDisabled"] is True
    assert bot.reverts() == []
    await bots.age(bot, 1800)
    await bot.loop.tick()
    assert emulator.rooms["room-2"]["IsMessageDisabled"] is False
    record = await bot.store.get_request(kept.revert_key)
    assert record is not None
    assert record.state is RequestState.CANCELLED


async def test_revert_now_runs_once_whoever_clicks_and_the_loop_then_finds_nothing(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    a = await bots.open("a")
    b = await bots.open("b")
    run = await a.run("mute-all room-1 --for 2h")
    assert run.revert_key is not None
    key = run.revert_key
    denied = await a.service.revert_now(key, actor(MALLORY), a.delivery)
    assert isinstance(denied, Rejected)
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True
    outcomes = await asyncio.gather(
        a.service.revert_now(key, actor(ALICE), a.delivery),
        b.service.revert_now(key, actor(ALICE), b.delivery),
    )
    reverted = [o for o in outcomes if isinstance(o, RunResult)]
    assert len(reverted) == 1
    assert reverted[0].kind is RunKind.REVERT
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is False
    await bots.age(a, 7201)
    await asyncio.gather(a.loop.tick(), b.loop.tick())
    assert len(updates(emulator)) == 2


async def test_a_timeboxed_write_costs_no_extra_store_transaction(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")

    def spent() -> dict[str, float]:
        return {
            op: metrics.value("roombot_store_transactions_total", operation=op)
            for op in metrics.STORE_OPERATIONS
        }

    before = spent()
    await bot.run("mute-all room-1 --for 30m")
    after = spent()
    used = {op: n - before[op] for op, n in after.items() if n != before[op]}
    # The timer rides in the begin transaction, with the rows it reverts.
    life = ("claim_request", "begin_request", "complete_request", "finish_request")
    assert used == dict.fromkeys(life, 1.0)


async def test_a_longer_for_run_again_ends_as_the_first_change_would_have(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    await bot.run("mute-all room-1 --for 30m")
    await bots.age(bot, 300)
    await bot.run("mute-all room-1 --for 2h")  # the same mute, for longer
    await bots.age(bot, 1501)
    await bot.loop.tick()
    # The first timer's field was set again since: left alone, the room stays muted.
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True
    [first] = bot.reverts()
    [result] = first.results
    assert result.failure is not None
    assert "set again" in result.failure.message
    await bots.age(bot, 7200)
    await bot.loop.tick()
    # The second ends the mute: back to what the first change found, not to "muted".
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is False
    assert len(bot.reverts()) == 2


async def test_a_kept_change_is_not_undone_by_a_later_time_box(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    timers = bot.service.timers
    assert timers is not None
    first = await bot.run("mute-all room-1 --for 30m")
    assert first.revert_key is not None
    assert not isinstance(await timers.keep(first.revert_key, actor(ALICE)), Rejected)
    await bots.age(bot, 60)
    await bot.run("mute-all room-1 --for 10m")
    await bots.age(bot, 3600)
    await bot.loop.tick()
    # The mute was kept before the second --for: it was meant to stay, so it stays.
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True


async def test_a_change_a_callback_reported_is_left_alone_saying_by_whom(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    await bot.run("mute-all room-1 --for 30m")
    # The app's backend unmuted it; Room Engine's callback said so (the row it leaves).
    emulator.rooms["room-1"]["IsAudioDisabled"] = False
    await bot.store.record(
        [
            NewEntry(
                request_key="callback-1",
                source=Source.TENCENT.value,
                user_id="ops-admin",
                verb="outside",
                raw_text="Room.CallbackAfterRoomInfoChanged",
                room_id="room-1",
                patch={"IsAudioDisabled": False},
                outcome=Outcome.OK,
            )
        ]
    )
    sent = len(updates(emulator))
    await bots.age(bot, 1801)
    await bot.loop.tick()
    [revert] = bot.reverts()
    [result] = revert.results
    assert result.failure is not None
    assert "changed since by `ops-admin` outside roombot" in result.failure.message
    assert len(updates(emulator)) == sent


async def test_a_timeboxed_seat_lock_is_lifted_when_due(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    run = await bot.run("lock-seat stage 2 --for 15m")
    assert run.reverts_at is not None
    assert emulator.seats["stage"].as_api()[2]["IsTakenDisabled"] is True
    await bots.age(bot, 901)
    await bot.loop.tick()
    seat = emulator.seats["stage"].as_api()[2]
    assert (seat["IsTakenDisabled"], seat["IsAudioDisabled"], seat["IsVideoDisabled"]) == (
        False,
        False,
        False,
    )
    [revert] = bot.reverts()
    [result] = revert.results
    assert result.ok
    assert result.request_id


async def test_a_survivor_runs_a_due_revert_whose_replica_stopped_holding_it(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    dead = await bots.open("dead")
    survivor = await bots.open("survivor")
    run = await dead.run("mute-all room-1 --for 10m")
    await bots.age(dead, 601)
    # The replica took the due revert (its loop's look) and stopped before sending anything.
    [taken] = await dead.store.take_due(adapters=("test",))
    assert taken.request_key == run.revert_key
    await survivor.loop.tick()
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True  # its lease still runs
    await bots.cluster.advance(bots.cluster.lease_s + 1)
    await survivor.loop.tick()
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is False
    [revert] = survivor.reverts()
    assert revert.request_key == run.revert_key
    record = await survivor.store.get_request(taken.request_key)
    assert record is not None
    assert (record.state, record.owner) == (RequestState.REPORTED, None)


async def test_a_dry_run_with_for_shows_the_change_and_the_revert_that_would_follow(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    dry = await bot.service.prepare("mute-all room-1 --for 30m --dry-run", actor(ALICE))
    assert isinstance(dry, DryRun)
    assert dry.bodies == ({"RoomInfo": {"RoomId": "room-1", "IsAudioDisabled": True}},)
    assert dry.note is not None
    assert dry.note.startswith("Then, at ")
    assert "UTC (in 30 min), roombot would set back the same settings" in dry.note
    assert updates(emulator) == []
    assert bot.service.timers is not None
    assert await bot.service.timers.pending() == []


async def test_show_and_the_users_activity_carry_the_pending_timers(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    run = await bot.run("mute-all room-1 --for 30m")
    prepared = await bot.service.prepare("show room-1 room-2", actor(ALICE))
    assert isinstance(prepared, Approved)
    views = {v.room_id: v for v in await bot.service.show(prepared)}
    assert [t.request_key for t in views["room-1"].timers] == [run.revert_key]
    assert views["room-2"].timers == ()
    mine = await bot.service.activity(ALICE)
    assert [t.request_key for t in mine.timers] == [run.revert_key]
    assert (await bot.service.activity(MALLORY)).timers == ()


async def test_the_timeline_tells_the_change_and_then_its_revert(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    run = await bot.run("mute-all room-1 --for 30m")
    await bots.age(bot, 1801)
    await bot.loop.tick()
    assert len(bot.reverts()) == 1
    timeline = await build_timeline(bot.store, Window(0.0, 4e9))
    change, revert = (" ".join(entry_lines(e)) for e in timeline.entries)
    assert "mute-all room-1 for 30m — 1 ok" in change
    assert run.request_key in {e.request_key for e in timeline.entries}
    assert "(slash) revert room-1, undoing row(s) #" in revert
    assert "end of --for 30m set by U0ALICE01 — 1 ok, RequestId Id-" in revert


async def test_a_timeboxed_change_that_changed_nothing_leaves_no_timer(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    run = await bot.run("mute-all no-such-room --for 30m")
    assert not run.succeeded
    assert run.revert_key is not None
    assert bot.service.timers is not None
    assert await bot.service.timers.pending() == []
    record = await bot.store.get_request(run.revert_key)
    assert record is not None
    assert record.state is RequestState.CANCELLED


async def test_keep_extend_and_revert_now_are_audited_as_who_clicked(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    timers = bot.service.timers
    assert timers is not None
    before = metrics.value("roombot_timebox_actions_total", action="revert_now")
    first = await bot.run("mute-all room-1 --for 30m")
    second = await bot.run("disable-chat room-2 --for 30m")
    assert first.revert_key is not None
    assert second.revert_key is not None
    assert not isinstance(await timers.extend(first.revert_key, actor(ALICE)), Rejected)
    assert isinstance(
        await bot.service.revert_now(first.revert_key, actor(ALICE), bot.delivery), RunResult
    )
    assert not isinstance(await timers.keep(second.revert_key, actor(ALICE)), Rejected)
    rows = await bot.store.query(user=ALICE, limit=100)
    actions = sorted((r.verb, r.room_id) for r in rows if (r.verb or "").endswith("-timer"))
    assert actions == [
        ("extend-timer", "room-1"),
        ("keep-timer", "room-2"),
        ("revert-now-timer", "room-1"),
    ]
    assert metrics.value("roombot_timebox_actions_total", action="revert_now") == before + 1


class _Notices:
    """Approval notices (what Slack would show), recorded."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    async def asked_for(self, pending: Any) -> Mapping[str, Any] | None:
        self.asked.append(pending)
        return None

    async def decided_on(self, record: Any) -> None:
        return None


async def test_a_revert_the_approval_table_names_waits_for_a_second_person(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    """DESIGN §2.12: a revert of an approved request needs approval again when the rule would
    demand it for the revert itself (a mass unmute): at its time it is asked for, not run."""
    from bot.policy import Policy, Role
    from bot.policy.approval import ApprovalRule

    bob = "U0BOB0001"
    bot = await bots.open("a")
    bot.service.set_policy(
        Policy(
            roles=[Role("all", frozenset(known_verbs()), users=frozenset({ALICE, bob}))],
            verbs=known_verbs().values(),
            approval=ApprovalRule(above_rooms=1, users=frozenset({bob})),
        )
    )
    approvals = bot.service.approvals
    assert approvals is not None
    notices = _Notices()

    class Shown:
        def __init__(self, _address: Mapping[str, Any]) -> None:
            pass

        async def asked(self, pending: Any) -> Mapping[str, Any] | None:
            return await notices.asked_for(pending)

        async def decided(self, record: Any) -> None:
            await notices.decided_on(record)

    approvals.register("test", Shown)
    deliveries = Deliveries()
    deliveries.register("test", lambda _address: bot.delivery)
    approvals.deliveries = deliveries

    asked = await bot.service.submit(
        plan_for("mute-all room-1 room-2 --for 30m", actor(ALICE)), bot.delivery
    )
    assert not isinstance(asked, RunResult)  # two rooms: it waits for Bob
    [first] = notices.asked
    run = await approvals.approve(first.request_key, actor(bob))
    assert isinstance(run, RunResult)
    assert run.revert_key is not None
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True

    await bots.age(bot, 1801)
    await bot.loop.tick()
    # Due, but a two-room unmute is a change the table names: asked for, not run.
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is True
    assert bot.reverts() == []
    _, revert = notices.asked
    assert revert.plan.kind is RunKind.REVERT
    assert sorted(revert.plan.command.rooms) == ["room-1", "room-2"]
    timer = await bot.store.get_request(run.revert_key)
    assert timer is not None
    assert timer.state is RequestState.CANCELLED  # handed over to the approval
    await bot.loop.tick()
    assert len(notices.asked) == 2  # asked once

    reverted = await approvals.approve(revert.request_key, actor(bob))
    assert isinstance(reverted, RunResult)
    assert reverted.kind is RunKind.REVERT
    assert emulator.rooms["room-1"]["IsAudioDisabled"] is False
    assert emulator.rooms["room-2"]["IsAudioDisabled"] is False


async def test_before_its_time_the_timeline_shows_the_change_then_its_scheduled_revert(
    bots: Bots, emulator: RoomEngineEmulator
) -> None:
    bot = await bots.open("a")
    await bot.run("mute-all room-1 --for 30m")
    timeline = await build_timeline(bot.store, Window(0.0, 4e9))
    change, revert = (" ".join(entry_lines(e)) for e in timeline.entries)
    assert "mute-all room-1 for 30m — 1 ok" in change
    assert "revert room-1" in revert
    assert "scheduled for " in revert
