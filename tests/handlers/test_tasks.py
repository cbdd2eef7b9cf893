"""Background jobs after the ack: bounded, all finished eventually, drained at shutdown."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from handlers.tasks import BackgroundTasks


async def test_at_most_max_running_jobs_run_and_the_rest_wait_their_turn() -> None:
    tasks = BackgroundTasks(max_running=2)
    release = asyncio.Event()
    running = 0
    most = 0
    finished = 0

    async def job() -> None:
        nonlocal running, most, finished
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        finished += 1

    for _ in range(5):
        tasks.spawn(job())
    await asyncio.sleep(0.01)
    assert running == 2
    assert tasks.pending == 5
    release.set()
    assert await tasks.drain(5) == 0
    assert (most, finished, tasks.pending) == (2, 5, 0)


@pytest.mark.parametrize("wait_before_cancel", [True, False])
async def test_a_job_cancelled_before_its_turn_is_closed_not_left_unawaited(
    wait_before_cancel: bool,
) -> None:
    tasks = BackgroundTasks(max_running=1)
    blocker = asyncio.Event()
    ran: list[str] = []

    async def job(name: str) -> None:
        ran.append(name)
        await blocker.wait()

    tasks.spawn(job("first"))
    never_run = job("queued")
    queued = tasks.spawn(never_run)
    if wait_before_cancel:
        await asyncio.sleep(0.01)  # queued now waits for a place
    queued.cancel()
    await asyncio.gather(queued, return_exceptions=True)
    # Closed, not merely never started (which Python reports as "never awaited").
    assert inspect.getcoroutinestate(never_run) == inspect.CORO_CLOSED
    blocker.set()
    assert await tasks.drain(5) == 0
    assert ran == ["first"]
