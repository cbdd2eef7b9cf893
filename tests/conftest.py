"""Shared fixtures: every test starts from an environment with no roombot variables; PostgreSQL
(one server a session, a fresh database a test) for the tests that need it; `target`, which
runs a test once per audit-store backend."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests import postgres

# Properties are not timed: hypothesis fails an example that takes over 200 ms by default, which
# a busy CI machine caused for a property that holds (tests/test_suite_determinism.py).
settings.register_profile("roombot", deadline=None)
settings.load_profile("roombot")

_PREFIXES = ("SLACK_", "TENCENT_", "ROOMBOT_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Remove roombot's variables and run in an empty directory, so no developer `.env` leaks in."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name == "PORT":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def forget_secrets() -> Iterator[None]:
    """Secrets one test made the process remember (`bot.redact`) are not redacted in the next."""
    yield
    from bot.redact import forget_all

    forget_all()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of the session's PostgreSQL server (its `postgres` database, as a superuser)."""
    yield from postgres.server_url()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A `postgresql://` URL (with a password) whose connections see only an empty schema of
    this test's own."""
    yield from postgres.fresh_schema(pg_server)


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """A `postgresql://` URL (with a password) of an empty database of this test's own."""
    yield from postgres.fresh_database(pg_server)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's audit store lives: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "audit.sqlite3"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None]:
    """With ROOMBOT_REQUIRE_POSTGRES set, a PostgreSQL test that skipped (for whatever reason)
    fails instead: in CI those tests must run."""
    outcome: Any = yield
    report = outcome.get_result()
    if postgres.REQUIRED and report.skipped and item.get_closest_marker("postgres"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but ROOMBOT_REQUIRE_POSTGRES is set: {report.longrepr}"
