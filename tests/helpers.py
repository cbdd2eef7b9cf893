"""Helpers shared by tests (import from here, not from conftest)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_file(relative: str) -> Path:
    """A file from ../shared/, or skip the test (a user's fresh clone has no ../shared/)."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"../shared/{relative} is not present (only CI and developers have it)")
    return path
