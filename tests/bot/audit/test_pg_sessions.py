"""Session settings of pooled PostgreSQL connections are set at connection start (libpq's
`options`), with the URL's own options kept: no `SET` statements, so a new pooled connection
costs the database no transaction of its own."""

from __future__ import annotations

import pytest

from bot.audit.budget import SharedRateBudget
from bot.audit.postgres_dialect import MIN_POOL_SIZE, STATEMENT_TIMEOUT_MS, PostgresDialect
from bot.dsn import DatabaseUrl


def test_session_options_keep_the_urls_own_and_add_each_setting() -> None:
    url = DatabaseUrl("postgresql://u:pw@db.example/roombot?options=-c%20search_path%3Dops")
    options = url.session_options({"statement_timeout": 5000, "synchronous_commit": "off"})
    assert options == "-c search_path=ops -c statement_timeout=5000 -c synchronous_commit=off"
    assert DatabaseUrl("postgresql://db.example/roombot").session_options({"a": 1}) == "-c a=1"


async def _settings(pool_owner: PostgresDialect | SharedRateBudget, *names: str) -> list[str]:
    pool = pool_owner._pool
    assert pool is not None
    async with pool.connection() as conn:
        values = []
        for name in names:
            row = await (await conn.execute(f"SHOW {name}")).fetchone()
            assert row is not None
            values.append(str(row[0]))
        return values


@pytest.mark.postgres
async def test_store_connections_start_with_the_timeout_and_the_urls_schema(pg_url: str) -> None:
    dialect = await PostgresDialect.connect(DatabaseUrl(pg_url))
    try:
        timeout, read_only, path = await _settings(
            dialect, "statement_timeout", "default_transaction_read_only", "search_path"
        )
        assert timeout == f"{STATEMENT_TIMEOUT_MS // 1000}s"
        assert read_only == "off"
        assert path.startswith("roombot_test")  # the URL's own options, kept
    finally:
        await dialect.close()
    reader = await PostgresDialect.connect(DatabaseUrl(pg_url), read_only=True)
    try:
        [read_only] = await _settings(reader, "default_transaction_read_only")
        assert read_only == "on"
    finally:
        await reader.close()


@pytest.mark.postgres
async def test_rate_budget_connections_start_with_their_settings(pg_url: str) -> None:
    dialect = await PostgresDialect.connect(DatabaseUrl(pg_url))  # creates the budget's table
    budget = SharedRateBudget(DatabaseUrl(pg_url), rate_per_second=10)
    try:
        await budget.acquire("update_room_info")
        timeout, commit = await _settings(budget, "statement_timeout", "synchronous_commit")
        assert commit == "off"
        assert timeout != "0"
    finally:
        await budget.aclose()
        await dialect.close()


@pytest.mark.postgres
async def test_the_store_keeps_two_connections_open_so_the_loop_and_a_request_need_no_login(
    pg_url: str,
) -> None:
    dialect = await PostgresDialect.connect(DatabaseUrl(pg_url))
    try:
        pool = dialect._pool
        assert MIN_POOL_SIZE == 2
        assert pool.get_stats()["pool_size"] == MIN_POOL_SIZE  # open before anyone asks
        async with pool.connection(), pool.connection():  # a tick and a write at once
            pass
        assert pool.get_stats().get("connections_num", 0) == MIN_POOL_SIZE  # none opened since
    finally:
        await dialect.close()


@pytest.mark.postgres
async def test_a_warmed_rate_budget_has_its_connection_before_its_first_use(pg_url: str) -> None:
    dialect = await PostgresDialect.connect(DatabaseUrl(pg_url))
    budget = SharedRateBudget(DatabaseUrl(pg_url), rate_per_second=10)
    try:
        assert budget._pool is None  # opened at first use, unless warmed
        await budget.warm()
        assert budget._pool is not None
        opened = budget._pool.get_stats().get("connections_num", 0)
        await budget.acquire("update_room_info")
        assert budget._pool.get_stats().get("connections_num", 0) == opened  # no login then
    finally:
        await budget.aclose()
        await dialect.close()


async def test_warming_a_budget_whose_database_is_gone_is_left_to_its_first_use() -> None:
    budget = SharedRateBudget(
        DatabaseUrl("postgresql://roombot@127.0.0.1:1/roombot"),
        rate_per_second=10,
        connect_timeout_s=1,
    )
    try:
        await budget.warm()  # no error here: the first call meets it
        assert budget._pool is None
    finally:
        await budget.aclose()
