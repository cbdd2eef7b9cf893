"""The Room Engine rate budget shared by replicas on PostgreSQL: several budgets (as several
replicas would hold) hammering one database never start more than floor(rate) calls in any
one-second window, count a call until its answer, and give fewer calls, never more, when the
database is slow or gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from bot import metrics
from bot.audit import AuditStore, NewRequest, open_store
from bot.audit import budget as budget_module
from bot.audit.budget import END_RIDE_S, RateBudgetUnavailable, SharedRateBudget
from bot.audit.dialect import RateBudgets
from bot.budget import RateBudget
from bot.dsn import DatabaseUrl

pytestmark = pytest.mark.postgres

API = "update_room_info"


def max_in_any_window(moments: list[float], window: float = 1.0) -> int:
    ordered = sorted(moments)
    best = 0
    j = 0
    for i, moment in enumerate(ordered):
        while ordered[j] <= moment - window:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[list[AuditStore]]:
    """Four stores on one database, as four replicas would have."""
    stores = [await open_store(pg_url, owner=f"replica-{i}") for i in range(4)]
    yield stores
    for store in stores:
        await store.close()


@pytest.mark.slow
async def test_replicas_together_never_start_more_than_the_rate_in_any_second(
    replicas: list[AuditStore],
) -> None:
    rate = 40
    budgets = [store.rate_budget(rate) for store in replicas]
    starts: list[float] = []

    async def caller(budget: SharedRateBudget) -> None:
        await budget.acquire(API)
        starts.append(time.monotonic())

    began = time.monotonic()
    # Every replica gets a burst of callers at once: 160 calls, four windows' worth.
    await asyncio.gather(*(caller(b) for b in budgets for _ in range(40)))  # type: ignore[arg-type]
    assert len(starts) == 160
    assert max_in_any_window(starts) <= rate
    # ... and the budget is used, not squandered: four windows plus a little.
    assert time.monotonic() - began <= 4 * 1.02 + 1.5


@pytest.mark.slow
async def test_a_call_counts_until_its_answer_across_replicas(
    replicas: list[AuditStore],
) -> None:
    # The first calls wait for new connections and so reach Tencent late; the calls granted a
    # window after them must still not arrive within the same second as them. Counting each
    # call until its answer (not just from its start) is what keeps the arrivals in bounds.
    rate = 30
    budgets = [store.rate_budget(rate) for store in replicas[:3]]
    arrivals: list[float] = []
    starts: list[float] = []

    async def call(budget: SharedRateBudget) -> None:
        async with budget.slot(API):
            starts.append(time.monotonic())
            if len(starts) <= rate:
                await asyncio.sleep(0.3)  # a TLS handshake, say
            arrivals.append(time.monotonic())
            await asyncio.sleep(0.005)  # the answer

    await asyncio.gather(*(call(b) for b in budgets for _ in range(30)))  # type: ignore[arg-type]
    assert len(arrivals) == 90
    assert max_in_any_window(arrivals) <= rate
    assert max_in_any_window(starts) <= rate


@pytest.mark.slow
async def test_calls_are_spread_not_bunched(pg_url: str) -> None:
    async with await open_store(pg_url) as store:
        budget = store.rate_budget(50, burst=1)
        starts: list[float] = []

        async def caller() -> None:
            await budget.acquire(API)
            starts.append(time.monotonic())

        await asyncio.gather(*(caller() for _ in range(20)))
    starts.sort()
    # 1/50 s apart: 20 calls span at least 19 intervals (less a little timer jitter).
    assert starts[-1] - starts[0] >= 19 * 0.02 * 0.9


@pytest.mark.slow
async def test_a_call_still_in_flight_holds_its_slot(pg_url: str) -> None:
    async with await open_store(pg_url) as a, await open_store(pg_url) as b:
        busy = a.rate_budget(3, burst=3)
        other = b.rate_budget(3, burst=3)
        answer = asyncio.Event()
        inside: list[None] = []
        all_inside = asyncio.Event()

        async def long_call() -> None:
            async with busy.slot(API):
                inside.append(None)
                if len(inside) == 3:
                    all_inside.set()
                await answer.wait()

        holders = [asyncio.create_task(long_call()) for _ in range(3)]
        await asyncio.wait_for(all_inside.wait(), timeout=5)
        # Three calls in flight on replica a: replica b gets nothing, however long it waits.
        waiting = asyncio.create_task(other.acquire(API))
        await asyncio.sleep(1.5)
        assert not waiting.done()
        answered = time.monotonic()
        answer.set()
        await asyncio.gather(*holders)
        await asyncio.wait_for(waiting, timeout=5)
        # ... and only once a call has been over for a window.
        assert time.monotonic() - answered >= 1.0


@pytest.mark.slow
async def test_the_slots_of_a_stopped_replica_are_ended_by_a_survivor(pg_url: str) -> None:
    async with (
        await open_store(pg_url, owner="stopped", lease_s=0.5) as stopped,
        await open_store(pg_url, owner="alive") as alive,
        await open_store(pg_url, owner="survivor") as survivor,
    ):
        # The stopped replica held a request: a survivor takes it over once its lease runs out,
        # and ends that replica's slots in the same transaction.
        assert await stopped.claim_request(_request()) is not None
        dead = stopped.rate_budget(3, burst=3)
        live = alive.rate_budget(3, burst=3)
        # Replica "stopped" dies in two calls, replica "alive" is in one: all three slots held.
        stuck = [dead.slot(API), dead.slot(API)]
        for cm in stuck:
            await asyncio.wait_for(cm.__aenter__(), timeout=5)
        in_flight = live.slot(API)
        await asyncio.wait_for(in_flight.__aenter__(), timeout=5)
        waiting = asyncio.create_task(survivor.rate_budget(3, burst=3).acquire(API))
        await asyncio.sleep(1.2)
        assert not waiting.done()  # without help it would wait for the holds (a minute)

        ended = time.monotonic()
        [taken] = await survivor.take_over()
        assert taken.previous_owner == "stopped"
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            cur = await conn.execute("SELECT count(*) FROM rate_slots WHERE owner = 'stopped'")
            assert await cur.fetchone() == (2,)
            cur = await conn.execute(
                "SELECT count(*) FROM rate_slots WHERE owner = 'stopped' AND ended_at IS NULL"
            )
            assert await cur.fetchone() == (0,)
        await asyncio.wait_for(waiting, timeout=5)
        # ... once the ended calls have been over for a window, like any ended call.
        assert time.monotonic() - ended >= 1.0
        # The live replica's call still counts: only the stopped replica's were ended (the
        # survivor's own call end is written once it has waited to ride along).
        await asyncio.sleep(END_RIDE_S + 0.3)
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            cur = await conn.execute(
                "SELECT owner FROM rate_slots WHERE ended_at IS NULL ORDER BY owner"
            )
            assert [owner for (owner,) in await cur.fetchall()] == ["alive"]
        await in_flight.__aexit__(None, None, None)


@pytest.mark.slow
async def test_a_call_end_waits_its_own_ride_for_a_store_write_to_carry_it(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ride = 1.0  # long enough that the sleeps below cannot blur the moments
    monkeypatch.setattr(budget_module, "END_RIDE_S", ride)

    def written_on_their_own() -> float:
        return metrics.value("roombot_store_transactions_total", operation="rate_end")

    async with await open_store(pg_url, owner="rider") as store:
        budget = store.rate_budget(50)
        before = written_on_their_own()
        started = time.monotonic()
        async with budget.slot(API):
            pass  # a first call ends: its end waits to ride along
        await asyncio.sleep(0.2)
        assert await store.claim_request(_request("first")) is not None  # and rides here
        await asyncio.sleep(0.6)
        async with budget.slot(API):
            pass  # a second call ends, 0.8 s in: its own ride lasts until 1.8 s
        await asyncio.sleep(0.5)
        assert time.monotonic() - started > ride  # past the first end's ride
        assert await store.claim_request(_request("second")) is not None
        assert written_on_their_own() == before  # both ends rode with a claim
        async with budget.slot(API):
            pass  # an end no write comes for is written on its own after its ride
        await asyncio.sleep(ride + 0.5)
        assert written_on_their_own() == before + 1
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            cur = await conn.execute("SELECT count(*) FROM rate_slots WHERE ended_at IS NULL")
            assert await cur.fetchone() == (0,)


def _request(key: str = "stranded") -> NewRequest:
    return NewRequest(
        request_key=key,
        kind="request",
        source="slash",
        user_id="U1",
        verb="mute-all",
        raw_text="mute-all r1",
        plan={},
        reply={"adapter": "slack"},
    )


@pytest.mark.slow
async def test_a_slow_database_means_fewer_calls_never_more(pg_url: str) -> None:
    async with await open_store(pg_url) as store:
        budget = store.rate_budget(20)
        await budget.acquire(API)  # the budget's row exists from here on
        starts: list[float] = []

        async def caller() -> None:
            await budget.acquire(API)
            starts.append(time.monotonic())

        async with await psycopg.AsyncConnection.connect(pg_url) as locker:
            # Another session holds the budget's row: the database cannot grant anything.
            await locker.execute("SELECT * FROM rate_budgets FOR UPDATE")
            callers = [asyncio.create_task(caller()) for _ in range(10)]
            await asyncio.sleep(1.0)
            assert starts == []
            released = time.monotonic()
            await locker.rollback()
        await asyncio.gather(*callers)
    assert len(starts) == 10
    assert min(starts) >= released


async def test_an_unreachable_database_fails_the_call_instead_of_letting_it_through() -> None:
    url = DatabaseUrl("postgresql://roombot:s3cret-pw@127.0.0.1:9/roombot")
    budget = SharedRateBudget(url, rate_per_second=50, wait_s=0.5, connect_timeout_s=0.2)
    began = time.monotonic()
    try:
        with pytest.raises(RateBudgetUnavailable) as info:
            async with budget.slot(API):
                pytest.fail("the call must not be made")
        with pytest.raises(RateBudgetUnavailable):
            await budget.acquire(API)
    finally:
        await budget.aclose()
    assert time.monotonic() - began >= 0.5
    assert "s3cret-pw" not in str(info.value)
    assert "s3cret-pw" not in repr(budget)


async def test_cancelled_callers_leave_no_slot_behind(pg_url: str) -> None:
    async with await open_store(pg_url) as store:
        budget = store.rate_budget(2, burst=2)
        waiters = [asyncio.create_task(budget.acquire(API)) for _ in range(20)]
        await asyncio.sleep(0.05)
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        # Every slot granted to a cancelled caller was handed back: two fresh calls get
        # through (within a window of the cancelled ones, at worst).
        await asyncio.wait_for(asyncio.gather(budget.acquire(API), budget.acquire(API)), timeout=3)


async def test_the_budget_refuses_a_nonsense_rate(pg_url: str) -> None:
    url = DatabaseUrl(pg_url)
    for rate in (0, -1, 201, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            SharedRateBudget(url, rate_per_second=rate)
    with pytest.raises(ValueError, match="burst"):
        SharedRateBudget(url, rate_per_second=10, burst=11)


async def test_sqlite_stores_use_the_process_budget(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "audit.sqlite3") as store:
        budget = store.rate_budget(50)
        assert isinstance(budget, RateBudget)
        assert store.rate_budget(50) is budget


# -- one budget per API, and halving one for every replica -----------------------------------------


@pytest.mark.slow
async def test_member_reads_at_the_limit_do_not_delay_a_room_write(
    replicas: list[AuditStore], pg_url: str
) -> None:
    rate = 10
    reader, writer = (store.rate_budget(rate, burst=rate, app=1400000042) for store in replicas[:2])
    reads: list[float] = []
    first_window = asyncio.Event()

    async def read() -> None:
        async with reader.slot("get_room_member_list"):
            reads.append(time.monotonic())
            if len(reads) == rate:
                first_window.set()

    # Four windows' worth of member reads on one replica (the first window's at once)...
    flood = [asyncio.create_task(read()) for _ in range(4 * rate)]
    await asyncio.wait_for(first_window.wait(), timeout=5)
    # ... and a room write on another, while the reads still queue for their budget.
    asked = time.monotonic()
    await writer.acquire("update_room_info")
    waited = time.monotonic() - asked
    assert len(reads) < 4 * rate
    assert waited < 0.3, waited
    await asyncio.gather(*flood)
    assert max_in_any_window(reads) <= rate
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        cur = await conn.execute("SELECT name FROM rate_budgets ORDER BY name")
        names = [row[0] for row in await cur.fetchall()]
    assert names == ["1400000042:get_room_member_list", "1400000042:update_room_info"]


@pytest.mark.slow
async def test_halving_on_one_replica_halves_every_replica_for_that_api_only(
    replicas: list[AuditStore],
) -> None:
    rate = 20
    warned, other = (store.rate_budget(rate, burst=2) for store in replicas[:2])
    halving = await warned.halve(API, seconds=30)
    assert (halving.started, halving.limit) == (True, 10)
    assert 29 <= halving.until_s <= 30
    # Another replica warned too (Tencent repeats itself): extended, not started again.
    again = await other.halve(API, seconds=30)
    assert again.started is False

    starts: list[float] = []
    reads: list[float] = []

    async def call(budget: RateBudgets, api: str, into: list[float]) -> None:
        async with budget.slot(api):
            into.append(time.monotonic())

    await asyncio.gather(
        *(call(b, API, starts) for b in (warned, other) for _ in range(20)),
        *(call(other, "get_room_info", reads) for _ in range(20)),
    )
    # Both replicas together: 10 a second for the halved API, 20 for the other one.
    assert max_in_any_window(starts) <= 10
    assert max(starts) - min(starts) >= 2.9  # 40 calls at 10/s, not at 20/s
    assert max_in_any_window(reads) == 20
    # The replica that was not warned learnt it from its grants (what its gauge shows).
    assert other.limit(API) == 10
    assert other.limit("get_room_info") == 20
