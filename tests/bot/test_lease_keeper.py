"""`LeaseKeeper`: a process's leases, nested holds, one heartbeat only while something is held, a
release that failed retried at the next beat, a cancelled hold kept for a survivor; on both
store backends."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from bot.audit.sqlite import SqliteAuditStore
from bot.leases import LeaseKeeper

from bot.audit import AuditError, open_store

CONTEXT = {"channel": "C1", "thread_ts": "1700000000.000100"}


async def test_holds_nest_and_only_the_last_release_drops_the_lease(target: str | Path) -> None:
    async with await open_store(target, owner="me") as store:
        keeper = LeaseKeeper(store)
        assert not keeper.beating
        await keeper.take("req-1", CONTEXT)
        assert keeper.beating
        await keeper.take("req-1")  # the runner's hold inside the adapter's: context kept
        lease = await store.get_lease("req-1")
        assert lease is not None
        assert (lease.owner, lease.context) == ("me", CONTEXT)

        await keeper.update("req-1", {**CONTEXT, "parent_ts": "1700000000.000200"})
        lease = await store.get_lease("req-1")
        assert lease is not None
        assert lease.context["parent_ts"] == "1700000000.000200"

        await keeper.release("req-1")
        assert await store.get_lease("req-1") is not None  # the outer hold still has it
        assert keeper.holds("req-1")
        await keeper.release("req-1")
        assert await store.get_lease("req-1") is None
        assert not keeper.holds("req-1")
        assert not keeper.beating  # nothing held: no more writes
        await keeper.release("req-1")  # one release too many changes nothing
        await keeper.aclose()


async def test_update_needs_a_hold() -> None:
    async with await open_store(":memory:") as store:
        keeper = LeaseKeeper(store)
        with pytest.raises(KeyError):
            await keeper.update("req-x", CONTEXT)


async def test_the_heartbeat_keeps_held_leases_alive_and_stopping_it_lets_them_expire(
    target: str | Path,
) -> None:
    lease_s = 0.6
    async with (
        await open_store(target, owner="worker", lease_s=lease_s) as worker,
        await open_store(target, owner="survivor", lease_s=lease_s) as survivor,
    ):
        if survivor.recovered:  # SQLite: opening recovers what is in the file (nothing yet)
            pytest.fail("nothing should have been recovered")
        keeper = LeaseKeeper(worker, interval=0.1)
        await keeper.take("req-1", CONTEXT)
        await asyncio.sleep(lease_s * 2)
        assert await survivor.claim_expired_leases() == []  # renewed all along
        await keeper.aclose()  # the process stops renewing (it stopped)
        await asyncio.sleep(lease_s + 0.2)
        [stranded] = await survivor.claim_expired_leases()
        assert (stranded.request_key, stranded.context) == ("req-1", CONTEXT)


class FlakyRelease(SqliteAuditStore):
    """A store whose next `fail_releases` releases fail as a database outage makes them."""

    fail_releases = 0

    async def release_lease(self, request_key: str) -> bool:
        if self.fail_releases:
            self.fail_releases -= 1
            raise AuditError("the audit store could not release a lease: database is locked")
        return await super().release_lease(request_key)


async def test_a_release_that_failed_is_retried_at_the_next_beat_rather_than_renewed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await FlakyRelease.connect(":memory:", owner="me")
    assert isinstance(store, FlakyRelease)
    async with store:
        keeper = LeaseKeeper(store, interval=0.05)
        await keeper.take("req-1", CONTEXT)
        store.fail_releases = 1
        with caplog.at_level(logging.WARNING):
            await keeper.release("req-1")
        assert "could not release the lease on req-1 (will retry)" in caplog.text
        assert await store.get_lease("req-1") is not None
        assert keeper.beating  # still beating, to release it
        for _ in range(100):
            if await store.get_lease("req-1") is None and not keeper.beating:
                break
            await asyncio.sleep(0.02)
        assert await store.get_lease("req-1") is None
        assert not keeper.beating
        await keeper.aclose()


async def test_holding_releases_when_the_block_ends_or_fails_but_not_when_cancelled(
    target: str | Path,
) -> None:
    async with await open_store(target, owner="me") as store:
        keeper = LeaseKeeper(store)
        async with keeper.holding("done", CONTEXT) as taken:
            assert taken
            assert await store.get_lease("done") is not None
        assert await store.get_lease("done") is None

        with pytest.raises(RuntimeError):
            async with keeper.holding("broken", CONTEXT):
                raise RuntimeError("a bug in the adapter")
        assert await store.get_lease("broken") is None

        started = asyncio.Event()

        async def stopped_mid_way() -> None:
            async with keeper.holding("cancelled", CONTEXT):
                started.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(stopped_mid_way())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Shutdown: the lease stays, to expire once the process stops renewing it.
        lease = await store.get_lease("cancelled")
        assert lease is not None
        assert lease.context == CONTEXT
        assert keeper.holds("cancelled")
        await keeper.aclose()


class NoLeases(SqliteAuditStore):
    """A store that cannot write leases (its database refuses)."""

    async def take_lease(self, request_key: str, context: object) -> object:  # type: ignore[override]
        raise AuditError("the audit store could not take a lease: disk I/O error")


async def test_holding_a_lease_that_cannot_be_written_still_runs_the_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await NoLeases.connect(":memory:", owner="me")
    async with store:
        keeper = LeaseKeeper(store)
        with caplog.at_level(logging.WARNING):
            async with keeper.holding("req-1", CONTEXT) as taken:
                assert taken is False
        assert "could not take the lease on request req-1" in caplog.text
        assert not keeper.holds("req-1")
        await keeper.aclose()


async def test_adopted_leases_are_renewed_and_released_like_taken_ones(target: str | Path) -> None:
    lease_s = 0.5
    async with (
        await open_store(target, owner="gone", lease_s=lease_s) as gone,
        await open_store(target, owner="survivor", lease_s=lease_s) as survivor,
    ):
        await gone.take_lease("req-1", CONTEXT)
        await asyncio.sleep(lease_s + 0.1)
        [stranded] = await survivor.claim_expired_leases()
        keeper = LeaseKeeper(survivor, interval=0.1)
        keeper.adopt(stranded.request_key)
        await asyncio.sleep(lease_s * 2)
        assert await gone.claim_expired_leases() == []  # the survivor renews it
        await keeper.release("req-1")
        assert await survivor.get_lease("req-1") is None
        await keeper.aclose()
