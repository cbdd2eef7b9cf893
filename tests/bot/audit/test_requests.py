"""Request records and their leases at the store (DESIGN §2.10): the claim is the record and takes
the lease; begin, complete and finish carry the request through its life, each fenced, so a
replica that lost the request writes nothing; renewal keeps a lease, expiry hands it to exactly
one survivor with a higher fencing number; survivors split many expired requests without
overlap (PostgreSQL: `FOR UPDATE SKIP LOCKED`); a live lease, a replica's own request and an
adapter a replica cannot deliver are never taken; an abandoned request is taken at once; the
leases of stopped processes on this host are ended at once.

Both backends (the `target` fixture); time is a fake clock moved by `Replicas.advance`, except
in the one real-clock test, which shows leases run on the database's clock."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.audit import (
    AuditError,
    AuditStore,
    Lease,
    LeaseLost,
    Outcome,
    RequestState,
    TakenRequest,
    open_store,
)
from bot.audit.rows import Completion
from testkit.clock import FakeClock
from tests.bot.requestkit import (
    LEASE_S,
    SLACK,
    Replicas,
    entry,
    new_request,
    predecessor,
    replicas,
)

NOW = 1_700_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def cluster(target: str | Path, clock: FakeClock) -> AsyncIterator[Replicas]:
    async with replicas(target, clock) as opened:
        yield opened


def done(outcome: Outcome = Outcome.OK, **fields: Any) -> Completion:
    return Completion(outcome=outcome, **fields)


async def claimed(store: AuditStore, key: str = "req-1", **overrides: Any) -> Lease:
    lease = await store.claim_request(new_request(key, **overrides))
    assert lease is not None
    return lease


# -- the claim ----------------------------------------------------------------------------------


async def test_the_claim_is_the_record_and_holds_the_lease(
    cluster: Replicas, clock: FakeClock
) -> None:
    store = await cluster.open("a")
    reply = {**SLACK, "response_url": "https://hooks.slack.com/x"}
    plan = {"v": 1, "calls": []}
    lease = await store.claim_request(
        new_request("req-1", reply=reply, plan=plan, dedupe_key="ev-1")
    )
    assert lease == Lease("req-1", "a", 1, NOW + LEASE_S, NOW + LEASE_S)

    record = await store.get_request("req-1")
    assert record is not None
    assert record.state is RequestState.RECEIVED
    assert (record.owner, record.fence, record.takeovers) == ("a", 1, 0)
    assert (record.kind, record.source, record.user_id, record.verb) == (
        "request",
        "slash",
        "U111",
        "mute-all",
    )
    assert (record.team_id, record.channel_id, record.reason) == ("T1", "C1", "incident 42")
    assert record.raw_text == "mute-all room-1"
    assert (record.plan, record.reply, record.adapter) == (plan, reply, "slack")
    assert (record.dedupe_key, record.run_after) == ("ev-1", None)
    assert record.created_at == record.updated_at == NOW
    assert record.lease_until is not None
    if store.backend == "sqlite":  # PostgreSQL's leases run on the server's clock
        assert record.lease_until == NOW + LEASE_S
    else:
        assert record.lease_until == pytest.approx(time.time() + LEASE_S, abs=5)
    assert await store.rows_for_request("req-1") == []  # on record before any row
    assert await store.request_by_dedupe_key("ev-1") == record
    assert await store.request_by_dedupe_key("ev-2") is None
    assert await store.get_request("nope") is None


async def test_a_repeat_is_not_recorded_again(cluster: Replicas) -> None:
    a = await cluster.open("a")
    b = await cluster.open("b")
    assert await a.claim_request(new_request("req-1", dedupe_key="undo:k")) is not None
    # A second click, on another replica, under a request key of its own: not recorded.
    assert await b.claim_request(new_request("req-2", dedupe_key="undo:k")) is None
    assert await b.get_request("req-2") is None
    # The same request key twice is a repeat too.
    assert await b.claim_request(new_request("req-1")) is None
    record = await a.get_request("req-1")
    assert record is not None
    assert record.owner == "a"
    # Clicks racing on two replicas: exactly one is recorded.
    leases = await asyncio.gather(
        *(
            store.claim_request(new_request(f"race-{i}-{store.owner}", dedupe_key="retry:k"))
            for i in range(5)
            for store in (a, b)
        )
    )
    [winner] = [lease for lease in leases if lease is not None]
    found = await a.request_by_dedupe_key("retry:k")
    assert found is not None
    assert found.request_key == winner.request_key


async def test_a_request_recorded_without_its_lease_waits_and_is_never_taken_over(
    cluster: Replicas,
) -> None:
    a = await cluster.open("a")
    b = await cluster.open("b")
    assert await a.claim_request(new_request("later"), hold=False) is None
    assert await a.claim_request(new_request("timed", run_after=NOW + 60), hold=False) is None
    later = await a.get_request("later")
    timed = await a.get_request("timed")
    assert later is not None
    assert timed is not None
    assert (later.state, later.owner, later.fence, later.lease_until) == (
        RequestState.RECEIVED,
        None,
        0,
        None,
    )
    assert (timed.state, timed.run_after) == (RequestState.SCHEDULED, NOW + 60)
    await cluster.advance(10 * LEASE_S)
    # Nobody holds them, so no lease can expire: the loop that runs due work takes them.
    assert await b.take_over() == []
    assert await a.take_over() == []


# -- begin, complete, finish --------------------------------------------------------------------


async def test_begin_complete_and_finish_carry_the_request_through_its_life(
    cluster: Replicas, clock: FakeClock
) -> None:
    store = await cluster.open("a")
    lease = await claimed(store)
    clock.advance(1)
    with_parent = {**SLACK, "parent_ts": "1700000000.000200"}
    ids = await store.begin_request(lease, [entry("room-1"), entry("room-2")], with_parent)
    record = await store.get_request("req-1")
    assert record is not None
    assert (record.state, record.updated_at) == (RequestState.RUNNING, NOW + 1)
    assert record.reply == with_parent
    rows = await store.rows_for_request("req-1")
    assert [r.id for r in rows] == ids
    assert [r.outcome for r in rows] == [Outcome.PENDING] * 2

    clock.advance(1)
    await store.complete_request(
        lease,
        [(ids[0], done(tencent_request_id="Id-1")), (ids[1], done(Outcome.FAILED, error_code=1))],
    )
    record = await store.get_request("req-1")
    assert record is not None
    assert (record.state, record.updated_at) == (RequestState.DONE, NOW + 2)
    assert record.reply == with_parent  # kept when not given
    assert record.owner == "a"  # held until it is reported
    rows = await store.rows_for_request("req-1")
    assert [r.outcome for r in rows] == [Outcome.OK, Outcome.FAILED]
    assert rows[0].tencent_request_id == "Id-1"
    assert rows[0].finished_at == NOW + 2

    clock.advance(1)
    await store.finish_request(lease)
    record = await store.get_request("req-1")
    assert record is not None
    assert (record.state, record.owner, record.lease_until) == (RequestState.REPORTED, None, None)
    assert record.fence == 1
    # Finished, it is nobody's: this replica's lease on it is gone too.
    with pytest.raises(LeaseLost):
        await store.finish_request(lease)
    assert await store.renew_leases([lease]) == ([], [lease])
    await cluster.advance(2 * LEASE_S)
    assert await (await cluster.open("b")).take_over() == []


async def test_a_request_may_end_in_another_state(cluster: Replicas) -> None:
    store = await cluster.open("a")
    lease = await claimed(store)
    await store.finish_request(lease, state=RequestState.CANCELLED, reply={"adapter": "x"})
    record = await store.get_request("req-1")
    assert record is not None
    assert (record.state, record.owner, record.reply) == (
        RequestState.CANCELLED,
        None,
        {"adapter": "x"},
    )


async def test_complete_request_records_the_good_rows_and_names_the_bad(
    cluster: Replicas,
) -> None:
    store = await cluster.open("a")
    lease = await claimed(store)
    [good] = await store.begin_request(lease, [entry("room-1")])
    with pytest.raises(AuditError, match="4242"):
        await store.complete_request(lease, [(4242, done()), (good, done())])
    row = await store.get(good)
    assert row is not None
    assert row.outcome is Outcome.OK
    record = await store.get_request("req-1")
    assert record is not None
    assert record.state is RequestState.DONE


# -- fencing ------------------------------------------------------------------------------------


async def test_every_write_after_a_takeover_is_fenced_and_writes_nothing(
    cluster: Replicas,
) -> None:
    paused = await cluster.open("paused")
    survivor = await cluster.open("survivor")
    lease = await claimed(paused)
    ids = await paused.begin_request(lease, [entry("room-1")])
    await cluster.advance(LEASE_S + 1)  # paused past its lease
    [taken] = await survivor.take_over()
    assert taken.lease.fence == 2

    late = {**SLACK, "parent_ts": "9.9"}
    with pytest.raises(LeaseLost, match="req-1"):
        await paused.begin_request(lease, [entry("room-2")], late)
    with pytest.raises(LeaseLost):
        await paused.complete_request(lease, [(ids[0], done())], late)
    with pytest.raises(LeaseLost):
        await paused.finish_request(lease, reply=late)
    with pytest.raises(LeaseLost):
        await paused.abandon_request(lease)
    assert await paused.renew_leases([lease]) == ([], [lease])

    record = await survivor.get_request("req-1")
    assert record is not None
    assert (record.owner, record.fence, record.state) == ("survivor", 2, RequestState.RUNNING)
    assert record.reply == SLACK
    rows = await survivor.rows_for_request("req-1")
    assert [(r.id, r.outcome) for r in rows] == [(ids[0], Outcome.PENDING)]
    # The survivor's own writes go through.
    await survivor.complete_request(taken.lease, [(ids[0], done(Outcome.IN_PLACE))])
    await survivor.finish_request(taken.lease)


async def test_the_late_answer_of_a_replica_that_lost_the_request_is_refused(
    cluster: Replicas,
) -> None:
    paused = await cluster.open("paused")
    survivor = await cluster.open("survivor")
    lease = await claimed(paused)
    [row_id] = await paused.begin_request(lease, [entry("room-1")])
    await cluster.advance(LEASE_S + 1)
    [taken] = await survivor.take_over()
    verdict = done(Outcome.NOT_APPLIED, detail="read back", tencent_request_id="Id-read")
    await survivor.complete_request(taken.lease, [(row_id, verdict)])
    # The paused replica wakes up with its call's answer: refused, the verdict stands.
    with pytest.raises(LeaseLost):
        await paused.complete_request(lease, [(row_id, done(tencent_request_id="Id-call"))])
    row = await survivor.get(row_id)
    assert row is not None
    assert (row.outcome, row.tencent_request_id) == (Outcome.NOT_APPLIED, "Id-read")


async def test_an_unfenced_completion_may_still_replace_a_provisional_outcome(
    target: str | Path,
) -> None:
    # `complete` (rows of no request record) keeps the rule that the call's own answer beats a
    # reading; only a call's own outcome is final.
    async with await open_store(target, owner="a") as store:
        ids = await store.begin([entry("room-1"), entry("room-2"), entry("room-3")])
        await store.complete_many(
            [
                (ids[0], {"outcome": Outcome.IN_PLACE, "detail": "read back"}),
                (ids[1], {"outcome": Outcome.NOT_APPLIED, "detail": "read back"}),
                (ids[2], {"outcome": Outcome.OK}),
            ]
        )
        await store.complete(ids[0], outcome=Outcome.OK, tencent_request_id="Id-real")
        await store.complete(ids[1], outcome=Outcome.FAILED, error_code=100004)
        with pytest.raises(AuditError, match=str(ids[2])):
            await store.complete(ids[2], outcome=Outcome.NOT_APPLIED)
        rows = await store.rows_for_request("req-1")
    assert [r.outcome for r in rows] == [Outcome.OK, Outcome.FAILED, Outcome.OK]
    assert rows[0].tencent_request_id == "Id-real"
    assert rows[0].detail is None  # the provisional note went with the verdict


# -- renewal and expiry -------------------------------------------------------------------------


async def test_renewal_keeps_a_lease_and_only_its_end_lets_a_survivor_in(
    cluster: Replicas, clock: FakeClock
) -> None:
    holder = await cluster.open("holder")
    survivor = await cluster.open("survivor")
    lease = await claimed(holder)
    for _ in range(4):  # renewed every two thirds of a lease, for well past the first lease
        await cluster.advance(LEASE_S * 2 / 3)
        assert await survivor.take_over() == []
        [lease], lost = await holder.renew_leases([lease])
        assert lost == []
        assert (lease.owner, lease.fence) == ("holder", 1)
        assert lease.deadline == clock.now + LEASE_S  # reckoned from before the renewal
    await cluster.advance(LEASE_S - 1)
    assert await survivor.take_over() == []  # a live lease is never taken
    await cluster.advance(2)
    [taken] = await survivor.take_over()
    assert taken.previous_owner == "holder"
    assert await holder.renew_leases([lease]) == ([], [lease])
    assert await holder.renew_leases([]) == ([], [])


async def test_an_expired_lease_goes_to_exactly_one_survivor_with_its_rows(
    cluster: Replicas, clock: FakeClock
) -> None:
    worker = await cluster.open("worker")
    one = await cluster.open("survivor-1")
    two = await cluster.open("survivor-2")
    lease = await claimed(worker)
    ids = await worker.begin_request(lease, [entry("room-1"), entry("room-2")])
    await cluster.advance(LEASE_S + 1)

    got_one, got_two = await asyncio.gather(one.take_over(), two.take_over())
    assert sorted([len(got_one), len(got_two)]) == [0, 1]
    [taken] = got_one or got_two
    winner = one if got_one else two
    assert isinstance(taken, TakenRequest)
    assert taken.request_key == "req-1"
    assert taken.previous_owner == "worker"
    assert taken.lease == Lease("req-1", winner.owner, 2, clock.now + LEASE_S, clock.now + LEASE_S)
    record = taken.record
    assert (record.owner, record.fence, record.takeovers) == (winner.owner, 2, 1)
    assert record.state is RequestState.RUNNING
    assert record.reply == SLACK
    assert [r.id for r in taken.rows] == ids
    assert [r.id for r in taken.unsettled_rows] == ids
    # It is the winner's now, for a whole lease.
    await cluster.advance(LEASE_S - 1)
    assert await one.take_over() == []
    assert await two.take_over() == []


async def test_two_survivors_split_many_expired_requests_without_overlap(
    cluster: Replicas,
) -> None:
    worker = await cluster.open("worker")
    s1 = await cluster.open("s1")
    s2 = await cluster.open("s2")
    keys = [f"req-{i:02d}" for i in range(30)]
    for key in keys:
        await claimed(worker, key, reply={**SLACK, "key": key})
    await cluster.advance(LEASE_S + 1)

    async def drain(store: AuditStore) -> list[TakenRequest]:
        got: list[TakenRequest] = []
        while batch := await store.take_over(limit=3):
            assert len(batch) <= 3
            got += batch
        return got

    first, second = await asyncio.gather(drain(s1), drain(s2))
    taken = [t.request_key for t in first + second]
    assert sorted(taken) == keys  # each exactly once
    assert all(t.record.reply["key"] == t.request_key for t in first + second)
    assert all(t.lease.fence == 2 for t in first + second)
    assert {t.record.owner for t in first} <= {"s1"}
    assert {t.record.owner for t in second} <= {"s2"}


@pytest.mark.postgres
async def test_postgresql_skips_a_request_another_replica_is_taking(
    pg_url: str, clock: FakeClock
) -> None:
    async with replicas(pg_url, clock) as cluster:
        worker = await cluster.open("worker")
        survivor = await cluster.open("survivor")
        for key in ("req-1", "req-2", "req-3"):
            await claimed(worker, key)
        await cluster.advance(LEASE_S + 1)
        async with await psycopg.AsyncConnection.connect(pg_url) as other:
            # Another replica's takeover transaction has req-2 locked and has not committed.
            await other.execute("SELECT 1 FROM requests WHERE request_key = 'req-2' FOR UPDATE")
            taken = await asyncio.wait_for(survivor.take_over(), timeout=5)
            assert sorted(t.request_key for t in taken) == ["req-1", "req-3"]
            await other.rollback()
        [late] = await survivor.take_over()
        assert late.request_key == "req-2"


async def test_a_taken_over_request_can_expire_again_for_the_next_survivor(
    cluster: Replicas,
) -> None:
    worker = await cluster.open("worker")
    s1 = await cluster.open("s1")
    s2 = await cluster.open("s2")
    lease = await claimed(worker)
    await cluster.advance(LEASE_S + 1)
    [first] = await s1.take_over()
    assert (first.lease.fence, first.record.takeovers) == (2, 1)
    # s1 stops before reporting: s2 gets the request once s1's lease has run out too.
    await cluster.advance(LEASE_S + 1)
    [second] = await s2.take_over()
    assert (second.previous_owner, second.lease.fence, second.record.takeovers) == ("s1", 3, 2)
    assert second.record.reply == SLACK
    with pytest.raises(LeaseLost):
        await worker.begin_request(lease, [entry("room-1")])
    with pytest.raises(LeaseLost):
        await s1.begin_request(first.lease, [entry("room-1")])
    assert await s2.rows_for_request("req-1") == []


async def test_a_replica_takes_only_what_its_adapters_can_deliver(cluster: Replicas) -> None:
    worker = await cluster.open("worker")
    survivor = await cluster.open("survivor")
    await claimed(worker, "from-slack")
    await claimed(worker, "from-console", reply={"adapter": "console"})
    await claimed(worker, "from-nowhere", reply={})
    await cluster.advance(LEASE_S + 1)
    [console] = await survivor.take_over(adapters=("console",))
    assert console.request_key == "from-console"
    assert await survivor.take_over(adapters=("test",)) == []
    [slack] = await survivor.take_over(adapters=("slack", "console"))
    assert slack.request_key == "from-slack"
    [nowhere] = await survivor.take_over()  # every adapter, "unknown" included
    assert (nowhere.request_key, nowhere.record.adapter) == ("from-nowhere", "unknown")


async def test_a_replica_never_takes_over_its_own_request(cluster: Replicas) -> None:
    slow = await cluster.open("slow")
    other = await cluster.open("other")
    await claimed(slow)
    await cluster.advance(LEASE_S + 1)
    # Its lease ran out (a heartbeat missed), but it is still carrying the request out.
    assert await slow.take_over() == []
    record = await slow.get_request("req-1")
    assert record is not None
    assert (record.owner, record.fence) == ("slow", 1)
    [taken] = await other.take_over()
    assert taken.previous_owner == "slow"


async def test_an_abandoned_request_is_taken_at_once_by_any_replica_this_one_included(
    cluster: Replicas,
) -> None:
    a = await cluster.open("a")
    b = await cluster.open("b")
    first = await claimed(a, "req-1")
    second = await claimed(a, "req-2")
    await a.abandon_request(first)
    await a.abandon_request(second)
    with pytest.raises(LeaseLost):
        await a.begin_request(first, [entry("room-1")])
    [by_b] = await b.take_over(limit=1)  # no waiting for the lease
    [by_a] = await a.take_over()
    assert {by_a.request_key, by_b.request_key} == {"req-1", "req-2"}
    assert by_a.previous_owner is None
    assert by_a.lease.fence == 2
    assert by_a.record.owner == "a"
    # Its own again, under a new fencing number: the lease it gave up stays refused.
    given_up = first if by_a.request_key == "req-1" else second
    with pytest.raises(LeaseLost):
        await a.begin_request(given_up, [entry("room-1")])
    assert await a.renew_leases([given_up]) == ([], [given_up])
    await a.begin_request(by_a.lease, [entry("room-1")])


async def test_take_over_needs_a_positive_limit(cluster: Replicas) -> None:
    store = await cluster.open("a")
    with pytest.raises(ValueError, match="limit"):
        await store.take_over(limit=0)


# -- stopped processes on this host -------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_the_leases_of_stopped_processes_on_this_host_end_at_once(
    cluster: Replicas,
) -> None:
    host = socket.gethostname()
    owners = {
        "restarted": predecessor(),  # this pid, another process: this one's predecessor
        "exited": f"{host}:{_dead_pid()}:00000001",
        "running": f"{host}:1:00000002",  # pid 1 always runs
        "elsewhere": "another-host:4242:00000003",  # cannot be judged from here
    }
    # Every replica is open before any claims (opening a store ends stopped leases too).
    stores = {name: await cluster.open(owner) for name, owner in owners.items()}
    me = await cluster.open(f"{host}:1:0000cafe")
    for name, store in stores.items():
        await claimed(store, name)
    await claimed(me, "mine")

    assert await me.expire_stopped() == 2
    taken = await me.take_over()
    assert sorted(t.request_key for t in taken) == ["exited", "restarted"]
    assert {t.request_key: t.previous_owner for t in taken} == {
        "exited": owners["exited"],
        "restarted": owners["restarted"],
    }
    assert await me.expire_stopped() == 0  # the stopped ones hold nothing any more
    for key in ("running", "elsewhere", "mine"):
        record = await me.get_request(key)
        assert record is not None
        assert record.fence == 1, key


async def test_a_restarted_process_takes_its_predecessors_requests_as_they_were(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.sqlite3"
    gone = predecessor()
    async with await open_store(path, owner=gone) as stopped:
        lease = await claimed(stopped, "req-1")
        ids = await stopped.begin_request(lease, [entry("room-1"), entry("room-2")])
        await stopped.complete(ids[0], outcome=Outcome.OK)  # one answer in before it stopped
        await claimed(stopped, "req-2")  # still reading rooms: no row yet
        reported = await claimed(stopped, "req-3")
        await stopped.finish_request(reported)
    async with await open_store(path, owner="next") as store:
        assert store.recovered == 2
        by_key = {t.request_key: t for t in await store.take_over()}
        assert sorted(by_key) == ["req-1", "req-2"]
        one = by_key["req-1"]
        # Nothing is marked unknown at start-up any more: the rows are as the process left them.
        assert [r.outcome for r in one.rows] == [Outcome.OK, Outcome.PENDING]
        assert [r.id for r in one.unsettled_rows] == [ids[1]]
        assert (one.previous_owner, one.lease.fence, one.record.state) == (
            gone,
            2,
            RequestState.RUNNING,
        )
        two = by_key["req-2"]
        assert (two.rows, two.record.state) == ((), RequestState.RECEIVED)
        await store.finish_request(one.lease)
    # The next start finds only what was left unreported.
    async with await open_store(path, owner=predecessor("0000beef")) as again:
        assert again.recovered == 0  # "next" is not a name this host can judge
        record = await again.get_request("req-2")
        assert record is not None
        assert record.owner == "next"


# -- the database's clock -----------------------------------------------------------------------


@pytest.mark.slow
async def test_leases_live_and_expire_on_the_databases_clock(target: str | Path) -> None:
    lease_s = 0.5
    async with (
        await open_store(target, owner="worker", lease_s=lease_s) as worker,
        await open_store(target, owner="survivor-1", lease_s=lease_s) as one,
        await open_store(target, owner="survivor-2", lease_s=lease_s) as two,
    ):
        lease = await claimed(worker)
        # Renewed every quarter of a lease for three lease lengths: never taken.
        deadline = time.monotonic() + 3 * lease_s
        while time.monotonic() < deadline:
            [lease], _ = await worker.renew_leases([lease])
            assert list(await asyncio.gather(one.take_over(), two.take_over())) == [[], []]
            await asyncio.sleep(lease_s / 4)
        assert lease.deadline <= time.monotonic() + lease_s
        # The worker stops renewing: after a lease length, exactly one survivor has it.
        await asyncio.sleep(lease_s + 0.1)
        got = await asyncio.gather(one.take_over(), two.take_over())
        assert sorted(map(len, got)) == [0, 1]
        assert await worker.renew_leases([lease]) == ([], [lease])
