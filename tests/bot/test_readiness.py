"""`bot.readiness`: cached, single-flight checks of named parts; the core's database and Room
Engine parts against a real store and the emulator."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot import metrics
from bot.audit import open_store
from bot.budget import RateBudget
from bot.readiness import NotReady, Readiness, database_part, tencent_part
from bot.redact import remember
from bot.tencent.client import RetryPolicy, RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from testkit.clock import FakeClock
from tests.bot.requestkit import new_request

KEY = "ready0test0secret0key" + "0" * 43
APP = 1400000077


class Part:
    """A part whose answer a test sets; counts how often it was checked."""

    def __init__(self) -> None:
        self.calls = 0
        self.problem: str | None = None
        self.delay = 0.0

    async def __call__(self) -> str:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.problem is not None:
            raise NotReady(self.problem)
        return "fine"


async def test_a_fresh_answer_is_reused_and_a_stale_one_rechecked() -> None:
    clock = FakeClock()
    part = Part()
    readiness = Readiness({"db": part}, cache_s=5, clock=clock)
    first = await readiness.report()
    clock.advance(4.9)
    assert await readiness.report() is first
    assert part.calls == 1
    part.problem = "down"
    clock.advance(0.2)
    second = await readiness.report()
    assert part.calls == 2
    assert not second.ready
    assert second.failing() == ["db: down"]
    assert second.as_dict(clock())["parts"]["db"] == {"ok": False, "detail": "down"}


async def test_a_probe_storm_runs_one_check() -> None:
    part = Part()
    part.delay = 0.05
    readiness = Readiness({"slow": part})
    reports = await asyncio.gather(*(readiness.report() for _ in range(200)))
    assert part.calls == 1
    assert readiness.checks_run == 1
    assert all(report is reports[0] for report in reports)


async def test_a_probe_that_gives_up_does_not_cancel_the_shared_check() -> None:
    part = Part()
    part.delay = 0.05
    readiness = Readiness({"slow": part})
    impatient = asyncio.create_task(readiness.report())
    await asyncio.sleep(0.01)
    impatient.cancel()
    report = await readiness.report()
    assert report.ready
    assert part.calls == 1


async def test_a_slow_or_broken_part_fails_alone() -> None:
    ok, slow = Part(), Part()
    slow.delay = 1.0

    async def broken() -> str:
        raise RuntimeError("bug")

    readiness = Readiness({"ok": ok, "slow": slow, "broken": broken}, timeout_s=0.05)
    report = await readiness.report()
    assert [(p.name, p.ok) for p in report.parts] == [
        ("ok", True),
        ("slow", False),
        ("broken", False),
    ]
    assert report.failing() == [
        "slow: no answer within 0.05 s",
        "broken: the check failed unexpectedly (RuntimeError)",
    ]


async def test_details_never_carry_a_secret_and_the_gauge_follows() -> None:
    remember(KEY)
    part = Part()
    part.problem = f"refused key {KEY}"
    readiness = Readiness({"tencent": part})
    report = await readiness.report()
    assert KEY not in str(report.as_dict(0))
    assert metrics.value("roombot_ready", part="tencent") == 0


async def test_refresh_soon_checks_a_stale_answer_in_the_background_and_never_waits() -> None:
    clock = FakeClock()
    part = Part()
    readiness = Readiness({"scraped": part}, cache_s=5, clock=clock)
    readiness.refresh_soon()  # nothing cached yet: a check starts
    await asyncio.sleep(0.01)
    assert part.calls == 1
    clock.advance(4.9)
    readiness.refresh_soon()  # fresh: nothing to do
    await asyncio.sleep(0.01)
    assert part.calls == 1
    clock.advance(0.2)
    part.problem = "down"
    part.delay = 0.05
    readiness.refresh_soon()  # stale: checked again, without waiting for the check
    readiness.refresh_soon()  # and once, however many scrapes arrive meanwhile
    last = readiness.last
    assert last is not None
    assert last.ready
    await asyncio.sleep(0.1)
    assert part.calls == 2
    assert readiness.last is not None
    assert readiness.last.failing() == ["scraped: down"]
    readiness.stop()
    clock.advance(10)
    readiness.refresh_soon()  # shutting down: no more checks
    await asyncio.sleep(0.1)
    assert part.calls == 2


async def test_stop_answers_not_ready_at_once() -> None:
    part = Part()
    readiness = Readiness({"db": part})
    assert (await readiness.report()).ready
    readiness.stop()
    report = await readiness.report()
    assert not report.ready
    assert report.failing() == ["process: shutting down"]


async def test_database_part_against_a_real_store(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "audit.sqlite3")
    check = database_part(store)
    assert await check() == "sqlite answers"
    assert metrics.value("roombot_timebox_pending") == 0
    # A time-boxed change's revert waiting: counted at the next check.
    timer = new_request(
        "timer-1", kind="revert", dedupe_key="revert:k1", run_after=time.time() + 60
    )
    assert await store.record_request(timer)
    assert await check() == "sqlite answers"
    assert metrics.value("roombot_timebox_pending") == 1
    await store.close()
    with pytest.raises(NotReady, match="sqlite does not answer"):
        await check()


async def test_tencent_part_against_the_emulator() -> None:
    emulator = RoomEngineEmulator(sdkappid=APP, secret_key=KEY)
    base_url = await emulator.start()
    port = int(base_url.rsplit(":", 1)[1])
    client = RoomEngineClient(
        base_url=base_url,
        sdkappid=APP,
        secret_key=KEY,
        admin_id="administrator",
        rate_budget=RateBudget(200, burst=200),
        retry=RetryPolicy(max_attempts=1),
        timeout_s=1.0,
    )
    wrong_key = RoomEngineClient(
        base_url=base_url,
        sdkappid=APP,
        secret_key="not" + KEY[3:],
        admin_id="administrator",
        rate_budget=RateBudget(200, burst=200),
        retry=RetryPolicy(max_attempts=1),
    )
    try:
        assert await tencent_part(client)() == f"{base_url} answers"
        with pytest.raises(NotReady, match="refused roombot: error 700"):
            await tencent_part(wrong_key)()
        await emulator.stop()
        with pytest.raises(NotReady, match=f"^connection refused \\(http://127.0.0.1:{port}\\)$"):
            await tencent_part(client)()
    finally:
        await client.aclose()
        await wrong_key.aclose()
        await emulator.stop()


async def test_a_host_that_cannot_be_resolved_is_said_so() -> None:
    """Issue 27, item 10: a DNS failure showed as "unknown error -2"."""
    client = RoomEngineClient(
        base_url="http://roombot-no-such-host.invalid",
        sdkappid=APP,
        secret_key=KEY,
        admin_id="administrator",
        rate_budget=RateBudget(200, burst=200),
        retry=RetryPolicy(max_attempts=1),
        timeout_s=5.0,
    )
    try:
        with pytest.raises(NotReady) as info:
            await tencent_part(client)()
    finally:
        await client.aclose()
    assert str(info.value).startswith("could not resolve host roombot-no-such-host.invalid")
    assert "unknown error" not in str(info.value)
