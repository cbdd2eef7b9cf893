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


# -- views: modals and the App Home tab --------------------------------------------------------


def view_state(view: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """A view's `state` after someone filled it in: `answers` maps an input block's `block_id` to
    a text (plain_text_input), an option value (static_select) or a list of option values
    (checkboxes). Unanswered inputs are empty, as Slack sends them (`value: null`...).

    Raises ValueError for an answer to a block the view does not have, or an option it does not
    offer: a test can only submit what a person could.
    """
    inputs = {
        b["block_id"]: b["element"]
        for b in view.get("blocks", [])
        if b.get("type") == "input" and "block_id" in b
    }
    unknown = set(answers) - set(inputs)
    if unknown:
        raise ValueError(f"the view has no input block {sorted(unknown)}; it has {sorted(inputs)}")
    values: dict[str, Any] = {}
    for block_id, element in inputs.items():
        answer = answers.get(block_id)
        kind = element["type"]
        state: dict[str, Any] = {"type": kind}
        if kind == "plain_text_input":
            state["value"] = answer if answer else None
        elif kind == "static_select":
            state["selected_option"] = _offered(element, [answer])[0] if answer else None
        elif kind == "checkboxes":
            state["selected_options"] = _offered(element, list(answer or []))
        else:
            raise ValueError(f"view_state does not model {kind} elements")
        values[block_id] = {element["action_id"]: state}
    return {"values": values}


def _offered(element: dict[str, Any], wanted: list[Any]) -> list[dict[str, Any]]:
    options = {o["value"]: o for o in element.get("options", [])}
    missing = [w for w in wanted if w not in options]
    if missing:
        raise ValueError(f"not offered: {missing}; the options are {sorted(options)}")
    return [options[w] for w in wanted]


def _user(user_id: str, team_id: str) -> dict[str, Any]:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id}


def view_submission(
    view: dict[str, Any],
    answers: dict[str, Any],
    *,
    user_id: str = ALICE,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = APP_ID,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """The `view_submission` payload Slack sends when `user_id` submits `view` (as views.open
    returned it) filled in with `answers` (see `view_state`)."""
    submitted = {**view, "state": view_state(view, answers)}
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": _user(user_id, team_id),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id if trigger_id is not None else _trigger_id(),
        "view": submitted,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_block_actions(
    view: dict[str, Any],
    action_id: str,
    *,
    value: str | None = None,
    answers: dict[str, Any] | None = None,
    user_id: str = ALICE,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = APP_ID,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """The `block_actions` payload of an interaction inside a view (a modal or the Home tab):
    clicking the button `action_id` (its value taken from the view unless `value` is given), or
    picking option `value` of the select menu `action_id`. Such payloads carry the view and its
    state, and no channel, message or response_url.
    """
    found = _find_element(view, action_id, value)
    if found is None:
        raise ValueError(f"the view has no element {action_id!r} (value {value!r})")
    block_id, element = found
    action: dict[str, Any] = {
        "type": element["type"],
        "action_id": action_id,
        "block_id": block_id,
        "action_ts": f"{time.time():.6f}",
    }
    if element["type"] == "button":
        action["text"] = element["text"]
        action["value"] = element.get("value") if value is None else value
    elif element["type"] == "static_select":
        action["selected_option"] = _offered(element, [value])[0]
    return {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "view", "view_id": view["id"]},
        "trigger_id": trigger_id if trigger_id is not None else _trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": {**view, "state": view_state(view, answers or {})},
        "actions": [action],
    }


def _find_element(
    view: dict[str, Any], action_id: str, value: str | None
) -> tuple[str, dict[str, Any]] | None:
    for block in view.get("blocks", []):
        elements = [block.get("element"), block.get("accessory"), *block.get("elements", [])]
        for element in elements:
            if not isinstance(element, dict) or element.get("action_id") != action_id:
                continue
            if element["type"] == "button" and value is not None and element.get("value") != value:
                continue
            return str(block.get("block_id", "")), element
    return None


def app_home_opened(
    user: str = ALICE,
    *,
    tab: str = "home",
    channel: str | None = None,
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
    bot_user_id: str = BOT_USER_ID,
    event_id: str | None = None,
    view: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Events API envelope of `app_home_opened`: `user` opened the app's Home (or Messages)
    tab. `channel` is the user's DM with the app; `view` (the Home tab as last published) is
    present only once one was published."""
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user,
        "channel": channel if channel is not None else "D" + user[1:],
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }
    if view is not None:
        event["view"] = view
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id if event_id is not None else f"Ev0{next(_serial):08X}",
        "event_time": int(time.time()),
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
    }
