"""`roombot check`'s audit line when ROOMBOT_AUDIT_DB is a PostgreSQL URL (the SQLite cases are
in test_check_audit.py): it goes through `bot.audit.health`, and never shows the password."""

from __future__ import annotations

import pytest

from bot.audit import open_store
from bot.check import Status, check_audit, load_settings_leniently
from bot.dsn import DatabaseUrl

pytestmark = pytest.mark.postgres


async def test_a_migrated_database_passes(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with await open_store(pg_url):
        pass
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", pg_url)
    result = await check_audit(load_settings_leniently(None))
    assert result.status is Status.OK
    assert "reachable and writable" in result.detail
    password = DatabaseUrl(pg_url).password
    assert password is not None
    assert password not in result.detail


async def test_a_refused_login_fails_without_the_password(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = pg_url.replace("@127.0.0.1", "-nope@127.0.0.1", 1)
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", wrong)
    result = await check_audit(load_settings_leniently(None))
    assert result.status is Status.FAIL
    assert "password authentication failed" in result.detail
    password = DatabaseUrl(wrong).password
    assert password is not None
    assert password not in f"{result.detail} {result.fix}"
