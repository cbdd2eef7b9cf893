"""Test doubles for Slack: a fake Web API, signed request payloads, a fake Socket Mode server.

They are faithful enough that roombot's real bolt app runs against them unchanged; see each
module's docstring for what is (and is not) modelled.
"""

from __future__ import annotations

from .manifest import MANIFEST_BOT_SCOPES, MANIFEST_PATH, load_manifest
from .slack_api import FakeSlack, SlackCall
from .slack_payloads import (
    ALICE,
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    GENERAL,
    TEAM_DOMAIN,
    TEAM_ID,
    app_home_opened,
    app_mention,
    block_actions,
    form_body,
    interactive_body,
    message_ts,
    sign,
    slash_command,
    view_block_actions,
    view_state,
    view_submission,
)
from .socket_mode import FakeSocketMode, close_handler

__all__ = [
    "ALICE",
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "GENERAL",
    "MANIFEST_BOT_SCOPES",
    "MANIFEST_PATH",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "FakeSlack",
    "FakeSocketMode",
    "SlackCall",
    "app_home_opened",
    "app_mention",
    "block_actions",
    "close_handler",
    "form_body",
    "interactive_body",
    "load_manifest",
    "message_ts",
    "sign",
    "slash_command",
    "view_block_actions",
    "view_state",
    "view_submission",
]
