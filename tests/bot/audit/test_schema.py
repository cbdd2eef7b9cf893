"""The audit schema: databases at older versions are migrated, step by step and atomically; a
database newer than the code is refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bot.audit import AuditError, NewRequest, Outcome, RequestState, open_store
from bot.audit.schema import MIGRATIONS, SCHEMA_VERSION
from bot.audit.sqlite_dialect import migrate, user_version
from tests.bot.audit.legacy import V3_CONTEXT, V3_ROWS

# The schema as version 1 shipped it, copied here on purpose: if someone edits MIGRATIONS[0]
# after release, databases in the field still look like this and must still migrate.
_V1_SCHEMA = """
CREATE TABLE audit_entries (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    request_key        TEXT    NOT NULL,
    created_at         REAL    NOT NULL,
    finished_at        REAL,
    team_id            TEXT,
    channel_id         TEXT,
    user_id            TEXT    NOT NULL,
    source             TEXT    NOT NULL,
    verb               TEXT,
    raw_text           TEXT    NOT NULL,
    reason             TEXT,
    room_id            TEXT,
    patch              TEXT,
    previous           TEXT,
    outcome            TEXT    NOT NULL,
    detail             TEXT,
    undo_of            INTEGER REFERENCES audit_entries (id),
    error_code         INTEGER,
    error_info         TEXT,
    tencent_request_id TEXT,
    latency_ms         REAL
);
CREATE INDEX audit_entries_room_time ON audit_entries (room_id, created_at);
CREATE INDEX audit_entries_user_time ON audit_entries (user_id, created_at);
CREATE INDEX audit_entries_time ON audit_entries (created_at);
CREATE INDEX audit_entries_request ON audit_entries (request_key);
PRAGMA user_version = 1;
"""


def _v1_database(path: Path, *, extra_sql: str = "") -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(_V1_SCHEMA + extra_sql)
        conn.execute(
            "INSERT INTO audit_entries (request_key, created_at, finished_at, user_id, source, "
            "verb, raw_text, room_id, patch, outcome, tencent_request_id, latency_ms) "
            "VALUES ('old', 1000.0, 1000.5, 'U1', 'slash', 'mute-all', '/room mute-all r1', "
            "'r1', '{\"IsAudioDisabled\":true}', 'ok', 'Id-1', 500.0)"
        )
        conn.execute(
            "INSERT INTO audit_entries (request_key, created_at, user_id, source, raw_text, "
            "outcome) VALUES ('old-pending', 1001.0, 'U1', 'slash', '/room lock r2', 'pending')"
        )
    conn.close()


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    conn.close()
    return {name for (name,) in rows}


def _version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        found = user_version(conn)
    conn.close()
    return found


async def test_a_new_file_gets_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    async with await open_store(path):
        pass
    assert _version(path) == SCHEMA_VERSION == len(MIGRATIONS)
    assert {"audit_entries", "claims", "confirmations"} <= _tables(path)


async def test_a_version_1_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    _v1_database(path)
    assert "claims" not in _tables(path)

    async with await open_store(path) as store:
        [old] = await store.rows_for_request("old")
        assert old.outcome is Outcome.OK
        assert old.patch == {"IsAudioDisabled": True}
        assert (old.tencent_request_id, old.latency_ms) == ("Id-1", 500.0)
        # The row a stopped version left pending is a request on record, with an expired
        # lease and no owner: the first replica to look reports it.
        [was_pending] = await store.rows_for_request("old-pending")
        assert was_pending.outcome is Outcome.PENDING
        [taken] = await store.take_over()
        assert taken.request_key == "old-pending"
        assert taken.previous_owner is None
        assert [r.id for r in taken.unsettled_rows] == [was_pending.id]
        # What version 2 added works.
        assert await store.claim("Ev1") is True
        key = await store.create_confirmation(
            user_id="U1", team_id=None, channel_id=None, text="lockdown r1"
        )
        assert key

    assert _version(path) == SCHEMA_VERSION
    with sqlite3.connect(path) as conn:
        indexes = {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
    conn.close()
    assert {
        "audit_entries_room_time",
        "audit_entries_user_time",
        "audit_entries_time",
        "audit_entries_request",
        "audit_entries_pending",
    } <= indexes


async def test_opening_again_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    async with await open_store(path):
        pass
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn) == 0
    finally:
        conn.close()


def test_migrate_goes_step_by_step(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "audit.sqlite3", isolation_level=None)
    try:
        assert migrate(conn, target=1) == 1
        assert user_version(conn) == 1
        assert migrate(conn) == SCHEMA_VERSION - 1
        assert user_version(conn) == SCHEMA_VERSION
    finally:
        conn.close()


async def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    # A stray `claims` table makes step 2 fail half-way: none of step 2 may remain.
    path = tmp_path / "audit.sqlite3"
    _v1_database(path, extra_sql="CREATE TABLE claims (anything TEXT);")
    with pytest.raises(AuditError, match="claims"):
        await open_store(path)
    assert _version(path) == 1
    assert "confirmations" not in _tables(path)


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    async with await open_store(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(AuditError, match="newer"):
        await open_store(path)
    with pytest.raises(AuditError, match="schema version"):
        await open_store(path, read_only=True)


async def test_read_only_open_refuses_an_old_or_foreign_database(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite3"
    _v1_database(old)
    with pytest.raises(AuditError, match="start the bot once"):
        await open_store(old, read_only=True)
    assert _version(old) == 1  # reading did not migrate it

    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(AuditError, match="not a roombot audit database"):
        await open_store(foreign, read_only=True)


_ROW = (
    "INSERT INTO audit_entries (request_key, created_at, user_id, source, raw_text, outcome) "
    "VALUES ('kept', 1000.0, 'U1', 'slash', '/room mute-all r1', 'ok')"
)


@pytest.mark.parametrize("start", range(SCHEMA_VERSION + 1))
async def test_every_earlier_version_reaches_the_current_one(tmp_path: Path, start: int) -> None:
    path = tmp_path / "audit.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn, target=start) == start
        if start >= 1:
            conn.execute(_ROW)
    finally:
        conn.close()
    async with await open_store(path) as store:
        if start >= 1:
            [kept] = await store.rows_for_request("kept")
            assert kept.outcome is Outcome.OK
        assert await store.claim("Ev1") is True
        lease = await store.claim_request(new_request("req-1", {"adapter": "slack"}))
        assert lease is not None
        assert (await store.get_request("req-1")) is not None
    assert _version(path) == SCHEMA_VERSION
    assert {"audit_entries", "claims", "confirmations", "requests"} <= _tables(path)
    assert "leases" not in _tables(path)


def new_request(key: str, reply: dict[str, object]) -> NewRequest:
    return NewRequest(
        request_key=key,
        kind="request",
        source="slash",
        user_id="U1",
        verb="mute-all",
        raw_text="mute-all r1",
        plan={},
        reply=dict(reply),
    )


async def test_version_3_leases_become_requests_in_flight(tmp_path: Path) -> None:
    # A database left by the version before request records: a request in flight (a lease, a
    # pending row), one without a lease (an older version's), and a finished one.
    path = tmp_path / "audit.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, target=3)
        conn.executescript(V3_ROWS)
    finally:
        conn.close()
    async with await open_store(path, owner="survivor") as store:
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
        assert set(taken) == {"leased", "orphan"}  # both leases have run out
        assert taken["leased"].lease.fence == 3
        assert taken["leased"].previous_owner == "host-a:12:deadbeef"
        assert taken["leased"].record.reply["parent_ts"] == "1.2"
        assert taken["orphan"].previous_owner is None
