"""`bot.aio.gather_all`: gather, with a lone coroutine awaited in the caller's task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.aio import gather_all


async def test_a_lone_coroutine_runs_in_the_callers_task_and_several_side_by_side() -> None:
    async def where(value: int) -> tuple[int, asyncio.Task[Any] | None]:
        await asyncio.sleep(0)
        return value, asyncio.current_task()

    me = asyncio.current_task()
    assert await gather_all(where(1)) == [(1, me)]
    both = await gather_all(where(1), where(2))
    assert [value for value, _ in both] == [1, 2]
    assert all(task is not me for _, task in both)
    assert await gather_all() == []


async def test_the_first_failure_is_raised_as_gather_raises_it() -> None:
    async def fail(message: str) -> None:
        raise ValueError(message)

    with pytest.raises(ValueError, match="alone"):
        await gather_all(fail("alone"))
    with pytest.raises(ValueError, match="first"):
        await gather_all(fail("first"), asyncio.sleep(0.01))
