"""Test doubles for Slack: a fake Web API, signed request payloads, a fake Socket Mode server.

They are faithful enough that roombot's real bolt app runs against them unchanged; see each
module's docstring for what is (and is not) modelled.
"""

from __future__ import annotations

from .manifest import MANIFEST_BOT_SCOPES, MANIFEST_PATH, load_manifest

__all__ = ["MANIFEST_BOT_SCOPES", "MANIFEST_PATH", "load_manifest"]
