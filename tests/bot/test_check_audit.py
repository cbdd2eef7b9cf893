"""`roombot check`: the audit trail line (SQLite; both backends at the end)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from bot.audit import open_store
from bot.audit.schema import SCHEMA_VERSION
from bot.audit.sqlite_dialect import migrate
from bot.check import Status, check_audit, load_settings_leniently
from bot.dsn import DatabaseUrl


async def _check(monkeypatch: pytest.MonkeyPatch, path: Path) -> tuple[Status, str]:
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(path))
    result = await check_audit(load_settings_leniently(None))
    return result.status, result.detail


async def test_missing_file_in_a_writable_directory_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, detail = await _check(monkeypatch, tmp_path / "audit.sqlite3")
    assert status is Status.OK
    assert "will be created" in detail
    assert not (tmp_path / "audit.sqlite3").exists()  # checking creates nothing


async def test_existing_store_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.sqlite3"
    store = await open_store(path)
    await store.close()
    status, detail = await _check(monkeypatch, path)
    assert status is Status.OK
    assert "opens and is writable" in detail


async def test_directory_that_does_not_exist_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, detail = await _check(monkeypatch, tmp_path / "no" / "such" / "audit.sqlite3")
    assert status is Status.FAIL
    assert "not a writable directory" in detail


async def test_corrupt_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    status, detail = await _check(monkeypatch, path)
    assert status is Status.FAIL
    assert "cannot open" in detail


async def test_either_backend_is_reachable_migrated_and_writable_without_showing_a_password(
    target: str | Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await open_store(target):
        pass
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(target))
    result = await check_audit(load_settings_leniently(None))
    assert result.status is Status.OK
    if isinstance(target, Path):
        assert result.detail == (
            f"SQLite {target}: schema version {SCHEMA_VERSION}, opens and is writable"
        )
    else:
        password = DatabaseUrl(target).password
        assert password is not None
        assert password not in result.detail
        assert result.detail.startswith("PostgreSQL postgresql://")
        assert result.detail.endswith(f"schema version {SCHEMA_VERSION}, reachable and writable")


async def test_an_older_sqlite_schema_warns_that_the_next_start_migrates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.sqlite3"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn, target=1)
    before = path.read_bytes()
    status, detail = await _check(monkeypatch, path)
    assert status is Status.WARN
    assert (
        detail
        == f"SQLite {path} at schema version 1 of {SCHEMA_VERSION}; the next start migrates it"
    )
    assert path.read_bytes() == before  # checking migrates nothing
