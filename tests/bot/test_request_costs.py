"""What one write costs the store (DESIGN §2.10): a one-room write is four transactions, the
shared rate budget's work included: claim, begin (with the values read before), complete,
finish (reported). Counted by the store itself on both backends, and on PostgreSQL by the
database (`pg_stat_database`), which sees every transaction whoever makes it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from bot import metrics
from bot.audit import AuditStore, open_store
from bot.commands import parse_command
from bot.outcomes import Actor, Plan, Source
from bot.policy import known_verbs, load_policy
from bot.service import RoomService
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator

SDKAPPID = 1400000042
SECRET_KEY = "cost0test0secret0key" + "0" * 44
ALICE = "U0ALICE01"
LIFE = ("claim_request", "begin_request", "complete_request", "finish_request")


def _counts() -> dict[str, float]:
    return {
        op: metrics.value("roombot_store_transactions_total", operation=op)
        for op in metrics.STORE_OPERATIONS
    }


def _plan(text: str) -> Plan:
    command = parse_command(text)
    actor = Actor(user_id=ALICE, source=Source.SLASH, team_id="T1", channel_id="C1")
    return Plan(command=command, actor=actor, calls=tuple(command.calls(ALICE)), raw_text=text)


class _Bot:
    """A service over `store`, the emulator, and the store's rate budget (as `serve` wires it)."""

    def __init__(self, store: AuditStore, emulator: RoomEngineEmulator, base_url: str) -> None:
        self.store = store
        self.emulator = emulator
        self.client = RoomEngineClient(
            base_url=base_url,
            sdkappid=SDKAPPID,
            secret_key=SECRET_KEY,
            admin_id="administrator",
            rate_budget=store.rate_budget(50),
        )
        self.service = RoomService(
            client=self.client,
            policy=load_policy(allowed_users=[ALICE], policy_file=None, known_verbs=known_verbs()),
            audit=store,
        )


@pytest.fixture
async def bot(target: str | Path) -> AsyncIterator[_Bot]:
    emulator = RoomEngineEmulator(
        sdkappid=SDKAPPID, secret_key=SECRET_KEY, admin_id="administrator", rooms=["room-test"]
    )
    base_url = await emulator.start()
    store = await open_store(target)
    made = _Bot(store, emulator, base_url)
    try:
        yield made
    finally:
        await made.client.aclose()
        await store.close()
        await emulator.stop()


async def test_a_one_room_write_is_four_store_transactions(bot: _Bot) -> None:
    await bot.service.run(_plan("unmute-all room-test"))  # a first one opens the connections
    await asyncio.sleep(0.3)  # and its call ends ride along or are written by now
    before = _counts()
    run = await bot.service.run(_plan("mute-all room-test"))
    assert run.succeeded
    assert bot.emulator.rooms["room-test"]["IsAudioDisabled"] is True
    spent = {op: n - before[op] for op, n in _counts().items() if n != before[op]}
    # The life, once each, and nothing else: no lease renewal (it ended within a third of the
    # lease), no transaction of the rate budget's own (its slots came with the claim, the call
    # ends rode along with begin and complete), no read.
    assert spent == dict.fromkeys(LIFE, 1.0)


@pytest.mark.slow
@pytest.mark.postgres
async def test_postgresql_sees_four_transactions_per_write(pg_database: str) -> None:
    """The database's own count over 20 writes, one at a time (as the issue counted the 11)."""
    emulator = RoomEngineEmulator(
        sdkappid=SDKAPPID, secret_key=SECRET_KEY, admin_id="administrator", rooms=["room-test"]
    )
    base_url = await emulator.start()
    store = await open_store(pg_database)
    bot = _Bot(store, emulator, base_url)
    try:
        await bot.service.run(_plan("unmute-all room-test"))
        before = await _xact_commits(pg_database)
        writes = 20
        for i in range(writes):
            verb = "mute-all" if i % 2 == 0 else "unmute-all"
            assert (await bot.service.run(_plan(f"{verb} room-test"))).succeeded
        after = await _xact_commits(pg_database)
    finally:
        await bot.client.aclose()
        await store.close()
        await emulator.stop()
    # The last call's end may be written on its own (nothing rode after it).
    per_write = (after - before - 1) / writes
    assert per_write <= 4.0, per_write


async def _xact_commits(url: str) -> int:
    """The database's committed transactions so far, once the counters have settled
    (backends report theirs at most once a second). Read from another database of the same
    server, so reading counts nothing here."""
    name = urlsplit(url).path.lstrip("/")
    elsewhere = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    last = -1
    settled_at = time.monotonic()
    while True:
        async with await psycopg.AsyncConnection.connect(elsewhere, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)
            )
            row = await cur.fetchone()
        assert row is not None
        now = int(row[0])
        if now != last:
            last, settled_at = now, time.monotonic()
        elif time.monotonic() - settled_at > 2.5:
            return now
        await asyncio.sleep(0.5)
