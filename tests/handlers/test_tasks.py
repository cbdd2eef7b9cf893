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


async def test_drain_also_waits_for_work_started_while_it_drains() -> None:
    """The server keeps taking requests while it drains (issue 27, item 7): their work is
    waited for too, within the same time limit."""
    tasks = BackgroundTasks()
    first, second = asyncio.Event(), asyncio.Event()
    done: list[str] = []

    async def job(name: str, release: asyncio.Event) -> None:
        await release.wait()
        done.append(name)

    tasks.spawn(job("first", first))
    draining = asyncio.create_task(tasks.drain(5))
    await asyncio.sleep(0)
    tasks.spawn(job("second", second))  # a request that arrived during the drain
    first.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert done == ["first"]
    assert not draining.done()
    second.set()
    assert await draining == 0
    assert done == ["first", "second"]


async def test_drain_gives_up_at_its_time_limit_whatever_keeps_arriving() -> None:
    tasks = BackgroundTasks()
    never = asyncio.Event()

    async def job() -> None:
        await never.wait()

    tasks.spawn(job())
    assert await tasks.drain(0.05) == 1
    tasks.cancel()
