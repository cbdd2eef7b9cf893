"""A fake Slack Web API: an aiohttp server on 127.0.0.1 that answers the methods roombot uses the
way Slack does, keeps a small model of channels and messages, and records every call.

Point a real client at it: `AsyncWebClient(token=…, base_url=fake.api_url)` (or SLACK_API_URL).

Faithful to Slack where it matters to an app:
- bodies may be JSON or form-encoded (`blocks` as a JSON string), parameters may ride in the query;
  the token comes from `Authorization: Bearer …` or a `token` parameter;
- `not_authed` / `invalid_auth` / `not_allowed_token_type` (a bot token where an app-level token is
  needed, or the reverse) / `missing_scope` (with `needed` and `provided`), and an `x-oauth-scopes`
  header on every answer;
- chat.postMessage checks channel access (a private channel the bot is not in is
  `channel_not_found`; a public one it has not joined is `not_in_channel` without
  `chat:write.public`), `no_text`, `msg_too_long`, `invalid_thread_ts`, Block Kit limits
  (`invalid_blocks` with json-pointer errors). Like Slack, a reply to a well-formed but unknown
  `thread_ts` is accepted and simply never appears in that thread;
- HTTP 429 + `Retry-After` with `{"ok": false, "error": "ratelimited"}` when told to rate limit;
- `response_url`s accept at most 5 posts, then answer 404 `used_url`.

Not modelled: rate limits by themselves (inject them), channel names instead of IDs, reactions,
files, conversations.* methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import web

from .manifest import MANIFEST_BOT_SCOPES
from .slack_payloads import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID
from .socket_mode import FakeSocketMode

# The bot scope each method needs; auth.test needs none, and apps.connections.open takes an
# app-level token whose connections:write scope is not modelled.
_METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "usergroups.users.list": "usergroups:read",
}
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
_RESPONSE_URL_MAX_USES = 5  # Slack: up to 5 responses per response_url (within 30 minutes)
_MAX_TEXT = 40_000
_TS = re.compile(r"^\d+\.\d+$")


@dataclass(frozen=True)
class SlackCall:
    """One request the fake received (including ones it refused or rate limited).

    `params` merges query string and body (JSON or form), with `blocks`/`attachments` parsed when
    sent as JSON strings; the token is never in `params` and is left out of the repr. `at` is
    `time.monotonic()` when the request arrived.
    """

    method: str
    params: dict[str, Any]
    token: str | None = field(repr=False)
    at: float


@dataclass
class _Fault:
    method: str
    remaining: int
    error: str = ""
    channel: str | None = None
    retry_after: int = 0
    delay_s: float = 0.0
    skip: int = 0  # matching calls to let through before the fault applies


class _SlackError(Exception):
    """An `{"ok": false}` answer, raised inside the fake's handlers."""

    def __init__(self, error: str, *, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.retry_after = retry_after
        self.extra = extra


class FakeSlack:
    """The fake Web API server plus its workspace model. Use as `async with FakeSlack() as slack:`.

    `bot_token` / `app_token`: the only tokens accepted (default: any `xoxb-…` / `xapp-…`).
    `scopes`: what the bot token was granted (default: what manifest.yml asks for).
    """

    def __init__(
        self,
        *,
        bot_user_id: str = BOT_USER_ID,
        team_id: str = TEAM_ID,
        scopes: Iterable[str] = MANIFEST_BOT_SCOPES,
        bot_token: str | None = None,
        app_token: str | None = None,
        bot_id: str = BOT_ID,
        app_id: str = APP_ID,
        team_domain: str = TEAM_DOMAIN,
    ) -> None:
        self.bot_user_id = bot_user_id
        self.team_id = team_id
        self.scopes = tuple(scopes)
        self.bot_id = bot_id
        self.app_id = app_id
        self.team_domain = team_domain
        self.calls: list[SlackCall] = []
        #: usergroup ID (S…) → member user IDs, for usergroups.users.list.
        self.usergroups: dict[str, list[str]] = {}
        #: channel → user IDs in it; when a channel is listed, postEphemeral to anyone else fails.
        self.channel_members: dict[str, list[str]] = {}
        #: public channels the bot has joined (matters only without chat:write.public).
        self.joined_channels: set[str] = set()
        #: every accepted response_url post: (key, JSON body), in order.
        self.response_posts: list[tuple[str, dict[str, Any]]] = []
        #: response_url posts Slack would refuse: (key, body text, reason), in order.
        self.refused_response_posts: list[tuple[str, str, str]] = []
        self._bot_token = bot_token
        self._app_token = app_token
        self._messages: list[dict[str, Any]] = []
        self._ephemerals: list[dict[str, Any]] = []
        self._faults: list[_Fault] = []
        self._rate_limits: list[_Fault] = []
        self._disconnects: list[_Fault] = []
        self._delays: list[_Fault] = []
        self._inaccessible: dict[str, str] = {}
        self._response_uses: Counter[str] = Counter()
        self._expired_response_urls: set[str] = set()
        self._redirected_response_urls: dict[str, str] = {}
        self._socket_mode: FakeSocketMode | None = None
        self._ts_serial = 0
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 at a free port."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{key}", self._response)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening (the workspace model and records stay readable)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """The Web API base URL, `http://127.0.0.1:PORT/api/` (a client's `base_url`)."""
        if self._runner is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._port}/api/"

    def response_url(self, key: str = "default") -> str:
        """A response_url like the one Slack gives a slash command or button click."""
        if self._runner is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._port}/response/{key}"

    def attach_socket_mode(self, socket_mode: FakeSocketMode) -> None:
        """Make apps.connections.open hand out `socket_mode`'s connection URLs."""
        self._socket_mode = socket_mode

    # -- what happened --------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[SlackCall]:
        """The recorded calls to one Web API method, in order."""
        return [call for call in self.calls if call.method == method]

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Posted messages (current state, updates applied), oldest first; optionally one channel.

        Each has at least `channel`, `ts`, `thread_ts` (None for a top-level message), `text`,
        `blocks` (a list, maybe empty) and `user` (the bot).
        """
        return [dict(m) for m in self._messages if channel is None or m["channel"] == channel]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """Replies in the thread under message `ts` (not the parent itself), oldest first."""
        return [m for m in self.messages(channel) if m["thread_ts"] == ts and m["ts"] != ts]

    def ephemerals(
        self, channel: str | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Ephemeral messages sent with chat.postEphemeral (`channel`, `user`, `ts`, `text`, …)."""
        return [
            dict(m)
            for m in self._ephemerals
            if (channel is None or m["channel"] == channel) and (user is None or m["user"] == user)
        ]

    # A timeout parameter (not asyncio.timeout) so a failure can say what Slack saw.
    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Poll until `predicate()` holds; after `timeout` s raise AssertionError with the calls."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self.summary()}")
            await asyncio.sleep(0.01)

    def summary(self) -> str:
        """A readable list of the calls and response_url posts so far (no tokens)."""
        lines = [f"Slack Web API calls ({len(self.calls)}):"]
        lines += [f"  {c.method} {_short(c.params)}" for c in self.calls]
        lines.append(f"response_url posts ({len(self.response_posts)}):")
        lines += [f"  {key} {_short(body)}" for key, body in self.response_posts]
        return "\n".join(lines)

    # -- fault injection ------------------------------------------------------------------------

    def fail(self, method: str, error: str, *, times: int = 1, channel: str | None = None) -> None:
        """The next `times` calls to `method` (to `channel` only, if given) answer `ok: false`
        with `error`. Injected faults are consumed in the order they were added."""
        self._faults.append(_Fault(method, times, error=error, channel=channel))

    def rate_limit(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """The next `times` calls to `method` get HTTP 429, `Retry-After: retry_after` and
        `{"ok": false, "error": "ratelimited"}`."""
        self._rate_limits.append(_Fault(method, times, retry_after=retry_after))

    def delay(self, method: str, seconds: float, *, times: int = 1) -> None:
        """The next `times` calls to `method` are answered only after `seconds` (a slow Slack)."""
        self._delays.append(_Fault(method, times, delay_s=seconds))

    def disconnect(
        self, method: str, *, times: int = 1, applied: bool = True, skip: int = 0
    ) -> None:
        """After `skip` calls to `method` that go through, the next `times` get no answer at
        all: the connection is closed, as when Slack times out or the network drops. With
        `applied`, the call still takes effect first (the message is posted, the update made),
        the worst case for a client."""
        fault = _Fault(method, times, error="applied" if applied else "", skip=skip)
        self._disconnects.append(fault)

    def private_channel(self, channel: str, *, error: str = "channel_not_found") -> None:
        """Make `channel` a private channel (or DM) the bot is not in: posting there, ephemeral or
        not, answers `error`. Slack hides such channels from the bot, hence `channel_not_found`."""
        self._inaccessible[channel] = error

    def redirect_response_url(self, key: str, location: str) -> None:
        """Make a response_url answer `302 Found` to `location` (a client must not follow it)."""
        self._redirected_response_urls[key] = location

    def expire_response_url(self, key: str = "default") -> None:
        """Make a response_url answer 404 `expired_url`, as Slack does after 30 minutes."""
        self._expired_response_urls.add(key)

    # -- HTTP handlers --------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params = await _request_params(request)
        except ValueError:
            self.calls.append(SlackCall(method, {}, _bearer(request), time.monotonic()))
            return self._answer({"ok": False, "error": "invalid_json"})
        token = _bearer(request) or _str_or_none(params.pop("token", None))
        self.calls.append(SlackCall(method, params, token, time.monotonic()))
        slow = _take(self._delays, method, None)
        if slow is not None:
            await asyncio.sleep(slow.delay_s)
        dropped = _take(self._disconnects, method, None)
        if dropped is not None:
            if dropped.error == "applied":
                with contextlib.suppress(_SlackError):
                    self._dispatch(method, params, token)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        try:
            body = self._dispatch(method, params, token)
        except _SlackError as e:
            if e.retry_after is None:
                return self._answer({"ok": False, "error": e.error, **e.extra})
            answer = self._answer({"ok": False, "error": e.error}, status=429)
            answer.headers["Retry-After"] = str(e.retry_after)
            return answer
        return self._answer({"ok": True, **body})

    def _answer(self, body: dict[str, Any], *, status: int = 200) -> web.Response:
        response = web.json_response(body, status=status)
        response.headers["x-oauth-scopes"] = ",".join(self.scopes)
        return response

    def _dispatch(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "usergroups.users.list": self._usergroup_members,
            "apps.connections.open": self._connections_open,
        }
        handler = handlers.get(method)
        if handler is None:
            raise _SlackError("unknown_method", req_method=method)
        self._check_token(method, token)
        limited = _take(self._rate_limits, method, None)
        if limited is not None:
            raise _SlackError("ratelimited", retry_after=limited.retry_after)
        self._check_scope(method)
        fault = _take(self._faults, method, _str_or_none(params.get("channel")))
        if fault is not None:
            raise _SlackError(fault.error)
        return handler(params)

    def _check_token(self, method: str, token: str | None) -> None:
        if not token:
            raise _SlackError("not_authed")
        wants_app_token = method in _APP_TOKEN_METHODS
        if token.startswith("xapp-") != wants_app_token and token.startswith(("xapp-", "xoxb-")):
            raise _SlackError("not_allowed_token_type")
        expected = self._app_token if wants_app_token else self._bot_token
        prefix = "xapp-" if wants_app_token else "xoxb-"
        if (expected is not None and token != expected) or not token.startswith(prefix):
            raise _SlackError("invalid_auth")

    def _check_scope(self, method: str) -> None:
        needed = _METHOD_SCOPES.get(method)
        if needed is None or needed in self.scopes:
            return
        raise _SlackError("missing_scope", needed=needed, provided=",".join(self.scopes))

    def _check_channel(self, channel: str) -> None:
        if not channel:
            raise _SlackError("channel_not_found")
        if channel in self._inaccessible:
            raise _SlackError(self._inaccessible[channel])
        if (
            "chat:write.public" not in self.scopes
            and channel.startswith("C")
            and channel not in self.joined_channels
        ):
            raise _SlackError("not_in_channel")

    # -- methods --------------------------------------------------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "user": "roombot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        self._check_channel(channel)
        content = {"text": "", "blocks": [], **_content(params)}
        thread_ts = _thread_ts(params)
        message: dict[str, Any] = {
            "user": self.bot_user_id,
            "type": "message",
            "ts": self._next_ts(),
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "thread_ts": thread_ts,
            **content,
        }
        if "metadata" in params:
            message["metadata"] = params["metadata"]
        self._messages.append({"channel": channel, **message})
        return {"channel": channel, "ts": message["ts"], "message": _public(message)}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        ts = str(params.get("ts") or "")
        if not channel or channel in self._inaccessible:
            raise _SlackError(self._inaccessible.get(channel, "channel_not_found"))
        stored = next(
            (m for m in self._messages if m["channel"] == channel and m["ts"] == ts), None
        )
        if stored is None:
            raise _SlackError("message_not_found")
        stored.update(_content(params))
        stored["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        message = _public({k: v for k, v in stored.items() if k != "channel"})
        return {"channel": channel, "ts": ts, "text": stored["text"], "message": message}

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        user = str(params.get("user") or "")
        self._check_channel(channel)
        if not user:
            raise _SlackError("user_not_found")
        members = self.channel_members.get(channel)
        if members is not None and user not in members:
            raise _SlackError("user_not_in_channel")
        content = {"text": "", "blocks": [], **_content(params)}
        ts = self._next_ts()
        self._ephemerals.append(
            {"channel": channel, "user": user, "ts": ts, "thread_ts": _thread_ts(params), **content}
        )
        return {"message_ts": ts}

    def _usergroup_members(self, params: dict[str, Any]) -> dict[str, Any]:
        group = str(params.get("usergroup") or "")
        if not group:
            raise _SlackError("invalid_arguments")
        if group not in self.usergroups:
            raise _SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if self._socket_mode is None:
            # Fake-specific: no FakeSocketMode was attached to this FakeSlack.
            raise _SlackError("socket_mode_not_enabled")
        return {"url": self._socket_mode.issue_url()}

    def _next_ts(self) -> str:
        # Unique and increasing, shaped like Slack's "seconds.microseconds" message ids.
        self._ts_serial += 1
        return f"{1_700_000_000 + self._ts_serial // 10_000}.{(self._ts_serial % 10_000) * 100:06d}"

    # -- response_url ---------------------------------------------------------------------------

    async def _response(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        text = await request.text()
        if key in self._redirected_response_urls:
            self.refused_response_posts.append((key, text, "redirected"))
            raise web.HTTPFound(self._redirected_response_urls[key])
        if key in self._expired_response_urls:
            return self._refuse(key, text, "expired_url")
        if self._response_uses[key] >= _RESPONSE_URL_MAX_USES:
            return self._refuse(key, text, "used_url")
        try:
            body = json.loads(text)
        except ValueError:
            self.refused_response_posts.append((key, text, "invalid_payload"))
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict):
            self.refused_response_posts.append((key, text, "invalid_payload"))
            return web.Response(status=400, text="invalid_payload")
        self._response_uses[key] += 1
        self.response_posts.append((key, body))
        return web.Response(text="ok")

    def _refuse(self, key: str, text: str, reason: str) -> web.Response:
        self.refused_response_posts.append((key, text, reason))
        return web.Response(status=404, text=reason)


# -- request decoding and validation ---------------------------------------------------------


async def _request_params(request: web.Request) -> dict[str, Any]:
    """Query string plus body, as Slack reads them; raises ValueError for malformed JSON."""
    params: dict[str, Any] = dict(request.query)
    raw = await request.read()
    if raw:
        if request.content_type == "application/json":
            decoded = json.loads(raw)
            if not isinstance(decoded, dict):
                raise ValueError("JSON body is not an object")
            params.update(decoded)
        else:
            params.update(parse_qsl(raw.decode(), keep_blank_values=True))
    return params


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential.strip() or None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _take(faults: list[_Fault], method: str, channel: str | None) -> _Fault | None:
    """Consume one use of the first matching injected fault, if any."""
    for fault in faults:
        if fault.method == method and (fault.channel is None or fault.channel == channel):
            if fault.skip > 0:
                fault.skip -= 1
                return None
            fault.remaining -= 1
            if fault.remaining <= 0:
                faults.remove(fault)
            return fault
    return None


def _thread_ts(params: dict[str, Any]) -> str | None:
    value = params.get("thread_ts")
    if value is None or value == "":
        return None
    if not _TS.match(str(value)):
        raise _SlackError("invalid_thread_ts")
    return str(value)


def _content(params: dict[str, Any]) -> dict[str, Any]:
    """The `text`/`blocks`/`attachments` a post or update names, validated like Slack does."""
    content: dict[str, Any] = {}
    for name in ("blocks", "attachments"):
        if name in params:
            value = params[name]
            if isinstance(value, str):
                try:
                    value = json.loads(value) if value else []
                except ValueError:
                    raise _SlackError(f"invalid_{name}_format") from None
                params[name] = value
            content[name] = value
    if "blocks" in content:
        problems = _block_problems(content["blocks"])
        if problems:
            raise _SlackError(
                "invalid_blocks",
                errors=problems,
                response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
            )
    text = params.get("text")
    if text is not None:
        content["text"] = str(text)
    if not any(content.get(name) for name in ("text", "blocks", "attachments")):
        raise _SlackError("no_text")
    if len(content.get("text", "")) > _MAX_TEXT:
        raise _SlackError("msg_too_long")
    return content


def _block_problems(blocks: Any) -> list[str]:
    """Slack's Block Kit limits that a bot message can break, as Slack words the errors."""
    if not isinstance(blocks, list):
        return ["must provide an array [json-pointer:/blocks]"]
    problems: list[str] = []
    if len(blocks) > 50:
        problems.append("no more than 50 items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        at = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            problems.append(f"missing required field: type [json-pointer:{at}]")
            continue
        _too_long(problems, block.get("block_id"), 255, f"{at}/block_id")
        kind = block["type"]
        if kind == "section":
            _section_problems(problems, block, at)
        elif kind == "header":
            _text_problems(problems, block.get("text"), 150, f"{at}/text", plain_only=True)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                problems.append(f"must provide at least 1 item [json-pointer:{at}/elements]")
                continue
            if len(elements) > 25:
                problems.append(f"no more than 25 items allowed [json-pointer:{at}/elements]")
            for j, element in enumerate(elements):
                _element_problems(problems, element, f"{at}/elements/{j}")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"must provide 1 to 10 items [json-pointer:{at}/elements]")
    return problems


def _section_problems(problems: list[str], block: dict[str, Any], at: str) -> None:
    if "text" not in block and "fields" not in block:
        problems.append(f"must provide either text or fields [json-pointer:{at}]")
    if "text" in block:
        _text_problems(problems, block["text"], 3000, f"{at}/text")
    fields = block.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > 10:
            problems.append(f"no more than 10 items allowed [json-pointer:{at}/fields]")
        else:
            for j, item in enumerate(fields):
                _text_problems(problems, item, 2000, f"{at}/fields/{j}")
    if "accessory" in block:
        _element_problems(problems, block["accessory"], f"{at}/accessory")


def _element_problems(problems: list[str], element: Any, at: str) -> None:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        problems.append(f"missing required field: type [json-pointer:{at}]")
        return
    _too_long(problems, element.get("action_id"), 255, f"{at}/action_id")
    if element["type"] == "button":
        _text_problems(problems, element.get("text"), 75, f"{at}/text", plain_only=True)
        _too_long(problems, element.get("value"), 2000, f"{at}/value")


def _text_problems(
    problems: list[str], text: Any, limit: int, at: str, *, plain_only: bool = False
) -> None:
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(text, dict) or text.get("type") not in kinds:
        problems.append(
            f"must be a valid text object of type {'|'.join(kinds)} [json-pointer:{at}]"
        )
        return
    value = text.get("text")
    if not isinstance(value, str) or not value:
        problems.append(f"must be more than 0 characters [json-pointer:{at}/text]")
        return
    _too_long(problems, value, limit, f"{at}/text")


def _too_long(problems: list[str], value: Any, limit: int, at: str) -> None:
    if isinstance(value, str) and len(value) > limit:
        problems.append(f"must be less than {limit + 1} characters [json-pointer:{at}]")


def _public(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message as Slack returns it: no `thread_ts` key on top-level messages."""
    return {k: v for k, v in message.items() if not (k == "thread_ts" and v is None)}


def _short(params: dict[str, Any], limit: int = 300) -> str:
    text = json.dumps(params, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
