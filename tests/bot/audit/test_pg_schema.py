"""The PostgreSQL schema: the same steps as SQLite's, applied at start-up under a lock (replicas
starting together apply each step once), from an empty database or any earlier version; a
failing step leaves nothing, a newer schema is refused."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from bot.audit import AuditError, NewEntry, NewRequest, Outcome, RequestState, open_store
from bot.audit.postgres_dialect import migrate, schema_version
from bot.audit.schema import SCHEMA_VERSION
from tests.bot.audit.legacy import V3_CONTEXT, V3_ROWS

pytestmark = pytest.mark.postgres

_ROW = (
    "INSERT INTO audit_entries (request_key, created_at, user_id, source, raw_text, outcome) "
    "VALUES ('kept', 1000.0, 'U1', 'slash', '/room mute-all r1', 'ok')"
)


async def _version(url: str) -> int | None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await schema_version(conn)


async def _tables(url: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {name for (name,) in await cur.fetchall()}


async def test_an_empty_database_gets_the_current_schema(pg_url: str) -> None:
    assert await _version(pg_url) is None
    async with await open_store(pg_url) as store:
        assert store.backend == "postgresql"
    assert await _version(pg_url) == SCHEMA_VERSION
    assert {
        "audit_entries",
        "claims",
        "confirmations",
        "requests",
        "rate_budgets",
        "rate_slots",
        "roombot_schema",
    } <= await _tables(pg_url)


@pytest.mark.parametrize("start", range(SCHEMA_VERSION + 1))
async def test_every_earlier_version_reaches_the_current_one(pg_url: str, start: int) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        assert await migrate(conn, target=start) == start
        assert await schema_version(conn) == start
        if start >= 1:
            await conn.execute(_ROW)
    async with await open_store(pg_url) as store:
        if start >= 1:
            [kept] = await store.rows_for_request("kept")
            assert kept.outcome is Outcome.OK
        assert await store.claim("Ev1") is True
        lease = await store.claim_request(_request("req-1"))
        assert lease is not None
        assert lease.owner == store.owner
        await store.rate_budget(50).acquire("get_room_info")
    assert await _version(pg_url) == SCHEMA_VERSION
    assert "leases" not in await _tables(pg_url)


def _request(key: str) -> NewRequest:
    return NewRequest(
        request_key=key,
        kind="request",
        source="slash",
        user_id="U1",
        verb="mute-all",
        raw_text="mute-all r1",
        plan={},
        reply={"adapter": "slack", "thread": "1.2"},
    )


async def test_version_3_leases_become_requests_in_flight(pg_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await migrate(conn, target=3)
        for statement in V3_ROWS.split(";"):
            if statement.strip():
                await conn.execute(statement)
    async with await open_store(pg_url, owner="survivor") as store:
        leased = await store.get_request("leased")
        assert leased is not None
        assert leased.state is RequestState.RUNNING
        assert leased.kind == "undo"
        assert leased.owner == "host-a:12:deadbeef"
        assert leased.lease_until == 2000.0
        assert (leased.fence, leased.takeovers) == (2, 1)
        assert leased.adapter == "slack"
        assert leased.reply == json.loads(V3_CONTEXT)
        assert (leased.user_id, leased.verb, leased.channel_id) == ("U1", "mute-all", "C1")
        orphan = await store.get_request("orphan")
        assert orphan is not None
        assert (orphan.owner, orphan.lease_until, orphan.adapter) == ("", 0.0, "unknown")
        assert await store.get_request("finished") is None
        taken = {t.request_key: t for t in await store.take_over()}
        assert set(taken) == {"leased", "orphan"}
        assert taken["leased"].lease.fence == 3
        assert taken["orphan"].previous_owner is None


async def test_opening_again_applies_nothing(pg_url: str) -> None:
    async with await open_store(pg_url):
        pass
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        assert await migrate(conn) == 0


async def test_replicas_starting_together_apply_each_step_once(pg_database: str) -> None:
    # Eight replicas migrate one new database at the same moment (connections made first, so
    # the steps really overlap): between them each step is applied exactly once (a second run
    # would also fail on "already exists").
    conns = [await psycopg.AsyncConnection.connect(pg_database, autocommit=True) for _ in range(8)]
    try:
        applied = await asyncio.gather(*(migrate(conn) for conn in conns))
    finally:
        for conn in conns:
            await conn.close()
    assert sum(applied) == SCHEMA_VERSION
    assert await _version(pg_database) == SCHEMA_VERSION


async def test_stores_opening_a_new_database_together_all_work(pg_database: str) -> None:
    stores = await asyncio.gather(*(open_store(pg_database) for _ in range(6)))
    try:
        assert await _version(pg_database) == SCHEMA_VERSION
        ids = await asyncio.gather(*(s.record([_entry(i)]) for i, s in enumerate(stores)))
        assert sorted(i for [i] in ids) == list(range(1, 7))
    finally:
        for store in stores:
            await store.close()


def _entry(i: int) -> NewEntry:
    return NewEntry(
        request_key=f"r{i}",
        source="slash",
        user_id="U1",
        verb="mute-all",
        raw_text="x",
        outcome=Outcome.DENIED,
    )


async def test_a_failing_step_changes_nothing(pg_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await migrate(conn, target=1)
        await conn.execute("CREATE TABLE claims (anything TEXT)")  # step 2 will collide
    with pytest.raises(AuditError, match="claims"):
        await open_store(pg_url)
    assert await _version(pg_url) == 1
    assert "confirmations" not in await _tables(pg_url)


async def test_a_newer_database_is_refused(pg_url: str) -> None:
    async with await open_store(pg_url):
        pass
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("UPDATE roombot_schema SET version = version + 1")
    with pytest.raises(AuditError, match="newer"):
        await open_store(pg_url)
    with pytest.raises(AuditError, match="schema version"):
        await open_store(pg_url, read_only=True)


async def test_read_only_open_refuses_an_old_or_empty_database(pg_url: str) -> None:
    with pytest.raises(AuditError, match="not a roombot audit database"):
        await open_store(pg_url, read_only=True)
    assert await _version(pg_url) is None  # reading created nothing
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await migrate(conn, target=1)
    with pytest.raises(AuditError, match="start the bot once"):
        await open_store(pg_url, read_only=True)
    assert await _version(pg_url) == 1  # reading did not migrate it
