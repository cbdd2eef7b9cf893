"""`check_database`: is the audit database reachable, migrated and writable, for either backend,
without changing it, and without ever showing the password."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from bot.audit import open_store
from bot.audit.health import Health, check_database
from bot.audit.postgres_dialect import migrate
from bot.audit.schema import SCHEMA_VERSION
from bot.dsn import DatabaseUrl

# -- SQLite -------------------------------------------------------------------------------------


async def test_sqlite_missing_file_in_a_writable_directory_is_fine(tmp_path: Path) -> None:
    health = await check_database(tmp_path / "audit.sqlite3")
    assert health.status is Health.OK
    assert "will be created" in health.detail
    assert not (tmp_path / "audit.sqlite3").exists()


async def test_sqlite_current_file_is_ok(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    async with await open_store(path):
        pass
    health = await check_database(str(path))
    assert health.status is Health.OK
    assert f"schema version {SCHEMA_VERSION}" in health.detail
    assert "writable" in health.detail


async def test_sqlite_problems_fail(tmp_path: Path) -> None:
    missing_dir = await check_database(tmp_path / "no" / "such" / "audit.sqlite3")
    assert missing_dir.status is Health.FAIL
    assert "not a writable directory" in missing_dir.detail
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"not a database" * 100)
    health = await check_database(corrupt)
    assert (health.status, health.ok) == (Health.FAIL, False)
    assert "cannot open" in health.detail


# -- PostgreSQL ---------------------------------------------------------------------------------


async def _tables(url: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {name for (name,) in await cur.fetchall()}


@pytest.mark.postgres
async def test_postgres_empty_database_is_fine_and_stays_empty(pg_url: str) -> None:
    health = await check_database(pg_url)
    assert health.status is Health.OK
    assert "created at first start" in health.detail
    assert await _tables(pg_url) == set()


@pytest.mark.postgres
async def test_postgres_migrated_database_is_ok_and_unchanged(pg_url: str) -> None:
    async with await open_store(pg_url):
        pass
    health = await check_database(DatabaseUrl(pg_url))
    assert health.status is Health.OK
    assert f"schema version {SCHEMA_VERSION}, reachable and writable" in health.detail
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM claims")
        assert await cur.fetchone() == (0,)


@pytest.mark.postgres
async def test_postgres_older_schema_warns_newer_fails(pg_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await migrate(conn, target=1)
    older = await check_database(pg_url)
    assert older.status is Health.WARN
    assert f"schema version 1 of {SCHEMA_VERSION}" in older.detail
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await migrate(conn)
        await conn.execute("UPDATE roombot_schema SET version = 99")
    newer = await check_database(pg_url)
    assert newer.status is Health.FAIL
    assert "upgrade roombot" in newer.detail


@pytest.mark.postgres
async def test_postgres_wrong_password_fails_without_showing_it(pg_url: str) -> None:
    wrong = DatabaseUrl(pg_url.replace("@127.0.0.1", "-wrong@127.0.0.1", 1))
    health = await check_database(wrong)
    assert health.status is Health.FAIL
    assert "password authentication failed" in health.detail
    assert wrong.password is not None
    assert wrong.password not in health.detail
    assert ":***@127.0.0.1" in health.detail


async def test_postgres_unreachable_fails() -> None:
    health = await check_database("postgresql://roombot:s3cret@127.0.0.1:9/audit", timeout_s=2)
    assert health.status is Health.FAIL
    assert "cannot connect" in health.detail
    assert "s3cret" not in health.detail


@pytest.fixture
async def read_only_url(pg_url: str) -> AsyncIterator[str]:
    """A migrated `pg_url`, as a role that may read its schema but write nothing."""
    async with await open_store(pg_url):
        pass
    role = f"roombot_reader_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    options = parse_qs(urlsplit(pg_url).query)["options"][0]
    schema = options.removeprefix("-csearch_path=")
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        for statement in (
            "CREATE ROLE {role} LOGIN PASSWORD {password}",
            "GRANT USAGE ON SCHEMA {schema} TO {role}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
        ):
            await conn.execute(
                sql.SQL(statement).format(
                    role=sql.Identifier(role),
                    password=sql.Literal(password),
                    schema=sql.Identifier(schema),
                )
            )
    parts = urlsplit(pg_url)
    netloc = f"{role}:{password}@{parts.hostname}:{parts.port}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            await conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            await conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.postgres
async def test_postgres_read_only_role_fails_as_not_writable(read_only_url: str) -> None:
    health = await check_database(read_only_url)
    assert health.status is Health.FAIL
    assert "not writable" in health.detail
    assert "permission denied" in health.detail
    # ... while reading the trail (`roombot audit`) works for it.
    async with await open_store(read_only_url, read_only=True) as reader:
        assert await reader.query() == []
