"""Fixtures for in-process tests of the core (helpers live in `tests.bot.corekit`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from tests.bot.corekit import Core, open_core
from tests.bot.requestkit import emulator_client

#: Builds a core with `open_core`'s options; it is shut down when the test ends.
CoreFactory = Callable[..., Awaitable[Core]]


@pytest.fixture
async def make_core(tmp_path: Path) -> AsyncIterator[CoreFactory]:
    """A factory for cores with non-default options (policy, rooms, thresholds, store)."""
    async with AsyncExitStack() as stack:

        async def make(**options: Any) -> Core:
            return await stack.enter_async_context(open_core(tmp_path, **options))

        yield make


@pytest.fixture
async def core(make_core: CoreFactory) -> Core:
    """The service over the emulator (rooms `room-test`, `room-2`, `room-3`) and an in-memory
    audit store; ALICE is allow-listed, nobody else is granted anything."""
    return await make_core()


@pytest.fixture
async def client(emulator: RoomEngineEmulator) -> AsyncIterator[RoomEngineClient]:
    """A client of the requesting module's `emulator` fixture (`requestkit.emulator_client`)."""
    async with emulator_client(emulator) as made:
        yield made
