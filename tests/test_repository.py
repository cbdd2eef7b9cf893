"""What a checkout keeps out of git: the files running roombot leaves in the working tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.console.backend import demo_rooms_path

ROOT = Path(__file__).resolve().parents[1]


def _ignored(name: str) -> bool:
    result = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", name],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(),
    reason="needs git and a git checkout of roombot",
)
@pytest.mark.parametrize(
    "audit_db",
    [None, "roombot-audit.sqlite3", "data/audit.sqlite3", "postgresql://u:p@db/roombot"],
)
def test_the_quick_starts_files_are_ignored(audit_db: str | None) -> None:
    """Issue 27, item 14: the quick start left an untracked roombot-audit.demo-rooms.json."""
    settings = (
        load_settings(None) if audit_db is None else load_settings(None, roombot_audit_db=audit_db)
    )
    demo = demo_rooms_path(settings)
    for path in (demo, demo.with_name(demo.name + ".tmp")):
        assert _ignored(str(path)), f"{path} would show up in `git status`"
    assert _ignored("roombot-audit.sqlite3")
    assert not _ignored(".env.example")
