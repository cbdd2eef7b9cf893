"""`Sweeper`, a replica's survivor duty in the background: a stopped replica's request is reported
once, by one of the survivors racing for it; a report that cannot be delivered is tried again
while this replica keeps the lease; a request this replica still carries out is left alone; a
SQLite store's start-up recovery is reported in the first round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot import metrics
from bot.audit import AuditStore, NewEntry, Outcome
from bot.leases import LeaseKeeper
from bot.takeover import Sweeper, TakeoverReport
from bot.tencent.client import RetryPolicy, RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from bot.tencent.ratelimit import RateBudget

APP = 1400000000
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
LEASE_S = 0.5
CONTEXT = {"channel": "C1", "thread_ts": "1700000000.000100"}
MUTE = {"IsAudioDisabled": True}


@pytest.fixture
async def client() -> AsyncIterator[RoomEngineClient]:
    emulator = RoomEngineEmulator(
        sdkappid=APP,
        secret_key=KEY,
        rooms=[{"RoomId": "room-done", "IsAudioDisabled": True}, "room-not-done"],
    )
    await emulator.start()
    async with RoomEngineClient(
        base_url=emulator.base_url,
        sdkappid=APP,
        secret_key=KEY,
        admin_id="administrator",
        rate_budget=RateBudget(200),
        retry=RetryPolicy(max_attempts=1),
    ) as c:
        yield c
    await emulator.stop()


def entry(room: str, key: str = "req-1") -> NewEntry:
    return NewEntry(
        request_key=key,
        source="slash",
        user_id="U0ALICE",
        verb="mute-all",
        raw_text="mute-all room-done room-not-done",
        room_id=room,
        channel_id="C1",
        patch=MUTE,
    )


async def stop_mid_request(target: str | Path, key: str = "req-1") -> None:
    """A replica takes the lease, writes its pending rows, and stops without a word."""
    worker = await AuditStore.open(target, owner="worker", lease_s=LEASE_S)
    await worker.take_lease(key, CONTEXT)
    await worker.begin([entry("room-done", key), entry("room-not-done", key)])
    await worker.close()


async def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.postgres
async def test_two_survivors_report_a_stopped_request_once(
    pg_url: str, client: RoomEngineClient
) -> None:
    await stop_mid_request(pg_url)
    # It stopped in the middle of a call, too: its rate-budget slot was never ended.
    async with await AuditStore.open(pg_url, owner="worker") as worker:
        await worker.rate_budget(5).slot().__aenter__()
    delivered: list[tuple[str, TakeoverReport]] = []
    stores = [
        await AuditStore.open(pg_url, owner=f"survivor-{i}", lease_s=LEASE_S) for i in range(2)
    ]
    keepers = [LeaseKeeper(store, interval=0.1) for store in stores]
    sweepers = []
    for i, (store, keeper) in enumerate(zip(stores, keepers, strict=True)):

        async def deliver(report: TakeoverReport, name: str = f"survivor-{i}") -> None:
            delivered.append((name, report))

        sweepers.append(Sweeper(store, client, deliver, leases=keeper, interval_s=0.05))
    try:
        for sweeper in sweepers:
            sweeper.start()
        await wait_until(lambda: delivered)
        await asyncio.sleep(LEASE_S * 3)  # long enough for a second report, if there were one
        [(_name, report)] = delivered
        assert report.context == CONTEXT
        assert [v.outcome for v in report.verdicts] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]
        assert await stores[0].get_lease("req-1") is None  # released once delivered
        rows = await stores[0].rows_for_request("req-1")
        assert [r.outcome for r in rows] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]
        # The stopped replica's slot was ended, so it stops holding the shared budget.
        assert await stores[0].end_rate_slots_of("worker") == 0
    finally:
        for sweeper in sweepers:
            await sweeper.stop()
        for keeper in keepers:
            await keeper.aclose()
        for store in stores:
            await store.close()


async def test_an_undelivered_report_is_retried_while_this_replica_keeps_the_lease(
    target: str | Path, client: RoomEngineClient
) -> None:
    await stop_mid_request(target)
    attempts: list[TakeoverReport] = []

    async def flaky(report: TakeoverReport) -> None:
        attempts.append(report)
        if len(attempts) < 3:
            raise RuntimeError("Slack is down")

    async with (
        await AuditStore.open(target, owner="survivor", lease_s=LEASE_S) as store,
        await AuditStore.open(target, owner="other", lease_s=LEASE_S) as other,
    ):
        await asyncio.sleep(LEASE_S + 0.1)
        keeper = LeaseKeeper(store, interval=0.1)
        sweeper = Sweeper(store, client, flaky, leases=keeper, interval_s=0.05)
        sweeper.start()
        try:
            await wait_until(lambda: len(attempts) == 1)
            assert sweeper.undelivered == {"req-1"}
            # Meanwhile the survivor keeps the lease alive: nobody else takes it over.
            await asyncio.sleep(LEASE_S + 0.2)
            assert await other.claim_expired_leases() == []
            await wait_until(lambda: len(attempts) == 3)
            await wait_until(lambda: not keeper.holds("req-1"))
            assert sweeper.undelivered == frozenset()
            assert await store.get_lease("req-1") is None
        finally:
            await sweeper.stop()
            await keeper.aclose()


async def test_a_request_this_replica_still_carries_out_is_left_to_finish(
    target: str | Path, client: RoomEngineClient
) -> None:
    delivered: list[TakeoverReport] = []

    async def deliver(report: TakeoverReport) -> None:
        delivered.append(report)

    async with await AuditStore.open(target, owner="me", lease_s=LEASE_S) as store:
        keeper = LeaseKeeper(store, interval=60)  # a heartbeat that missed its beats
        await keeper.take("req-1", CONTEXT)
        await store.begin([entry("room-done")])
        await asyncio.sleep(LEASE_S + 0.1)
        sweeper = Sweeper(store, client, deliver, leases=keeper)
        assert await sweeper.run_once() == []
        assert delivered == []
        lease = await store.get_lease("req-1")
        assert lease is not None
        assert lease.owner == "me"  # claimed back: it is this replica's again
        [row] = await store.rows_for_request("req-1")
        assert row.outcome is Outcome.PENDING  # its own outcome is still to come
        await keeper.release("req-1")
        await keeper.aclose()


async def test_a_sqlite_start_up_recovery_is_reported_in_the_first_round(
    tmp_path: Path, client: RoomEngineClient
) -> None:
    path = tmp_path / "audit.sqlite3"
    await stop_mid_request(path)
    delivered: list[TakeoverReport] = []

    async def deliver(report: TakeoverReport) -> None:
        delivered.append(report)

    restarts = metrics.value("roombot_takeovers_total", kind="restart")
    async with await AuditStore.open(path, owner="restarted", lease_s=30) as store:
        assert [s.request_key for s in store.recovered] == ["req-1"]
        keeper = LeaseKeeper(store)
        sweeper = Sweeper(store, client, deliver, leases=keeper)
        [report] = await sweeper.run_once()
        assert metrics.value("roombot_takeovers_total", kind="restart") == restarts + 1
        assert delivered == [report]
        assert [v.outcome for v in report.verdicts] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]
        assert await store.get_lease("req-1") is None
        assert await sweeper.run_once() == []  # reported once
        await keeper.aclose()


@pytest.mark.postgres
async def test_work_stuck_past_its_lease_is_counted_once_and_an_undelivered_report_gauged(
    pg_url: str, client: RoomEngineClient
) -> None:
    await stop_mid_request(pg_url)
    taken_over = metrics.value("roombot_takeovers_total", kind="lease_expired")
    attempts: list[TakeoverReport] = []

    async def flaky(report: TakeoverReport) -> None:
        attempts.append(report)
        if len(attempts) < 2:
            raise RuntimeError("Slack is down")

    async with await AuditStore.open(pg_url, owner="survivor", lease_s=LEASE_S) as store:
        await asyncio.sleep(LEASE_S + 0.1)
        keeper = LeaseKeeper(store, interval=0.1)
        sweeper = Sweeper(store, client, flaky, leases=keeper, interval_s=0.05)
        try:
            await sweeper.run_once()
            assert attempts
            assert metrics.value("roombot_takeovers_undelivered") == 1
            sweeper.start()
            await wait_until(lambda: len(attempts) == 2)
            await wait_until(lambda: metrics.value("roombot_takeovers_undelivered") == 0)
            # Delivered at the second attempt: one takeover, however many attempts.
            assert metrics.value("roombot_takeovers_total", kind="lease_expired") == taken_over + 1
        finally:
            await sweeper.stop()
            await keeper.aclose()
