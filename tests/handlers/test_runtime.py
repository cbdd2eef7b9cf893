"""Per-process Slack helpers: event de-duplication, the progress-edit budget, the ack gate."""

from __future__ import annotations

import asyncio
import time

from handlers.runtime import ADMISSION_KEY, AckGate, Admission, RecentIds
from handlers.tasks import BackgroundTasks
from handlers.update_budget import UpdateBudget
from testkit.clock import FakeClock


def test_recent_ids_see_a_repeat_once_and_forget_after_the_ttl() -> None:
    clock = FakeClock(0.0)
    ids = RecentIds(ttl_s=60, clock=clock)
    assert ids.first_time("Ev1") is True
    assert ids.first_time("Ev1") is False
    clock.now = 61
    assert ids.first_time("Ev1") is True


def test_recent_ids_stay_bounded() -> None:
    ids = RecentIds(ttl_s=600, max_size=100, clock=FakeClock(0.0))
    for i in range(1000):
        ids.first_time(f"Ev{i}")
    assert len(ids._seen) <= 100


def test_update_budget_refills_at_its_rate() -> None:
    clock = FakeClock(0.0)
    budget = UpdateBudget(per_minute=2, clock=clock)
    assert budget.try_take() is True
    assert budget.try_take() is True
    assert budget.try_take() is False
    clock.now = 30  # half a minute: one more edit
    assert budget.try_take() is True
    assert budget.try_take() is False


async def test_ack_gate_lets_work_through_when_nothing_is_being_acked() -> None:
    gate = AckGate(max_wait_s=5)
    started = time.monotonic()
    await gate.wait_idle()
    assert time.monotonic() - started < 1


async def test_ack_gate_holds_background_work_until_the_ack_is_out() -> None:
    gate = AckGate(max_wait_s=5)
    release = asyncio.Event()
    order: list[str] = []

    async def request() -> str:
        await release.wait()
        order.append("acked")
        return "response"

    acking = asyncio.create_task(gate.track({}, request))
    await asyncio.sleep(0)
    assert gate.acking == 1

    async def background() -> None:
        await gate.wait_idle()
        order.append("background")

    waiting = asyncio.create_task(background())
    await asyncio.sleep(0.05)
    assert order == []
    release.set()
    assert await acking == "response"
    await waiting
    assert order == ["acked", "background"]
    assert gate.acking == 0


async def test_ack_gate_never_starves_background_work() -> None:
    gate = AckGate(max_wait_s=0.05)
    never = asyncio.Event()
    acking = asyncio.create_task(gate.track({}, never.wait))
    await asyncio.sleep(0)
    started = time.monotonic()
    await gate.wait_idle()  # gives up waiting after max_wait_s
    assert time.monotonic() - started < 2
    acking.cancel()


async def test_background_tasks_drain_and_cancel() -> None:
    tasks = BackgroundTasks()
    done = asyncio.Event()

    async def quick() -> None:
        done.set()

    async def stuck() -> None:
        await asyncio.Event().wait()

    tasks.spawn(quick())
    tasks.spawn(stuck())
    assert await tasks.drain(0.1) == 1
    assert done.is_set()
    assert tasks.cancel() == 1
    for _ in range(100):
        if tasks.pending == 0:
            break
        await asyncio.sleep(0.01)
    assert tasks.pending == 0


async def test_ack_gate_is_not_opened_by_a_momentary_gap_between_two_requests() -> None:
    gate = AckGate(max_wait_s=5, quiet_s=0.05)
    first = gate.admit()
    waiting = asyncio.create_task(gate.wait_idle())
    await asyncio.sleep(0)
    first.done()
    second = gate.admit()  # the next request of the burst, within quiet_s
    await asyncio.sleep(0.15)
    assert not waiting.done()
    second.done()
    started = time.monotonic()
    await asyncio.wait_for(waiting, 2)
    assert time.monotonic() - started >= 0.04  # went once the door had been quiet for quiet_s
    assert gate.acking == 0


async def test_ack_gate_releases_every_waiter_at_once_and_forgets_the_ones_that_gave_up() -> None:
    gate = AckGate(max_wait_s=0.05, quiet_s=0)
    admission = gate.admit()
    await gate.wait_idle()  # gave up after max_wait_s
    assert gate.waiting == 0
    gate.max_wait_s = 5
    waiters = [asyncio.create_task(gate.wait_idle()) for _ in range(3)]
    await asyncio.sleep(0)
    assert gate.waiting == 3
    started = time.monotonic()
    admission.done()
    await asyncio.wait_for(asyncio.gather(*waiters), 2)
    assert time.monotonic() - started < 1  # released, not timed out
    assert gate.waiting == 0


async def test_background_jobs_start_only_once_no_request_awaits_its_ack() -> None:
    gate = AckGate(max_wait_s=5, quiet_s=0)
    tasks = BackgroundTasks(before_start=gate.wait_idle)
    ran = asyncio.Event()

    async def job() -> None:
        ran.set()

    admission = gate.admit()
    tasks.spawn(job())
    await asyncio.sleep(0.1)
    assert not ran.is_set()
    admission.done()
    await asyncio.wait_for(ran.wait(), 2)
    assert await tasks.drain(2) == 0


async def test_an_admission_ends_once_however_often_it_is_done() -> None:
    gate = AckGate(max_wait_s=5, quiet_s=0)
    first, second = gate.admit(), gate.admit()
    first.done()
    first.done()  # the listener said so, then the door: counted once
    assert gate.acking == 1
    second.done()
    assert gate.acking == 0


async def test_track_keeps_the_admission_in_the_context_for_the_listener() -> None:
    gate = AckGate(max_wait_s=5, quiet_s=0)
    context: dict[str, object] = {}
    seen: list[int] = []

    async def listener() -> None:
        admission = context[ADMISSION_KEY]
        assert isinstance(admission, Admission)
        admission.done()  # acked: what follows in the listener holds nothing up
        seen.append(gate.acking)

    await gate.track(context, listener)
    assert seen == [0]
    assert gate.acking == 0
