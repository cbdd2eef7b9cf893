"""`roombot check`: the audit trail line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.audit import AuditStore
from bot.check import Status, check_audit, load_settings_leniently


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
    store = await AuditStore.open(path)
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
