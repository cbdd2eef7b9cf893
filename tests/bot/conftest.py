"""Fixtures for in-process tests of the core (helpers live in `tests.bot.corekit`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from testkit.clock import FakeClock
from tests.bot.corekit import Core, open_core
from tests.bot.requestkit import APP, KEY, Replicas, emulator_client, replicas

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
async def emulator() -> AsyncIterator[RoomEngineEmulator]:
    """The emulator with rooms `room-1` and `room-2` (a module needing others defines its own)."""
    emu = RoomEngineEmulator(sdkappid=APP, secret_key=KEY, rooms=["room-1", "room-2"])
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
def clock() -> FakeClock:
    """The store's clock for request-life tests, at a fixed moment tests move on by hand."""
    return FakeClock(1_700_000_000.0)


@pytest.fixture
async def cluster(target: str | Path, clock: FakeClock) -> AsyncIterator[Replicas]:
    """Replicas on one store (`target`: SQLite or PostgreSQL), sharing `clock`."""
    async with replicas(target, clock) as opened:
        yield opened


@pytest.fixture
async def client(emulator: RoomEngineEmulator) -> AsyncIterator[RoomEngineClient]:
    """A client of the requesting module's `emulator` fixture (`requestkit.emulator_client`)."""
    async with emulator_client(emulator) as made:
        yield made
