"""Helpers for tests of request records and their life (DESIGN §2.10), on both store backends.

`Replicas` opens stores on one database as separate replicas sharing one fake clock, and moves
lease time forward for all of them (`advance`): on SQLite the store's clock is the database's,
so moving the fake clock is enough; on PostgreSQL leases run on the server's clock, so every
lease is moved back by the same amount instead. Either way a lease that `advance` carries past
its end has expired for every replica, and one it does not is still alive.

`RecordingDelivery` is a `Delivery` that keeps what it was asked to show, for the life and the
loop to be observed without an adapter.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bot.audit import AuditStore, NewEntry, NewRequest, open_store
from bot.audit.factory import open_dialect
from bot.audit.sql import Body, Query
from bot.budget import RateBudget
from bot.outcomes import Plan, Progress, RunResult
from bot.requests.takeover import TakeoverReport
from bot.tencent.client import RetryPolicy, RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from testkit.clock import FakeClock

S = TypeVar("S", bound=AuditStore)

#: A lease's life in these tests (seconds of fake time).
LEASE_S = 30.0
#: The emulator's app and key in the request-life tests (`emulator_client`).
APP = 1400000000
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
SLACK = {"adapter": "slack", "channel": "C1", "user": "U111", "parent_ts": None}
MUTE = {"IsAudioDisabled": True}


def new_request(
    key: str = "req-1", *, reply: Mapping[str, Any] = SLACK, **overrides: Any
) -> NewRequest:
    """A request as an adapter first records it (a mute of room-1 from Slack by default)."""
    values: dict[str, Any] = {
        "request_key": key,
        "kind": "request",
        "source": "slash",
        "user_id": "U111",
        "verb": "mute-all",
        "raw_text": "mute-all room-1",
        "plan": {},
        "reply": dict(reply),
        "team_id": "T1",
        "channel_id": "C1",
        "reason": "incident 42",
    }
    values.update(overrides)
    return NewRequest(**values)


def entry(room: str, key: str = "req-1", **overrides: Any) -> NewEntry:
    """One pending row of request `key` for `room`."""
    values: dict[str, Any] = {
        "request_key": key,
        "source": "slash",
        "user_id": "U111",
        "verb": "mute-all",
        "raw_text": f"mute-all {room}",
        "room_id": room,
        "channel_id": "C1",
        "patch": MUTE,
    }
    values.update(overrides)
    return NewEntry(**values)


def predecessor(suffix: str = "0000dead") -> str:
    """The owner name of this process's predecessor: this host and pid, another random part (a
    restarted container keeps its pid). `certainly_stopped` says it is not running."""
    return f"{socket.gethostname()}:{os.getpid()}:{suffix}"


def _age(seconds: float) -> Body[None]:
    yield Query(
        "UPDATE requests SET lease_until = lease_until - %(s)s WHERE lease_until IS NOT NULL",
        {"s": seconds},
    )


class Replicas:
    """Stores on one database, each a replica with its own owner name, on one fake clock
    (`clock` for row times, and each store's monotonic clock for lease deadlines)."""

    def __init__(self, target: str | Path, clock: FakeClock, *, lease_s: float = LEASE_S) -> None:
        self.target = target
        self.clock = clock
        self.lease_s = lease_s
        self._stores: list[AuditStore] = []

    async def open(self, owner: str, *, lease_s: float | None = None) -> AuditStore:
        """A replica named `owner`, closed when the test ends."""
        return await self.open_as(AuditStore, owner, lease_s=lease_s)

    async def open_as(self, store_class: type[S], owner: str, *, lease_s: float | None = None) -> S:
        """A replica named `owner` whose store is a `store_class` (one that may fault chosen
        operations), closed when the test ends."""
        options: dict[str, Any] = {
            "owner": owner,
            "clock": self.clock,
            "monotonic": self.clock,
            "lease_s": lease_s or self.lease_s,
        }
        if store_class is AuditStore:
            store = await open_store(self.target, **options)
        else:
            dialect = await open_dialect(self.target, clock=self.clock)
            store = store_class(dialect, **options)
        assert isinstance(store, store_class)
        self._stores.append(store)
        return store

    async def advance(self, seconds: float) -> None:
        """Let `seconds` pass for every replica and every lease (see the module docstring)."""
        self.clock.advance(seconds)
        for store in self._stores:
            if store.backend == "postgresql":
                await store.dialect.write("age leases", lambda: _age(seconds))
                return

    async def close(self) -> None:
        for store in self._stores:
            await store.close()


@asynccontextmanager
async def replicas(
    target: str | Path, clock: FakeClock, *, lease_s: float = LEASE_S
) -> AsyncIterator[Replicas]:
    """`Replicas` on `target`, every store closed at the end."""
    opened = Replicas(target, clock, lease_s=lease_s)
    try:
        yield opened
    finally:
        await opened.close()


@dataclass
class RecordingDelivery:
    """A `Delivery` that records each call (`events`); `fail_takeovers` takeover deliveries
    raise first, as a Slack outage makes them."""

    reply: dict[str, Any] = field(default_factory=lambda: {"adapter": "test"})
    progress_interval: float = 0.0
    guard: Callable[[], None] | None = None
    fail_takeovers: int = 0
    events: list[tuple[str, Any]] = field(default_factory=list)

    def address(self) -> dict[str, Any]:
        return dict(self.reply)

    async def pause(self) -> None:
        self.events.append(("pause", None))

    async def start(self, plan: Plan) -> None:
        self.events.append(("start", plan.request_key))

    async def progress(self, plan: Plan, progress: Progress) -> None:
        self.events.append(("progress", progress))

    async def finish(self, run: RunResult) -> None:
        self.events.append(("finish", run))

    async def takeover(self, report: TakeoverReport) -> None:
        self.events.append(("takeover", report))
        if self.fail_takeovers:
            self.fail_takeovers -= 1
            raise RuntimeError("Slack is down")

    async def unexpected(self, correlation_id: str) -> None:
        self.events.append(("unexpected", correlation_id))

    def kinds(self) -> list[str]:
        """The calls made, in order, without the pauses."""
        return [kind for kind, _ in self.events if kind != "pause"]

    def of(self, kind: str) -> list[Any]:
        """What each call of `kind` was given."""
        return [value for k, value in self.events if k == kind]


@asynccontextmanager
async def emulator_client(emulator: RoomEngineEmulator) -> AsyncIterator[RoomEngineClient]:
    """A client of `emulator` (made with `APP` and `KEY`): no retries, a budget that never
    paces these tests."""
    async with RoomEngineClient(
        base_url=emulator.base_url,
        sdkappid=APP,
        secret_key=KEY,
        admin_id="administrator",
        rate_budget=RateBudget(200),
        retry=RetryPolicy(max_attempts=1),
    ) as client:
        yield client
