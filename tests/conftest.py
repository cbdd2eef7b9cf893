"""Shared fixtures: every test starts from an environment with no roombot variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_PREFIXES = ("SLACK_", "TENCENT_", "ROOMBOT_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Remove roombot's variables and run in an empty directory, so no developer `.env` leaks in."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name == "PORT":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
