"""A local Room Engine REST server that answers like Tencent's, for tests, demos and benchmarks.

It serves `update_room_info`, `get_room_info`, `create_room` and `destroy_room` under
`/v4/room_engine_http_srv/`, and rejects what the real service rejects: a missing or unknown
`sdkappid`, a non-admin `identifier`, a UserSig that is invalid, expired, or made for another app
or user (the matching 70xxx codes), a missing or out-of-range `random`, a `contenttype` other than
`json`, a body that is not JSON (60003), an unknown path (60009), fields of the wrong type or over
their byte limits (100002, naming the field), unknown rooms (100004), and more than
`rate_limit_per_api` calls per second per API (60007, sliding one-second window).

Faults can be injected at random rates (100001, HTTP 502, a request that never answers) or
scripted per command with `script()`, so every client path can be provoked deterministically.

Where the reference is silent the emulator is strict and says so: fields `update_room_info` cannot
change are refused (100002) rather than silently ignored, and creating an existing room answers
100003 (the reference has no create_room error table; this code is an assumption).
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

from bot.models import (
    PATCH_FIELDS,
    TakeSeatMode,
    custom_info_problem,
    max_member_count_problem,
    room_id_problem,
    room_name_problem,
)
from bot.tencent.usersig import VerifyReason, decode_usersig, verify_usersig

SERVICE_PREFIX: Final = "/v4/room_engine_http_srv/"
COMMANDS: Final = frozenset({"update_room_info", "get_room_info", "create_room", "destroy_room"})

#: The SDKAppID `roombot emulator` uses when TENCENT_SDKAPPID is not set (Tencent's doc example).
DEMO_SDKAPPID: Final = 1400000000

#: Rooms a demo starts with; `room-test` is the one every example in the docs uses.
DEMO_ROOMS: Final[tuple[dict[str, Any], ...]] = (
    {"RoomId": "room-test", "RoomName": "room-name-test"},
    {"RoomId": "standup", "RoomName": "Daily stand-up"},
    {"RoomId": "town-hall", "RoomName": "All-hands town hall", "MaxMemberCount": 1000},
    {
        "RoomId": "support-1",
        "RoomName": "Support queue 1",
        "IsSeatEnabled": True,
        "MaxSeatCount": 16,
        "TakeSeatMode": "ApplyToTake",
    },
)

#: Defaults of a freshly created Conference room (RoomName defaults to the RoomId).
_ROOM_DEFAULTS: Final[dict[str, Any]] = {
    "RoomType": "Conference",
    "CustomInfo": "",
    "RoomStatus": "Running",
    "TakeSeatMode": "None",
    "MaxMemberCount": 300,
    "MaxSeatCount": 0,
    "ScheduleStartTime": 0,
    "ScheduleEndTime": 0,
    "MemberCount": 0,
    "IsVideoDisabled": False,
    "IsAudioDisabled": False,
    "IsMessageDisabled": False,
    "IsScreenSharingDisabled": False,
    "IsCloudRecordingDisabled": False,
    "IsSeatEnabled": False,
}

# Fields create_room accepts beyond the updatable ones, with their JSON types.
_CREATE_ONLY_FIELDS: Final[dict[str, type]] = {
    "RoomType": str,
    "Owner_Account": str,
    "IsSeatEnabled": bool,
    "MaxSeatCount": int,
    "ScheduleStartTime": int,
    "ScheduleEndTime": int,
}
_READ_ONLY_FIELDS: Final = frozenset({"CreateTime", "RoomStatus", "MemberCount"})
_SEAT_MODES: Final = frozenset(mode.value for mode in TakeSeatMode)

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


class _Reject(Exception):
    """Answer this request with `code` and `info` (raised deep in validation, caught once)."""

    def __init__(self, code: int, info: str) -> None:
        super().__init__(info)
        self.code = code
        self.info = info


def _invalid(field: str, why: str) -> _Reject:
    return _Reject(100002, f"Invalid parameter {field}: {why}")


class RoomEngineEmulator:
    """An in-process Room Engine server for one SDKAppID; see the module docstring."""

    def __init__(
        self,
        *,
        sdkappid: int,
        secret_key: str,
        admin_id: str = "administrator",
        rooms: Iterable[str | Mapping[str, Any]] = (),
        rate_limit_per_api: int = 200,
        latency_s: float = 0.0,
        fail_rate: float = 0.0,
        http_502_rate: float = 0.0,
        hang_rate: float = 0.0,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        max_recorded: int = 100_000,
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
        self.sdkappid = sdkappid
        self.admin_id = admin_id
        self._secret_key = secret_key
        self.rate_limit_per_api = rate_limit_per_api
        self.latency_s = latency_s
        self.fail_rate = fail_rate
        self.http_502_rate = http_502_rate
        self.hang_rate = hang_rate
        self._clock = clock
        self._monotonic = monotonic
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not cryptography
        self._max_recorded = max_recorded

        self.rooms: dict[str, dict[str, Any]] = {}
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

    # -- set-up ---------------------------------------------------------------------------------

    def add_room(self, room_id: str, **fields: Any) -> None:
        """Create (or replace) a room directly, with the defaults a created room gets.

        Raises `ValueError` when a field is one create_room would refuse.
        """
        info = {"RoomId": room_id, "RoomType": "Conference", **fields}
        try:
            _check_room_info(info, creating=True)
        except _Reject as exc:
            raise ValueError(exc.info) from None
        self.rooms[room_id] = self._new_room(info)

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
        bound_host, bound_port = runner.addresses[0][:2]
        shown = "127.0.0.1" if bound_host in {"0.0.0.0", "::"} else bound_host  # noqa: S104
        if ":" in shown:
            shown = f"[{shown}]"
        self._base_url = f"http://{shown}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        """Stop serving; hanging requests are released (answered 503) first."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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
        path = request.path
        command = path[len(SERVICE_PREFIX) :] if path.startswith(SERVICE_PREFIX) else path
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

        try:
            fault = self._admit(request.method, command, query)
            if fault == "502":
                record(None, 502)
                return web.Response(status=502, text="502 Bad Gateway")
            if fault == "hang":
                record(None, None)
                await self._stopping.wait()
                return web.Response(status=503, text="emulator stopping")
            if isinstance(fault, int):
                raise _Reject(fault, _INJECTED_INFO.get(fault, f"injected error {fault}"))
            self._authenticate(query)
            if body is _NOT_JSON or not isinstance(body, dict):
                raise _Reject(60003, "JSON parse error: the body must be a JSON object")
            data = self._dispatch(command, body)
        except _Reject as exc:
            if exc.code == 60007:
                self.rate_limited += 1
            record(exc.code, 200)
            return _answer(request_id, exc.code, exc.info)
        record(0, 200)
        return _answer(request_id, 0, "", data)

    def _admit(self, method: str, command: str, query: Mapping[str, str]) -> int | str | None:
        """Path, SDKAppID and rate checks, then any injected fault for this call."""
        if command not in COMMANDS:
            raise _Reject(60009, f"request resource error: unknown API path for {command!r}")
        if method != "POST":
            raise _Reject(60002, f"HTTP parse error: {method} is not allowed, use POST")
        raw_app = query.get("sdkappid", "")
        if not raw_app:
            raise _Reject(60012, "SDKAppID is missing from the query string")
        if not raw_app.isdigit():
            raise _Reject(60006, f"invalid SDKAppID {raw_app!r}")
        if int(raw_app) != self.sdkappid:
            raise _Reject(70020, f"SDKAppID {raw_app} not found")
        self._count_call(command)
        return self._injected_fault(command)

    def _count_call(self, command: str) -> None:
        # Sliding one-second window of accepted calls; refused calls do not use up the budget.
        window = self._windows[command]
        now = self._monotonic()
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.rate_limit_per_api:
            raise _Reject(
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

    def _authenticate(self, query: Mapping[str, str]) -> None:
        if query.get("contenttype") != "json":
            raise _Reject(60002, "HTTP parse error: contenttype must be json")
        raw_random = query.get("random", "")
        if not raw_random.isdigit() or int(raw_random) > _MAX_RANDOM:
            raise _Reject(
                60002,
                f"HTTP parse error: random must be an integer from 0 to {_MAX_RANDOM}",
            )
        identifier = query.get("identifier", "")
        if not identifier:
            raise _Reject(60004, "identifier is missing from the query string")
        self._check_usersig(query.get("usersig", ""), identifier)
        if identifier != self.admin_id:
            raise _Reject(60010, f"{identifier!r} is not an App administrator")

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
            raise _Reject(_SIG_CODES.get(result.reason, 70003), f"UserSig: {result.detail}")
        if len(self._good_sigs) > 256:
            self._good_sigs.clear()
        doc_expiry = _expiry_of(sig)
        if doc_expiry is not None:
            self._good_sigs[sig] = (identifier, doc_expiry)

    # -- the commands ---------------------------------------------------------------------------

    def _dispatch(self, command: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if command == "update_room_info":
            info = _room_info_of(body)
            _check_room_info(info, creating=False)
            room = self._room(info["RoomId"])
            room.update({k: v for k, v in info.items() if k != "RoomId"})
            return None
        if command == "get_room_info":
            room = self._room(_room_id_of(body))
            return {"RoomInfo": dict(room)}
        if command == "create_room":
            info = _room_info_of(body)
            _check_room_info(info, creating=True)
            invitees = body.get("ScheduleInviteeList_Account", [])
            if not isinstance(invitees, list) or not all(isinstance(i, str) for i in invitees):
                raise _invalid("ScheduleInviteeList_Account", "must be a list of account IDs")
            if info["RoomId"] in self.rooms:
                raise _Reject(100003, f"room {info['RoomId']!r} already exists")
            self.rooms[info["RoomId"]] = self._new_room(info)
            return None
        # destroy_room
        room_id = _room_id_of(body)
        self._room(room_id)
        del self.rooms[room_id]
        return None

    def _room(self, room_id: str) -> dict[str, Any]:
        room = self.rooms.get(room_id)
        if room is None:
            raise _Reject(100004, f"room {room_id!r} does not exist")
        return room

    def _new_room(self, info: Mapping[str, Any]) -> dict[str, Any]:
        room: dict[str, Any] = {
            "RoomId": info["RoomId"],
            "RoomName": info["RoomId"],
            "Owner_Account": self.admin_id,
            **_ROOM_DEFAULTS,
            "CreateTime": int(self._clock()),
        }
        room.update(info)
        if room["IsSeatEnabled"] and room["TakeSeatMode"] == "None":
            room["TakeSeatMode"] = TakeSeatMode.FREE_TO_TAKE.value
        if room["ScheduleStartTime"] > room["CreateTime"]:
            room["RoomStatus"] = "NotStarted"
        return room


# -- validation (module functions: pure, shared by requests and seeding) ---------------------


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return _NOT_JSON
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


def _room_info_of(body: Mapping[str, Any]) -> dict[str, Any]:
    info = body.get("RoomInfo")
    if not isinstance(info, dict):
        raise _invalid("RoomInfo", "is required and must be a JSON object")
    return info


def _room_id_of(body: Mapping[str, Any]) -> str:
    room_id = body.get("RoomId")
    _check_room_id(room_id)
    assert isinstance(room_id, str)
    return room_id


def _check_room_id(value: Any) -> None:
    if value is None:
        raise _invalid("RoomId", "is required")
    if not isinstance(value, str):
        raise _invalid("RoomId", "must be a string")
    problem = room_id_problem(value)
    if problem:
        raise _invalid("RoomId", problem)


def _check_room_info(info: Mapping[str, Any], *, creating: bool) -> None:
    _check_room_id(info.get("RoomId"))
    if creating:
        room_type = info.get("RoomType")
        if room_type is None:
            raise _invalid("RoomType", "is required")
        if room_type != "Conference":
            raise _invalid("RoomType", f'must be "Conference", not {json.dumps(room_type)}')
    for name, value in info.items():
        if name == "RoomId" or (creating and name == "RoomType"):
            continue
        kind = PATCH_FIELDS.get(name) or (_CREATE_ONLY_FIELDS.get(name) if creating else None)
        if kind is None:
            if name in _CREATE_ONLY_FIELDS or name in _READ_ONLY_FIELDS:
                verb = "update_room_info" if not creating else "create_room"
                raise _invalid(name, f"cannot be set by {verb}")
            raise _invalid(name, "unknown field")
        _check_field(name, kind, value)


def _check_field(name: str, kind: type, value: Any) -> None:
    shown = json.dumps(value, ensure_ascii=False)
    if kind is bool:
        if not isinstance(value, bool):
            raise _invalid(name, f"must be a JSON boolean (true or false), not {shown}")
        return
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(name, f"must be an integer, not {shown}")
        problem = max_member_count_problem(value) if name == "MaxMemberCount" else None
        if problem is None and value < 0:
            problem = f"must not be negative, not {value}"
        if problem:
            raise _invalid(name, problem)
        return
    if not isinstance(value, str):
        raise _invalid(name, f"must be a string, not {shown}")
    problem = None
    if name == "RoomName":
        problem = room_name_problem(value)
    elif name == "CustomInfo":
        problem = custom_info_problem(value)
    elif name == "TakeSeatMode" and value not in _SEAT_MODES:
        problem = f"must be FreeToTake or ApplyToTake, not {shown}"
    elif name == "Owner_Account" and not value:
        problem = "must not be empty"
    if problem:
        raise _invalid(name, problem)


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
