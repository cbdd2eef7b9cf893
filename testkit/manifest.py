"""roombot's Slack app manifest (`manifest.yml` at the repository root), read once for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MANIFEST_PATH = Path(__file__).resolve().parents[1] / "manifest.yml"


def load_manifest() -> dict[str, Any]:
    """The parsed manifest; raises if it is missing or not a YAML mapping."""
    data = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"{MANIFEST_PATH} is not a YAML mapping")
    return data


def _bot_scopes() -> tuple[str, ...]:
    scopes = load_manifest()["oauth_config"]["scopes"]["bot"]
    return tuple(str(scope) for scope in scopes)


#: The bot token scopes the manifest asks for, in manifest order (what a correct install grants).
MANIFEST_BOT_SCOPES: tuple[str, ...] = _bot_scopes()
