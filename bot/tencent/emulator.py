"""A local Room Engine REST server that answers like Tencent's, for tests, demos and benchmarks.

It serves, under `/v4/room_engine_http_srv/`, `update_room_info`, `get_room_info`, `create_room`,
`destroy_room` and the member APIs (`get_room_member_list`, `kick_user_out`, `ban_room_member`,
`unban_room_member`, `get_banned_member_list`), under `/v4/room_engine_http_mic/` the six seat APIs
(`get_seat_list`, `lock_seat`, `kick_user_off_seat`, `pick_user_on_seat`, `switch_seat`,
`move_user_to_seat`), and under `/v4/room_config/` the callback configuration (`set_callback`,
`update_callback`, `get_callback`, `delete_callback`; one configuration per SDKAppID). It rejects
what the real service rejects: a missing or unknown `sdkappid`, a non-admin `identifier`, a UserSig
that is invalid, expired, or made for another app or user (the matching 70xxx codes), a missing or
out-of-range `random`, a `contenttype` other than `json`, a body that is not JSON (60003), an
unknown path (60009), fields of the wrong type or over their byte limits (100002, naming the field),
unknown or destroyed rooms (100004), and more than `rate_limit_per_api` calls per second per API
(60007, sliding one-second window).

This module is the server: routing, credentials, the rate limit, injected faults and the record
of requests. The APIs themselves live in one module per family, each documenting where it is
strict because the reference is silent: rooms and demo rooms (`emulator_rooms`), members
(`emulator_member_api`, state in `emulator_members`), seats (`emulator_seat_api`, state in
`emulator_seats`) and the callback configuration (`emulator_config`); their shared state is
`emulator_base.EmulatorCore`.

Rooms have members (`MemberList` in a seeded room; the demo rooms come with a few) and, with
`IsSeatEnabled`, seats (`SeatList`; `town-hall` has speakers on its seats). Since no REST API
makes anyone join or sit down, tests and demos use `member_enter()` / `member_leave()` and
`take_seat()` / `leave_seat()`, and change a room "from outside" with `outside_update()` or
through the REST API as one of `other_admins`.

Callbacks (reference §5) are posted the way Room Engine would when rooms change: to the
configuration made through `v4/room_config/` (only its commands), or else to `callback_url` (all
commands). They go out after the API answer, in the background, never delaying or failing it;
each attempt is kept in `callbacks`. See `bot.tencent.emulator_callbacks`.

Faults can be injected at random rates (100001, HTTP 502, a request that never answers) or
scripted per command with `script()`, so every client path can be provoked deterministically.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from bot.models.apis import COMMANDS, CONFIG_PATH, SERVICE_PATH, SERVICES
from bot.tencent.emulator_base import Caller, Events, Handler
from bot.tencent.emulator_callbacks import REST_PLATFORM, url_problem
from bot.tencent.emulator_config import CallbackConfigCommands
from bot.tencent.emulator_errors import Refusal
from bot.tencent.emulator_member_api import MemberCommands
from bot.tencent.emulator_rooms import DEMO_ROOMS, RoomCommands
from bot.tencent.emulator_seat_api import SeatCommands
from bot.tencent.usersig import VerifyReason, decode_usersig, verify_usersig

__all__ = ["DEMO_ROOMS", "DEMO_SDKAPPID", "RecordedRequest", "RoomEngineEmulator"]

#: The path prefix of the room APIs.
SERVICE_PREFIX: Final = SERVICE_PATH + "/"
#: The path prefix of the callback-configuration APIs.
CONFIG_PREFIX: Final = CONFIG_PATH + "/"
_SERVICES: Final = {path + "/": commands for path, commands in SERVICES.items()}

#: The SDKAppID `roombot emulator` uses when TENCENT_SDKAPPID is not set (Tencent's doc example).
DEMO_SDKAPPID: Final = 1400000000

_SIG_CODES: Final[dict[VerifyReason, int]] = {
    VerifyReason.EMPTY: 70002,
    VerifyReason.MALFORMED: 70003,
    VerifyReason.BAD_VERSION: 70004,
    VerifyReason.BAD_SIGNATURE: 70009,
    VerifyReason.EXPIRED: 70001,
    VerifyReason.WRONG_SDKAPPID: 70014,
    VerifyReason.WRONG_IDENTIFIER: 70013,
}

# ErrorInfo for injected codes, in the terse style of Tencent's own messages.
_INJECTED_INFO: Final[dict[int, str]] = {
    100001: "Internal server error, please retry.",
    60007: "REST API frequency limit exceeded",
    60011: "SDKAppID frequency limit exceeded",
    60018: "Too many requests",
    60019: "Too many requests",
}

_MAX_RANDOM: Final = 2**32 - 1
_NOT_JSON: Final = object()


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator answered (or is still hanging on), for tests to inspect."""

    command: str
    query: dict[str, str]  # the usersig value replaced by "***"
    body: Any  # parsed JSON, or None when the body was not JSON
    error_code: int | None  # ErrorCode answered; None for HTTP 502 or a hang
    request_id: str | None
    http_status: int | None  # None while (or because) the request hung


class RoomEngineEmulator(RoomCommands, MemberCommands, SeatCommands, CallbackConfigCommands):
    """An in-process Room Engine server for one SDKAppID; see the module docstring.

    `admin_id` and each of `other_admins` are App administrators (UserSigs signed with
    `secret_key`); calls made as another admin show up in callbacks under that name, which is how
    a demo changes a room "from outside". `callback_url` receives every callback while no
    configuration was made through `v4/room_config/`; `callback_token` adds `Sign` and
    `RequestTime` to each callback URL. With `callback_bools_as_strings`, UpdateRoomInfo callbacks
    carry their booleans as the strings "true"/"false" (Tencent's sample does so). `seat_limit`
    is the most seats a room may have (`MaxSeatCount`), standing for the app's package.
    """

    def __init__(
        self,
        *,
        sdkappid: int,
        secret_key: str,
        admin_id: str = "administrator",
        other_admins: Iterable[str] = (),
        rooms: Iterable[str | Mapping[str, Any]] = (),
        rate_limit_per_api: int = 200,
        latency_s: float = 0.0,
        fail_rate: float = 0.0,
        http_502_rate: float = 0.0,
        hang_rate: float = 0.0,
        callback_url: str | None = None,
        callback_token: str | None = None,
        callback_timeout_s: float = 2.0,
        callback_bools_as_strings: bool = True,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        max_recorded: int = 100_000,
        seat_limit: int = 16,
    ) -> None:
        for name, rate in (
            ("fail_rate", fail_rate),
            ("http_502_rate", http_502_rate),
            ("hang_rate", hang_rate),
        ):
            if not 0.0 <= rate <= 1.0 or math.isnan(rate):
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        if fail_rate + http_502_rate + hang_rate > 1.0:
            raise ValueError("fail, 502 and hang rates must add up to at most 1")
        if latency_s < 0:
            raise ValueError("latency must not be negative")
        if rate_limit_per_api < 1:
            raise ValueError("rate_limit_per_api must be at least 1")
        if callback_url is not None:
            problem = url_problem(callback_url)
            if problem:
                raise ValueError(f"callback URL {problem}")
        super().__init__(
            sdkappid=sdkappid,
            admin_id=admin_id,
            other_admins=other_admins,
            callback_url=callback_url,
            callback_token=callback_token,
            callback_timeout_s=callback_timeout_s,
            callback_bools_as_strings=callback_bools_as_strings,
            clock=clock,
            max_recorded=max_recorded,
            seat_limit=seat_limit,
        )
        self._admins = frozenset({admin_id, *self.other_admins})
        self._secret_key = secret_key
        self.rate_limit_per_api = rate_limit_per_api
        self.latency_s = latency_s
        self.fail_rate = fail_rate
        self.http_502_rate = http_502_rate
        self.hang_rate = hang_rate
        self._monotonic = monotonic
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not cryptography
        self._max_recorded = max_recorded
        self.requests: list[RecordedRequest] = []
        self.rate_limited = 0
        self._scripts: dict[str, deque[int | str]] = {}
        self._windows: dict[str, deque[float]] = {name: deque() for name in COMMANDS}
        self._good_sigs: dict[str, tuple[str, int]] = {}  # sig -> (identifier, expires at)
        self._seq = 0
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

        for room in rooms:
            if isinstance(room, str):
                self.add_room(room)
            else:
                fields = dict(room)
                room_id = fields.pop("RoomId", None)
                if not isinstance(room_id, str):
                    raise ValueError(f"a seeded room needs a string RoomId: {room!r}")
                self.add_room(room_id, **fields)

        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    def __repr__(self) -> str:
        return (
            f"RoomEngineEmulator(sdkappid={self.sdkappid}, admin_id={self.admin_id!r}, "
            f"rooms={len(self.rooms)}, base_url={self._base_url!r})"
        )

    def script(self, command: str, outcomes: Sequence[int | str]) -> None:
        """Queue deterministic outcomes for the next calls of `command` ("*" for any command).

        An int answers that ErrorCode; "502" answers HTTP 502; "hang" never answers (until the
        server stops); "ok" behaves normally. Outcomes are consumed in order, after the SDKAppID
        and rate-limit checks and before the UserSig and body are looked at.
        """
        if command != "*" and command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}")
        for outcome in outcomes:
            if not isinstance(outcome, int) and outcome not in {"ok", "502", "hang"}:
                raise ValueError(f"unknown scripted outcome {outcome!r}")
        self._scripts.setdefault(command, deque()).extend(outcomes)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving on `host:port` (0 picks a free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        await self._callbacks.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = "127.0.0.1" if bound_host in {"0.0.0.0", "::"} else bound_host  # noqa: S104
        if ":" in shown:
            shown = f"[{shown}]"
        self._base_url = f"http://{shown}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        """Stop serving; hanging requests are released (answered 503) first.

        Callbacks still queued get up to a second to go out; the rest are cancelled and logged.
        """
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._callbacks.close(grace_s=1.0)

    @property
    def base_url(self) -> str:
        """`http://host:port` of the running server."""
        if self._base_url is None:
            raise RuntimeError("the emulator has not been started")
        return self._base_url

    async def __aenter__(self) -> RoomEngineEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- one request ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._seq += 1
        request_id = f"Id-{uuid.uuid4().hex}-O-Seq-{self._seq}"
        service, command = _split_path(request.path)
        query = {key: request.query.get(key, "") for key in request.query}
        raw = await request.read()
        body = _parse_json(raw)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)

        def record(code: int | None, status: int | None) -> None:
            shown = {k: ("***" if k.lower() == "usersig" else v) for k, v in query.items()}
            entry = RecordedRequest(
                command=command,
                query=shown,
                body=None if body is _NOT_JSON else body,
                error_code=code,
                request_id=request_id if status == 200 else None,
                http_status=status,
            )
            if len(self.requests) >= self._max_recorded:
                del self.requests[: self._max_recorded // 2]
            self.requests.append(entry)

        events: list[tuple[dict[str, Any], Caller]] = []
        try:
            fault = self._admit(request.method, service, command, query)
            if fault == "502":
                record(None, 502)
                return web.Response(status=502, text="502 Bad Gateway")
            if fault == "hang":
                record(None, None)
                await self._stopping.wait()
                return web.Response(status=503, text="emulator stopping")
            if isinstance(fault, int):
                raise Refusal(fault, _INJECTED_INFO.get(fault, f"injected error {fault}"))
            identifier = self._authenticate(query)
            if body is _NOT_JSON or not isinstance(body, dict):
                raise Refusal(60003, "JSON parse error: the body must be a JSON object")
            caller = Caller(identifier, request.remote or "127.0.0.1", REST_PLATFORM)
            data = self._dispatch(command, body, caller, events)
        except Refusal as exc:
            if exc.code == 60007:
                self.rate_limited += 1
            record(exc.code, 200)
            return _answer(request_id, exc.code, exc.info)
        record(0, 200)
        response = _answer(request_id, 0, "", data)
        if any(self.callback_target(str(event["CallbackCommand"])) for event, _ in events):
            # Room Engine calls back after it has answered: send the answer first.
            await response.prepare(request)
            await response.write_eof()
            for event, event_caller in events:
                self._emit(event, event_caller)
        return response

    def _admit(
        self, method: str, service: str, command: str, query: Mapping[str, str]
    ) -> int | str | None:
        """Path, SDKAppID and rate checks, then any injected fault for this call."""
        if command not in _SERVICES.get(service, ()):
            raise Refusal(60009, f"request resource error: unknown API path for {command!r}")
        if method != "POST":
            raise Refusal(60002, f"HTTP parse error: {method} is not allowed, use POST")
        raw_app = query.get("sdkappid", "")
        if not raw_app:
            raise Refusal(60012, "SDKAppID is missing from the query string")
        if not raw_app.isdigit():
            raise Refusal(60006, f"invalid SDKAppID {raw_app!r}")
        if int(raw_app) != self.sdkappid:
            raise Refusal(70020, f"SDKAppID {raw_app} not found")
        self._count_call(command)
        return self._injected_fault(command)

    def _count_call(self, command: str) -> None:
        # Sliding one-second window of accepted calls; refused calls do not use up the budget.
        window = self._windows[command]
        now = self._monotonic()
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.rate_limit_per_api:
            raise Refusal(
                60007,
                f"REST API frequency limit exceeded: at most {self.rate_limit_per_api} "
                f"{command} calls per second",
            )
        window.append(now)

    def _injected_fault(self, command: str) -> int | str | None:
        for key in (command, "*"):
            queue = self._scripts.get(key)
            if queue:
                outcome = queue.popleft()
                return None if outcome == "ok" else outcome
        if self.hang_rate or self.http_502_rate or self.fail_rate:
            draw = self._rng.random()
            if draw < self.hang_rate:
                return "hang"
            if draw < self.hang_rate + self.http_502_rate:
                return "502"
            if draw < self.hang_rate + self.http_502_rate + self.fail_rate:
                return 100001
        return None

    def _authenticate(self, query: Mapping[str, str]) -> str:
        """Check the query's credentials; returns the identifier (an App administrator)."""
        if query.get("contenttype") != "json":
            raise Refusal(60002, "HTTP parse error: contenttype must be json")
        raw_random = query.get("random", "")
        if not raw_random.isdigit() or int(raw_random) > _MAX_RANDOM:
            raise Refusal(
                60002,
                f"HTTP parse error: random must be an integer from 0 to {_MAX_RANDOM}",
            )
        identifier = query.get("identifier", "")
        if not identifier:
            raise Refusal(60004, "identifier is missing from the query string")
        self._check_usersig(query.get("usersig", ""), identifier)
        if identifier not in self._admins:
            raise Refusal(60010, f"{identifier!r} is not an App administrator")
        return identifier

    def _check_usersig(self, sig: str, identifier: str) -> None:
        now = int(self._clock())
        known = self._good_sigs.get(sig)
        if known is not None and known[0] == identifier and now <= known[1]:
            return  # verified before: skip the zlib/HMAC work (the client reuses one sig)
        result = verify_usersig(
            sig,
            sdkappid=self.sdkappid,
            secret_key=self._secret_key,
            identifier=identifier,
            now=now,
        )
        if not result.ok:
            raise Refusal(_SIG_CODES.get(result.reason, 70003), f"UserSig: {result.detail}")
        if len(self._good_sigs) > 256:
            self._good_sigs.clear()
        doc_expiry = _expiry_of(sig)
        if doc_expiry is not None:
            self._good_sigs[sig] = (identifier, doc_expiry)

    # -- the commands ---------------------------------------------------------------------------

    def _dispatch(
        self, command: str, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        """Carry out one validated call; callbacks it causes are appended to `events`."""
        handlers: dict[str, Handler] = {
            "update_room_info": self._update_room_info,
            "get_room_info": self._get_room_info,
            "create_room": self._create_room,
            "destroy_room": self._destroy_room,
            "get_room_member_list": self._get_room_member_list,
            "kick_user_out": self._kick_user_out,
            "ban_room_member": self._ban_room_member,
            "unban_room_member": self._unban_room_member,
            "get_banned_member_list": self._get_banned_member_list,
            "get_seat_list": self._get_seat_list,
            "lock_seat": self._lock_seat,
            "kick_user_off_seat": self._kick_user_off_seat,
            "pick_user_on_seat": self._pick_user_on_seat,
            "switch_seat": self._switch_seat,
            "move_user_to_seat": self._move_user_to_seat,
            "set_callback": self._set_callback,
            "update_callback": self._update_callback,
            "get_callback": self._get_callback,
            "delete_callback": self._delete_callback,
        }
        return handlers[command](body, caller, events)


# -- the request's plumbing (module functions: pure) -----------------------------------------


def _split_path(path: str) -> tuple[str, str]:
    """(service prefix, command) of a request path; ("", path) when no service matches."""
    for prefix in _SERVICES:
        if path.startswith(prefix):
            return prefix, path[len(prefix) :]
    return "", path


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return _NOT_JSON
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


def _expiry_of(sig: str) -> int | None:
    try:
        doc = decode_usersig(sig)
        return int(doc["TLS.time"]) + int(doc["TLS.expire"])
    except (ValueError, KeyError, TypeError):
        return None


def _answer(
    request_id: str, code: int, info: str, data: dict[str, Any] | None = None
) -> web.Response:
    payload: dict[str, Any] = {
        "ActionStatus": "OK" if code == 0 else "FAIL",
        "ErrorCode": code,
        "ErrorInfo": info,
        "RequestId": request_id,
    }
    if data is not None:
        payload["Response"] = data
    return web.Response(
        body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
        charset="utf-8",
    )
