"""The process-wide rate budget: a hard one-second window, smooth pacing, shared per process."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest

from bot.budget import RateBudget, process_budget
from testkit.clock import VirtualTime

API = "update_room_info"


def starts_of(budget: RateBudget, fake: VirtualTime, calls: int) -> list[float]:
    """Reserve `calls` consecutive starts at once, as `calls` concurrent callers would."""
    return [fake.now + budget.reserve(API) for _ in range(calls)]


def max_in_any_window(starts: list[float], window: float = 1.0) -> int:
    ordered = sorted(starts)
    best = 0
    j = 0
    for i, start in enumerate(ordered):
        while ordered[j] <= start - window:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize(("rate", "burst"), [(100, None), (50, 1), (50, 50), (7.5, 3), (200, None)])
def test_never_more_than_rate_starts_in_any_second(rate: float, burst: int | None) -> None:
    fake = VirtualTime()
    budget = RateBudget(rate, burst=burst, clock=fake.clock, sleep=fake.sleep)
    starts = starts_of(budget, fake, 1000)
    assert max_in_any_window(starts) <= int(rate)
    assert starts == sorted(starts)


def test_a_200_call_job_at_rate_100_takes_about_two_seconds() -> None:
    fake = VirtualTime()
    budget = RateBudget(100, clock=fake.clock, sleep=fake.sleep)
    starts = starts_of(budget, fake, 200)
    span = starts[-1] - starts[0]
    assert 1.0 <= span <= 2.1


def test_pacing_spreads_calls_instead_of_bunching_them() -> None:
    fake = VirtualTime()
    budget = RateBudget(100, burst=1, clock=fake.clock, sleep=fake.sleep)
    starts = starts_of(budget, fake, 50)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) == pytest.approx(0.01)


def test_burst_after_a_quiet_spell_is_immediate() -> None:
    fake = VirtualTime()
    budget = RateBudget(50, burst=5, clock=fake.clock, sleep=fake.sleep)
    assert [budget.reserve(API) for _ in range(5)] == [0.0] * 5
    assert budget.reserve(API) > 0
    fake.now += 10  # quiet: the burst is available again
    assert [budget.reserve(API) for _ in range(5)] == [0.0] * 5


def test_default_burst_is_a_tenth_of_the_rate() -> None:
    assert RateBudget(50).burst == 5
    assert RateBudget(5).burst == 1
    assert RateBudget(200).burst == 20


@pytest.mark.parametrize("rate", [0, -1, 201, float("nan")])
def test_rate_out_of_range_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        RateBudget(rate)


def test_burst_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        RateBudget(10, burst=11)
    with pytest.raises(ValueError, match="burst"):
        RateBudget(10, burst=0)


async def test_many_concurrent_tasks_keep_to_the_window() -> None:
    fake = VirtualTime()
    budget = RateBudget(20, burst=4, clock=fake.clock, sleep=fake.sleep)
    started: list[float] = []

    async def caller() -> None:
        await budget.acquire(API)
        started.append(fake.now)

    await fake.run(*(caller() for _ in range(120)))
    assert len(started) == 120
    assert max_in_any_window(started) <= 20
    # ... and the budget is used: 120 calls at 20/s need five full windows, not many more.
    assert 5.0 <= started[-1] - started[0] <= 6.0


async def test_a_call_counts_until_its_answer_so_slow_connections_cannot_crowd_a_second() -> None:
    # The first calls after a quiet spell wait for new connections: Tencent sees them late. The
    # calls booked a window after them must still not reach Tencent within the same second.
    fake = VirtualTime()
    budget = RateBudget(100, clock=fake.clock, sleep=fake.sleep)
    arrived: list[float] = []
    calls = itertools.count()

    async def call() -> None:
        connect = 0.05 if next(calls) < 20 else 0.0  # a new connection first, then it is sent
        async with budget.slot(API):
            await fake.sleep(connect)
            arrived.append(fake.now)
            await fake.sleep(0.002)  # the answer

    async with asyncio.timeout(10):
        await fake.run(*(call() for _ in range(300)))
    assert len(arrived) == 300
    assert max_in_any_window(arrived) <= 100
    # ... at little cost: 300 calls at 100/s still take about three seconds.
    assert arrived[-1] - arrived[0] <= 3.2


async def test_a_failed_call_gives_its_slot_back() -> None:
    fake = VirtualTime()
    budget = RateBudget(2, burst=2, clock=fake.clock, sleep=fake.sleep)

    async def failing() -> None:
        with pytest.raises(RuntimeError):
            async with budget.slot(API):
                raise RuntimeError("network down")

    await fake.run(failing(), failing())
    started: list[float] = []

    async def succeeding() -> None:
        async with budget.slot(API):
            started.append(fake.now)

    async with asyncio.timeout(5):  # a leaked slot would make these wait forever
        await fake.run(succeeding(), succeeding())
    assert len(started) == 2


@pytest.mark.slow  # the real clock
async def test_real_time_lower_bound() -> None:
    # N calls at rate r: the (r+1)-th cannot start within a second of the first.
    budget = RateBudget(40, burst=4)
    began = time.monotonic()
    await asyncio.gather(*(budget.acquire(API) for _ in range(60)))
    assert time.monotonic() - began >= 1.0


def test_threads_share_one_window() -> None:
    fake = VirtualTime()
    budget = RateBudget(30, burst=30, clock=fake.clock, sleep=fake.sleep)
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            start = fake.now + budget.reserve(API)
            with lock:
                starts.append(start)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts) == 100
    assert max_in_any_window(starts) <= 30


def test_process_budget_is_shared() -> None:
    assert process_budget(50) is process_budget(50)
    assert process_budget(50) is not process_budget(60)
    assert process_budget(60).rate == 60


async def test_late_wakers_do_not_start_together() -> None:
    """A busy event loop can wake many sleepers late at the same moment; the real starts must
    still keep to the window (the booked times alone would not)."""
    fake = VirtualTime()
    budget = RateBudget(10, burst=1, clock=fake.clock, sleep=fake.sleep)
    started: list[float] = []

    async def lagging_sleep(seconds: float) -> None:
        # The loop is busy from 1000.2 to 1001.0: everyone due in between wakes at 1001.0.
        target = fake.now + seconds
        if 1000.2 <= target < 1001.0:
            target = 1001.0
        await fake.sleep(target - fake.now)

    budget._sleep = lagging_sleep

    async def caller() -> None:
        async with budget.slot(API):
            started.append(fake.now)

    await fake.run(*(caller() for _ in range(40)))
    assert len(started) == 40
    assert max_in_any_window(started) <= 10


# -- one budget per API, and halving one -----------------------------------------------------------


async def test_member_reads_at_the_limit_do_not_delay_a_room_write() -> None:
    # Tencent's 200/s is per API: a flood of member reads fills their own window only.
    fake = VirtualTime()
    budget = RateBudget(20, clock=fake.clock, sleep=fake.sleep)
    reads = [fake.now + budget.reserve("get_room_member_list") for _ in range(100)]
    assert max_in_any_window(reads) <= 20
    assert reads[-1] - reads[0] >= 4.0  # five windows' worth of reads, queued
    assert budget.reserve("update_room_info") == 0.0  # the write goes at once

    started: dict[str, list[float]] = {"get_room_member_list": [], "update_room_info": []}

    async def call(api: str) -> None:
        async with budget.slot(api):
            started[api].append(fake.now)
            await fake.sleep(0.01)

    began = fake.now
    await fake.run(*(call("get_room_member_list") for _ in range(60)), call("update_room_info"))
    [write] = started["update_room_info"]
    assert write - began < 0.1
    assert max_in_any_window(started["get_room_member_list"]) <= 20


async def test_halving_an_api_gives_it_half_its_calls_for_a_minute_and_no_other() -> None:
    fake = VirtualTime()
    budget = RateBudget(20, burst=2, clock=fake.clock, sleep=fake.sleep)
    assert budget.limit(API) == 20

    halving = await budget.halve(API)
    assert (halving.api, halving.started, halving.limit) == (API, True, 10)
    assert halving.until_s == pytest.approx(60.0)
    assert budget.limit(API) == 10
    assert budget.limit("get_room_info") == 20

    halved = [fake.now + budget.reserve(API) for _ in range(100)]
    assert max_in_any_window(halved) <= 10
    assert halved[-1] - halved[0] >= 9.0  # 100 calls at 10/s, not at 20/s
    other = [fake.now + budget.reserve("get_room_info") for _ in range(100)]
    assert max_in_any_window(other) == 20

    # Another warning half a minute later extends the halving; it does not compound it.
    fake.now += 30
    again = await budget.halve(API)
    assert (again.started, again.limit) == (False, 10)
    assert again.until_s == pytest.approx(60.0)
    fake.now += 59
    assert budget.limit(API) == 10
    fake.now += 2  # a minute after the last warning, the full budget is back
    assert budget.limit(API) == 20
    full = [fake.now + budget.reserve(API) for _ in range(100)]
    assert max_in_any_window(full) == 20


def test_a_rate_of_one_is_not_halved_below_one() -> None:
    fake = VirtualTime()
    budget = RateBudget(1, clock=fake.clock, sleep=fake.sleep)
    asyncio.run(budget.halve(API))
    assert budget.limit(API) == 1
