"""manifest.yml is a valid Slack app manifest and asks for exactly what roombot needs."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from testkit import MANIFEST_BOT_SCOPES, MANIFEST_PATH, load_manifest
from tests.helpers import shared_file

REQUIRED_BOT_SCOPES = {
    "commands",
    "chat:write",
    "chat:write.public",
    "app_mentions:read",
    "usergroups:read",
    "files:write",
}


@pytest.fixture
def manifest() -> dict[str, Any]:
    return load_manifest()


@pytest.fixture
def room_command(manifest: dict[str, Any]) -> dict[str, Any]:
    commands = [c for c in manifest["features"]["slash_commands"] if c["command"] == "/room"]
    assert len(commands) == 1
    command: dict[str, Any] = commands[0]
    return command


def test_validates_against_slacks_manifest_schema(manifest: dict[str, Any]) -> None:
    schema = json.loads(shared_file("slack/manifest.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_schema_check_would_catch_a_broken_manifest(manifest: dict[str, Any]) -> None:
    # Guards the test above: a command without its leading slash must not validate.
    schema = json.loads(shared_file("slack/manifest.schema.json").read_text(encoding="utf-8"))
    manifest["features"]["slash_commands"][0]["command"] = "room"
    assert not jsonschema.Draft7Validator(schema).is_valid(manifest)


def test_names_the_app_and_bot_user_roombot(manifest: dict[str, Any]) -> None:
    assert manifest["display_information"]["name"] == "roombot"
    assert manifest["features"]["bot_user"]["display_name"] == "roombot"


def test_room_command_escapes_mentions_and_shows_usage(room_command: dict[str, Any]) -> None:
    assert room_command["should_escape"] is True
    assert room_command["description"]
    assert room_command["usage_hint"] == "mute-all ROOM… [--dry-run] [--reason TEXT] — /room help"
    # Socket Mode is the default: a request URL would belong to HTTP mode only.
    assert "url" not in room_command


def test_bot_scopes_are_exactly_what_roombot_uses(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert set(scopes) == REQUIRED_BOT_SCOPES
    assert len(scopes) == len(set(scopes))
    assert set(MANIFEST_BOT_SCOPES) == REQUIRED_BOT_SCOPES


def test_subscribes_to_its_events_and_enables_interactivity(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == ["app_mention", "app_home_opened"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True


def test_enables_the_home_tab_and_a_read_only_messages_tab(manifest: dict[str, Any]) -> None:
    # Home: views.publish on app_home_opened. Messages: where Home's Show button answers (a
    # post to the user ID); read-only, since roombot does not read DMs.
    assert manifest["features"]["app_home"] == {
        "home_tab_enabled": True,
        "messages_tab_enabled": True,
        "messages_tab_read_only_enabled": True,
    }


def test_comments_say_how_to_switch_to_http_mode() -> None:
    text = MANIFEST_PATH.read_text(encoding="utf-8")
    assert "https://YOUR-HOST/slack/events" in text
    assert "socket_mode_enabled to false" in text
    for field in ("url:", "request_url:"):
        assert f"{field} https://YOUR-HOST/slack/events" in text
