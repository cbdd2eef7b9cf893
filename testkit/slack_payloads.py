"""Payloads exactly as Slack sends them to an app, and the request signature Slack puts on them.

Use these to drive roombot's real endpoints (HTTP mode: sign the body and POST it to /slack/events;
Socket Mode: hand the dict to `FakeSocketMode.send_envelope`). Field names, value types (slash
command fields are all strings) and envelope shapes follow Slack's documentation and real
deliveries; the defaults describe one small workspace that the other fakes share.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from typing import Any
from urllib.parse import urlencode

TEAM_ID = "T0TEAM001"
TEAM_DOMAIN = "roombot-dev"
APP_ID = "A0ROOMBOT1"
BOT_USER_ID = "UBOT0001"
BOT_ID = "B0ROOMBOT1"
ALICE = "U0ALICE01"
GENERAL = "C0GENERAL1"
#: The deprecated verification token Slack still includes in payloads; apps must not rely on it.
VERIFICATION_TOKEN = "fakeVerificationToken0000"

_serial = itertools.count(1)
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def sign(body: bytes, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The `X-Slack-Signature` and `X-Slack-Request-Timestamp` headers Slack sends with `body`.

    The signature is `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}` keyed by the signing secret;
    `timestamp` defaults to now (pass an old one to test replay rejection).
    """
    ts = int(time.time()) if timestamp is None else timestamp
    base = b"v0:" + str(ts).encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(ts)}


def form_body(fields: dict[str, str]) -> bytes:
    """`fields` as an `application/x-www-form-urlencoded` body (how Slack posts slash commands)."""
    return urlencode(fields).encode()


def interactive_body(payload: dict[str, Any]) -> bytes:
    """An interactivity request body: form-encoded with one field, `payload=<json>`."""
    return form_body({"payload": json.dumps(payload, separators=(",", ":"))})


def slash_command(
    text: str,
    *,
    user_id: str = ALICE,
    channel_id: str = GENERAL,
    channel_name: str = "general",
    response_url: str,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    command: str = "/room",
    trigger_id: str | None = None,
    api_app_id: str = APP_ID,
    user_name: str | None = None,
    **overrides: str,
) -> dict[str, str]:
    """Every field Slack posts for a slash command, all strings, in Slack's order.

    `channel_name` is `directmessage` in DMs and `privategroup` in private channels. Slack sends
    `enterprise_id`/`enterprise_name` only on Enterprise Grid: pass them as overrides. Any override
    replaces (or adds) a field.
    """
    fields = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name if user_name is not None else user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id if trigger_id is not None else _trigger_id(),
    }
    fields.update(overrides)
    return fields


def app_mention(
    text: str,
    *,
    user: str = ALICE,
    channel: str = GENERAL,
    ts: str | None = None,
    thread_ts: str | None = None,
    event_id: str | None = None,
    team_id: str = TEAM_ID,
    bot_user_id: str = BOT_USER_ID,
    api_app_id: str = APP_ID,
    event_time: int | None = None,
) -> dict[str, Any]:
    """A full Events API envelope (`type: event_callback`) carrying an `app_mention` event.

    Slack's `text` starts with the mention: when `text` does not already mention the bot,
    `<@bot_user_id> ` is put in front. `thread_ts` is present only for a mention made in a thread.
    """
    if f"<@{bot_user_id}" not in text:
        text = f"<@{bot_user_id}> {text}"
    ts = ts if ts is not None else message_ts()
    event: dict[str, Any] = {
        "user": user,
        "type": "app_mention",
        "ts": ts,
        "client_msg_id": _uuid_like(),
        "text": text,
        "team": team_id,
        "blocks": [_rich_text(text)],
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = user
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id if event_id is not None else f"Ev0{next(_serial):08X}",
        "event_time": event_time if event_time is not None else int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-fake-{next(_serial)}",
    }


def block_actions(
    action_id: str,
    value: str,
    *,
    user_id: str = ALICE,
    channel_id: str = GENERAL,
    message_ts: str,
    response_url: str,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    thread_ts: str | None = None,
    channel_name: str = "general",
    block_id: str = "roombot_actions",
    button_text: str = "Confirm",
    message: dict[str, Any] | None = None,
    is_ephemeral: bool = False,
    api_app_id: str = APP_ID,
    bot_user_id: str = BOT_USER_ID,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """The `block_actions` payload Slack sends when `user_id` clicks a button on a bot message.

    `thread_ts` is the thread the message sits in (Slack puts it in `container` and `message`).
    `message` is the message the button was on (e.g. an entry of `FakeSlack.messages()`); by
    default a bot message holding just this button. Slack omits `message` for ephemeral messages.
    """
    action = {
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": button_text, "emoji": True},
        "value": value,
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel_id,
        "is_ephemeral": is_ephemeral,
    }
    if thread_ts is not None:
        container["thread_ts"] = thread_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {
            "id": user_id,
            "username": user_id.lower(),
            "name": user_id.lower(),
            "team_id": team_id,
        },
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id if trigger_id is not None else _trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
    if not is_ephemeral:
        payload["message"] = _action_message(
            message, action, message_ts, thread_ts, team_id, api_app_id, bot_user_id
        )
    return payload


def message_ts() -> str:
    """A fresh Slack-style message timestamp (`"1700000123.000042"`), unique within this process."""
    return f"{int(time.time())}.{next(_serial) % 1_000_000:06d}"


def _action_message(
    message: dict[str, Any] | None,
    action: dict[str, Any],
    ts: str,
    thread_ts: str | None,
    team_id: str,
    api_app_id: str,
    bot_user_id: str,
) -> dict[str, Any]:
    if message is not None:
        # FakeSlack keeps `channel` on stored messages; Slack's payload carries it elsewhere.
        return {k: v for k, v in message.items() if k != "channel"}
    button = {k: action[k] for k in ("action_id", "text", "value", "type")}
    built: dict[str, Any] = {
        "user": bot_user_id,
        "type": "message",
        "ts": ts,
        "bot_id": BOT_ID,
        "app_id": api_app_id,
        "text": "",
        "team": team_id,
        "blocks": [{"type": "actions", "block_id": action["block_id"], "elements": [button]}],
    }
    if thread_ts is not None:
        built["thread_ts"] = thread_ts
    return built


def _rich_text(text: str) -> dict[str, Any]:
    """The rich_text block Slack attaches to a user's message: mentions become `user` elements."""
    elements: list[dict[str, Any]] = []
    position = 0
    for match in _MENTION.finditer(text):
        if match.start() > position:
            elements.append({"type": "text", "text": text[position : match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        position = match.end()
    if position < len(text):
        elements.append({"type": "text", "text": text[position:]})
    return {
        "type": "rich_text",
        "block_id": f"rt{next(_serial)}",
        "elements": [{"type": "rich_text_section", "elements": elements}],
    }


def _trigger_id() -> str:
    n = next(_serial)
    return (
        f"{1_700_000_000 + n}.{738_474_920 + n}.{hashlib.sha256(str(n).encode()).hexdigest()[:32]}"
    )


def _uuid_like() -> str:
    h = hashlib.sha256(f"msg-{next(_serial)}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
