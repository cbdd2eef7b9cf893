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
- `response_url`s accept at most 5 posts, then answer 404 `used_url`;
- chat.postMessage to a user ID posts in the app's DM with that user (a `D…` channel, answered
  as `channel`), as Slack does for a bot token;
- views.open / views.update / views.publish (no scope needed): a `trigger_id` must be one this
  fake issued (`issue_trigger_id`), used once, within 3 s (`invalid_arguments`,
  `exchanged_trigger_id`, `expired_trigger_id`); views.update checks `hash` (`hash_conflict`);
  each view is checked against the modal / Home tab limits (≤ 100 blocks, a 24-character
  title, `private_metadata` ≤ 3000, select menus ≤ 100 options, unique block ids...) and
  refused with `invalid_arguments` and json-pointer messages, as Slack does. Views are kept,
  with a fresh `id` and `hash`, for the tests to submit (`view`, `latest_view`, `home_view`).

- files: the three steps of `files_upload_v2` — `files.getUploadURLExternal` (`filename`,
  `length`; scope `files:write`) gives an `upload_url` on this server and a `file_id`; a POST of
  the bytes there (answered `OK - <length>`, 404 for an unknown or used URL); then
  `files.completeUploadExternal` (`files` as a JSON list of `{"id", "title"}`, `channel_id`,
  `thread_ts`, `initial_comment`) shares them (`file_not_found` for an id not uploaded, the
  channel checks of chat.postMessage). Shared files are kept with their content (`files`).

Not modelled: rate limits by themselves (inject them), channel names instead of IDs, reactions,
conversations.* methods, what a user types into a view (tests put it in the submission).
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
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
_RESPONSE_URL_MAX_USES = 5  # Slack: up to 5 responses per response_url (within 30 minutes)
_MAX_TEXT = 40_000
_TS = re.compile(r"^\d+\.\d+$")
#: Slack: a trigger_id is good for one use within 3 seconds.
TRIGGER_TTL_S = 3.0
_MAX_MESSAGE_BLOCKS = 50
_MAX_VIEW_BLOCKS = 100
_MAX_VIEW_BYTES = 250_000
_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")


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
    `trigger_ttl_s`: how long an issued trigger_id is good for (Slack: 3 s).
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
        trigger_ttl_s: float = TRIGGER_TTL_S,
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
        self.trigger_ttl_s = trigger_ttl_s
        self._triggers: dict[str, float] = {}
        self._used_triggers: set[str] = set()
        self._views: dict[str, dict[str, Any]] = {}
        #: file id → {"filename", "length", "content"} of uploads not yet completed.
        self._uploads: dict[str, dict[str, Any]] = {}
        #: every shared file: id, filename, title, content (text), channel, thread_ts,
        #: initial_comment, in the order shared.
        self.files: list[dict[str, Any]] = []
        self._file_serial = 0
        self._home_views: dict[str, str] = {}
        self._view_serial = 0
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 at a free port."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{key}", self._response)
        app.router.add_post("/upload/{file_id}", self._upload)
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

    def issue_trigger_id(self) -> str:
        """A fresh `trigger_id`, as Slack puts in a slash command or an interaction: good for
        one views.open within `trigger_ttl_s` seconds from now."""
        self._view_serial += 1
        trigger = f"{int(time.time())}.{self._view_serial:09d}.fake{self._view_serial:024x}"
        self._triggers[trigger] = time.monotonic()
        return trigger

    def dm_channel(self, user_id: str) -> str:
        """The ID of the app's DM with `user_id` (where a post to the user ID lands)."""
        return "D" + user_id[1:]

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

    def view(self, view_id: str) -> dict[str, Any]:
        """A view as it is now (opened, updated or published), as Slack would send it back."""
        stored = self._views[view_id]
        copy: dict[str, Any] = json.loads(json.dumps(stored))  # callers may change theirs
        del copy["_serial"]
        return copy

    def latest_view(self) -> dict[str, Any]:
        """The modal most recently opened or updated by views.open / views.update."""
        modals = [v for v in self._views.values() if v["type"] == "modal"]
        if not modals:
            raise LookupError(f"no view was opened\n{self.summary()}")
        return self.view(max(modals, key=lambda v: int(v["_serial"]))["id"])

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        """The Home tab last published for `user_id`, or None."""
        view_id = self._home_views.get(user_id)
        return None if view_id is None else self.view(view_id)

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
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
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
        if _USER_ID.match(channel):
            channel = self.dm_channel(channel)  # a bot posting to a user writes in its DM
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

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = str(params.get("trigger_id") or "")
        issued = self._triggers.get(trigger)
        if issued is None:
            raise _SlackError(
                "invalid_arguments", response_metadata={"messages": ["invalid `trigger_id`"]}
            )
        if trigger in self._used_triggers:
            raise _SlackError("exchanged_trigger_id")
        if time.monotonic() - issued > self.trigger_ttl_s:
            raise _SlackError("expired_trigger_id")
        view = _view_param(params, "modal")
        self._used_triggers.add(trigger)
        return {"view": self._store_view(view, view_id=None)}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id = str(params.get("view_id") or "")
        stored = self._views.get(view_id)
        if stored is None:
            raise _SlackError("not_found")
        wanted = params.get("hash")
        if wanted and wanted != stored["hash"]:
            raise _SlackError("hash_conflict")
        view = _view_param(params, "modal")
        return {"view": self._store_view(view, view_id=view_id)}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user = str(params.get("user_id") or "")
        if not _USER_ID.match(user):
            raise _SlackError("invalid_arguments", response_metadata={"messages": ["user_id"]})
        view = _view_param(params, "home")
        stored = self._store_view(view, view_id=self._home_views.get(user))
        self._home_views[user] = stored["id"]
        return {"view": stored}

    def _store_view(self, view: dict[str, Any], *, view_id: str | None) -> dict[str, Any]:
        self._view_serial += 1
        view_id = view_id or f"V0FAKE{self._view_serial:05d}"
        stored = {
            "id": view_id,
            "team_id": self.team_id,
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{self._view_serial:08d}",
            "clear_on_close": False,
            "notify_on_close": False,
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
            **view,
            "_serial": self._view_serial,
        }
        self._views[view_id] = stored
        return {k: v for k, v in stored.items() if k != "_serial"}

    def _get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = str(params.get("filename") or "")
        length = str(params.get("length") or "")
        if not filename or not length.isdigit() or int(length) < 1:
            raise _SlackError("invalid_arguments")
        self._file_serial += 1
        file_id = f"F{self._file_serial:08d}"
        self._uploads[file_id] = {"filename": filename, "length": int(length), "content": None}
        return {
            "upload_url": f"{self.api_url.removesuffix('/api/')}/upload/{file_id}",
            "file_id": file_id,
        }

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self._uploads.get(request.match_info["file_id"])
        if upload is None or upload["content"] is not None:
            return web.Response(status=404, text="not found")
        data = await request.read()
        upload["content"] = data
        return web.Response(text=f"OK - {len(data)}")

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("files")
        try:
            items = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise _SlackError("invalid_arguments") from None
        if not isinstance(items, list) or not items:
            raise _SlackError("invalid_arguments")
        channel = _str_or_none(params.get("channel_id"))
        if channel:
            self._check_channel(channel)
        thread_ts = _thread_ts(params)
        shared = []
        for item in items:
            upload = self._uploads.get(str(item.get("id")))
            if upload is None or upload["content"] is None:
                raise _SlackError("file_not_found")
            if len(upload["content"]) != upload["length"]:
                raise _SlackError("file_upload_size_mismatch")
            shared.append((str(item["id"]), upload, item.get("title") or upload["filename"]))
        answer = []
        for file_id, upload, title in shared:
            del self._uploads[file_id]
            self.files.append(
                {
                    "id": file_id,
                    "filename": upload["filename"],
                    "title": title,
                    "content": upload["content"].decode("utf-8"),
                    "channel": channel,
                    "thread_ts": thread_ts,
                    "initial_comment": params.get("initial_comment"),
                }
            )
            answer.append({"id": file_id, "title": title, "name": upload["filename"]})
        return {"files": answer}

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
        problems = block_problems(content["blocks"])
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


def block_problems(
    blocks: Any, *, max_blocks: int = _MAX_MESSAGE_BLOCKS, at: str = "/blocks"
) -> list[str]:
    """What Slack would refuse in a message's (or, with `max_blocks=100`, a view's) blocks: the
    Block Kit limits an app can break, one message per problem as Slack words them (empty when
    Slack would take them). Renderer tests use it too."""
    if not isinstance(blocks, list):
        return [f"must provide an array [json-pointer:{at}]"]
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(f"no more than {max_blocks} items allowed [json-pointer:{at}]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        here = f"{at}/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            problems.append(f"missing required field: type [json-pointer:{here}]")
            continue
        block_id = block.get("block_id")
        _too_long(problems, block_id, 255, f"{here}/block_id")
        if isinstance(block_id, str):
            if block_id in seen_ids:
                problems.append(f"duplicate block_id [json-pointer:{here}/block_id]")
            seen_ids.add(block_id)
        kind = block["type"]
        if kind == "section":
            _section_problems(problems, block, here)
        elif kind == "header":
            _text_problems(problems, block.get("text"), 150, f"{here}/text", plain_only=True)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                problems.append(f"must provide at least 1 item [json-pointer:{here}/elements]")
                continue
            if len(elements) > 25:
                problems.append(f"no more than 25 items allowed [json-pointer:{here}/elements]")
            action_ids = [e.get("action_id") for e in elements if isinstance(e, dict)]
            if len(set(action_ids)) != len(action_ids):
                problems.append(f"duplicate action_id [json-pointer:{here}/elements]")
            for j, element in enumerate(elements):
                _element_problems(problems, element, f"{here}/elements/{j}")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"must provide 1 to 10 items [json-pointer:{here}/elements]")
            else:
                for j, item in enumerate(elements):
                    if isinstance(item, dict) and item.get("type") == "image":
                        continue
                    _text_problems(problems, item, 3000, f"{here}/elements/{j}")
        elif kind == "input":
            _input_problems(problems, block, here)
    return problems


def _input_problems(problems: list[str], block: dict[str, Any], at: str) -> None:
    _text_problems(problems, block.get("label"), 2000, f"{at}/label", plain_only=True)
    if "hint" in block:
        _text_problems(problems, block["hint"], 2000, f"{at}/hint", plain_only=True)
    element = block.get("element")
    if not isinstance(element, dict):
        problems.append(f"missing required field: element [json-pointer:{at}]")
        return
    _element_problems(problems, element, f"{at}/element")


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
    kind = element["type"]
    if "placeholder" in element:
        _text_problems(problems, element["placeholder"], 150, f"{at}/placeholder", plain_only=True)
    if kind == "button":
        _text_problems(problems, element.get("text"), 75, f"{at}/text", plain_only=True)
        _too_long(problems, element.get("value"), 2000, f"{at}/value")
    elif kind in ("static_select", "checkboxes"):
        limit = 100 if kind == "static_select" else 10
        options = element.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= limit:
            problems.append(f"must provide 1 to {limit} items [json-pointer:{at}/options]")
            return
        for j, option in enumerate(options):
            _option_problems(problems, option, f"{at}/options/{j}", plain_only=kind != "checkboxes")
        initial = element.get("initial_option")
        if initial is not None and initial not in options:
            problems.append(
                f"must be one of the provided options [json-pointer:{at}/initial_option]"
            )
    elif kind == "plain_text_input":
        for name in ("max_length", "min_length"):
            length = element.get(name)
            if length is not None and (not isinstance(length, int) or not 0 <= length <= 3000):
                problems.append(f"must be between 0 and 3000 [json-pointer:{at}/{name}]")


def _option_problems(problems: list[str], option: Any, at: str, *, plain_only: bool) -> None:
    if not isinstance(option, dict):
        problems.append(f"must be an option object [json-pointer:{at}]")
        return
    _text_problems(problems, option.get("text"), 75, f"{at}/text", plain_only=plain_only)
    value = option.get("value")
    if not isinstance(value, str) or not value:
        problems.append(f"must be more than 0 characters [json-pointer:{at}/value]")
    _too_long(problems, value, 150, f"{at}/value")


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


def _view_param(params: dict[str, Any], kind: str) -> dict[str, Any]:
    """The `view` argument of a views.* call, checked like Slack checks it."""
    view = params.get("view")
    if isinstance(view, str):
        if len(view.encode()) > _MAX_VIEW_BYTES:
            raise _SlackError("view_too_large")
        try:
            view = json.loads(view)
        except ValueError:
            raise _SlackError("invalid_arguments") from None
    if not isinstance(view, dict):
        raise _SlackError("invalid_arguments", response_metadata={"messages": ["view"]})
    if len(json.dumps(view).encode()) > _MAX_VIEW_BYTES:
        raise _SlackError("view_too_large")
    problems = view_problems(view, kind)
    if problems:
        raise _SlackError(
            "invalid_arguments",
            response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
        )
    return view


def view_problems(view: dict[str, Any], kind: str) -> list[str]:
    """What Slack would refuse in a `kind` view ("modal" or "home"), as `block_problems`."""
    problems: list[str] = []
    if view.get("type") != kind:
        problems.append(f"must be {kind} [json-pointer:/view/type]")
    for name in ("callback_id", "external_id"):
        _too_long(problems, view.get(name), 255, f"/view/{name}")
    _too_long(problems, view.get("private_metadata"), 3000, "/view/private_metadata")
    view_blocks = view.get("blocks")
    problems += block_problems(view_blocks, max_blocks=_MAX_VIEW_BLOCKS, at="/view/blocks")
    if kind == "modal":
        _text_problems(problems, view.get("title"), 24, "/view/title", plain_only=True)
        for name in ("submit", "close"):
            if name in view:
                _text_problems(problems, view[name], 24, f"/view/{name}", plain_only=True)
        has_input = isinstance(view_blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in view_blocks
        )
        if has_input and "submit" not in view:
            problems.append("submit is required when an input block is used [json-pointer:/view]")
    return problems


def _public(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message as Slack returns it: no `thread_ts` key on top-level messages."""
    return {k: v for k, v in message.items() if not (k == "thread_ts" and v is None)}


def _short(params: dict[str, Any], limit: int = 300) -> str:
    text = json.dumps(params, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
