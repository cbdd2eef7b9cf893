"""PostgreSQL for the tests: one server per session, a fresh schema (or database) per test.

The server is `ROOMBOT_TEST_DATABASE_URL` when set (`scripts/with-postgres` and CI set it), else
one this session starts itself when the server programs are installed (`tests/pgserver.py`).
Without either, the tests that need it skip, naming what is missing; with
`ROOMBOT_REQUIRE_POSTGRES=1` (CI) that skip is a failure instead, so they can never silently not
run there. Both variables are read at import: the autouse `clean_env` fixture removes every
`ROOMBOT_*` variable from each test's environment.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from testkit.pgserver import URL_VARIABLE, PostgresUnavailable, TemporaryPostgres

SERVER_URL = os.environ.get(URL_VARIABLE) or None
REQUIRED = os.environ.get("ROOMBOT_REQUIRE_POSTGRES", "") not in ("", "0")

_names = itertools.count(1)


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when PostgreSQL is required (CI)."""
    if REQUIRED:
        pytest.fail(f"ROOMBOT_REQUIRE_POSTGRES is set, but PostgreSQL is unavailable: {reason}")
    pytest.skip(f"needs PostgreSQL: {reason}")


def server_url() -> Iterator[str]:
    """The session's server URL (the generator behind the session fixture)."""
    if SERVER_URL is not None:
        yield SERVER_URL
        return
    try:
        server = TemporaryPostgres()
        server.start()
    except PostgresUnavailable as exc:
        unavailable(str(exc))
    try:
        yield server.url
    finally:
        server.stop()


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def fresh_schema(admin_url: str) -> Iterator[str]:
    """Create an empty schema, yield a URL whose connections use only it (`search_path`), drop
    it afterwards. Much cheaper than a database, and as empty for the store."""
    name = f"roombot_test_{os.getpid()}_{next(_names)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    parts = urlsplit(admin_url)
    option = "options=" + quote(f"-csearch_path={name}", safe="")
    query = f"{parts.query}&{option}" if parts.query else option
    try:
        yield urlunsplit(parts._replace(query=query))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def fresh_database(admin_url: str) -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards (even with connections)."""
    name = f"roombot_test_{os.getpid()}_{next(_names)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
