"""A local Room Engine REST server that answers like Tencent's, for tests, demos and benchmarks.

It serves, under `/v4/room_engine_http_srv/`, `update_room_info`, `get_room_info`, `create_room`,
`destroy_room` and the member APIs (`get_room_member_list`, `kick_user_out`, `ban_room_member`,
`unban_room_member`, `get_banned_member_list`), and under `/v4/room_config/` the callback
configuration (`set_callback`, `update_callback`, `get_callback`, `delete_callback`; one
configuration per SDKAppID). It rejects what the real service rejects: a missing or unknown
`sdkappid`, a non-admin `identifier`, a UserSig that is invalid, expired, or made for another app
or user (the matching 70xxx codes), a missing or out-of-range `random`, a `contenttype` other than
`json`, a body that is not JSON (60003), an unknown path (60009), fields of the wrong type or over
their byte limits (100002, naming the field), unknown or destroyed rooms (100004), and more than
`rate_limit_per_api` calls per second per API (60007, sliding one-second window).

Rooms have members (`MemberList` in a seeded room; the demo rooms come with a few). Since no REST
API makes anyone join, tests and demos use `member_enter()` / `member_leave()`, and change a room
"from outside" with `outside_update()` or through the REST API as one of `other_admins`.

Callbacks (reference §5) are posted the way Room Engine would when rooms change: to the
configuration made through `v4/room_config/` (only its commands), or else to `callback_url` (all
commands). They go out after the API answer, in the background, never delaying or failing it;
each attempt is kept in `callbacks`. See `bot.tencent.emulator_callbacks`.

Faults can be injected at random rates (100001, HTTP 502, a request that never answers) or
scripted per command with `script()`, so every client path can be provoked deterministically.

Where the reference is silent the emulator is strict and says so:

* fields `update_room_info` cannot change are refused (100002) rather than silently ignored, and
  creating an existing room answers 100003 (no create_room error table was found; assumed);
* kick/ban/unban are all-or-nothing: if any account named is not a member (kick, ban) or not
  banned (unban), the whole call fails with 100005 naming them and nothing changes. The API
  reports no per-account results, so a partial success could not be told apart from a full one;
* kicking or banning the room owner is refused with 100006;
* banning someone who is not in the room is refused (100005), like kicking them; a ban removes
  the member (`CallbackAfterMemberLeave`, Type `Kicked`, like a kick) and blocks re-entry until
  `BannedUntil` = now + `Duration`; expired bans drop out of the banned list;
* `Reason` must not be empty; `Count` is at most 100 (no documented maximum); empty or
  duplicate `MemberList_Account` entries are refused (100002); `get_banned_member_list` reads
  its offset from `Offset` (the sample's name; the field table says `Next`);
* `set_callback` when a configuration exists answers 100300 (the code Live's set_callback
  documents); `get_callback` and `delete_callback` without one answer 100301 like
  `update_callback`; `Url` must be http(s) and `CallbackCommandList` must name at least one
  known command (the misspelled `Room.CallbackUpdateRoomInfo` of a doc sample is refused);
* destroying a room posts `CallbackAfterDestroyRoom` only, not a leave per member;
* an UpdateRoomInfo callback carries all eleven fields of the reference's list (as Tencent's
  sample does), not only the changed ones.
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
    LeaveType,
    TakeSeatMode,
    custom_info_problem,
    max_member_count_problem,
    room_id_problem,
    room_name_problem,
)
from bot.tencent.apis import COMMANDS, CONFIG_PATH, SERVICE_PATH, SERVICES
from bot.tencent.emulator_callbacks import (
    PLATFORMS,
    REST_PLATFORM,
    CallbackConfiguration,
    CallbackSender,
    SentCallback,
    callback_config_of,
    create_room_body,
    destroy_room_body,
    member_enter_body,
    member_leave_body,
    seat_info_changed_body,
    update_room_info_body,
    url_problem,
)
from bot.tencent.emulator_members import (
    Refusal,
    RoomMembers,
    accounts_of,
    banned_page_of,
    duration_of,
    invalid,
    member_page_of,
    reason_of,
    seed_members,
)
from bot.tencent.usersig import VerifyReason, decode_usersig, verify_usersig

#: The path prefix of the room APIs.
SERVICE_PREFIX: Final = SERVICE_PATH + "/"
#: The path prefix of the callback-configuration APIs.
CONFIG_PREFIX: Final = CONFIG_PATH + "/"
_SERVICES: Final = {path + "/": commands for path, commands in SERVICES.items()}

#: The SDKAppID `roombot emulator` uses when TENCENT_SDKAPPID is not set (Tencent's doc example).
DEMO_SDKAPPID: Final = 1400000000

#: Rooms a demo starts with; `room-test` is the one every example in the docs uses. Each has an
#: owner and a few members (`MemberList` is the emulator's seeding key, not a RoomInfo field).
DEMO_ROOMS: Final[tuple[dict[str, Any], ...]] = (
    {
        "RoomId": "room-test",
        "RoomName": "room-name-test",
        "Owner_Account": "alice",
        "MemberList": [
            {"Member_Account": "alice", "NameCard": "Alice Chen"},
            {"Member_Account": "bob", "NameCard": "Bob Okafor", "Role": "Admin"},
            {"Member_Account": "carol", "NameCard": "Carol Díaz"},
            {"Member_Account": "dave", "NameCard": "Dave"},
        ],
    },
    {
        "RoomId": "standup",
        "RoomName": "Daily stand-up",
        "Owner_Account": "erin",
        "MemberList": [
            {"Member_Account": "erin", "NameCard": "Erin"},
            {"Member_Account": "frank", "NameCard": "Frank"},
            {"Member_Account": "grace", "NameCard": "Grace"},
        ],
    },
    {
        "RoomId": "town-hall",
        "RoomName": "All-hands town hall",
        "MaxMemberCount": 1000,
        "Owner_Account": "ceo",
        "MemberList": [
            {"Member_Account": "ceo", "NameCard": "The CEO"},
            {"Member_Account": "host-1", "NameCard": "Host", "Role": "Admin"},
            *({"Member_Account": f"staff-{n}", "NameCard": f"Staff {n}"} for n in range(1, 7)),
        ],
    },
    {
        "RoomId": "support-1",
        "RoomName": "Support queue 1",
        "IsSeatEnabled": True,
        "MaxSeatCount": 16,
        "TakeSeatMode": "ApplyToTake",
        "Owner_Account": "agent-7",
        "MemberList": [
            {"Member_Account": "agent-7", "NameCard": "Support agent 7"},
            {"Member_Account": "customer-1042", "NameCard": "Customer 1042"},
        ],
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
_Events = list[tuple[dict[str, Any], "_Caller"]]
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


@dataclass(frozen=True)
class _Caller:
    """Who made an API call, for the callbacks it causes."""

    operator: str
    client_ip: str
    platform: str


class RoomEngineEmulator:
    """An in-process Room Engine server for one SDKAppID; see the module docstring.

    `admin_id` and each of `other_admins` are App administrators (UserSigs signed with
    `secret_key`); calls made as another admin show up in callbacks under that name, which is how
    a demo changes a room "from outside". `callback_url` receives every callback while no
    configuration was made through `v4/room_config/`; `callback_token` adds `Sign` and
    `RequestTime` to each callback URL. With `callback_bools_as_strings`, UpdateRoomInfo callbacks
    carry their booleans as the strings "true"/"false" (Tencent's sample does so).
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
        self.sdkappid = sdkappid
        self.admin_id = admin_id
        #: Further App administrators (see the class docstring).
        self.other_admins = tuple(dict.fromkeys(a for a in other_admins if a != admin_id))
        self._admins = frozenset({admin_id, *self.other_admins})
        self._secret_key = secret_key
        self.rate_limit_per_api = rate_limit_per_api
        self.latency_s = latency_s
        self.fail_rate = fail_rate
        self.http_502_rate = http_502_rate
        self.hang_rate = hang_rate
        self.callback_url = callback_url
        #: Whether callback URLs carry `Sign` and `RequestTime` (a token was given).
        self.callback_signed = bool(callback_token)
        self.callback_bools_as_strings = callback_bools_as_strings
        self._clock = clock
        self._monotonic = monotonic
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not cryptography
        self._max_recorded = max_recorded

        self.rooms: dict[str, dict[str, Any]] = {}
        #: Members and bans of each room, by RoomId.
        self.members: dict[str, RoomMembers] = {}
        #: The configuration made through `v4/room_config/`, if any.
        self.callback_config: CallbackConfiguration | None = None
        self.requests: list[RecordedRequest] = []
        self.rate_limited = 0
        self._callbacks = CallbackSender(
            sdkappid=sdkappid,
            token=callback_token,
            clock=clock,
            timeout_s=callback_timeout_s,
            max_recorded=max_recorded,
        )
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

        `MemberList` (account IDs, or objects like `get_room_member_list`'s with
        `Member_Account`, `NameCard`, `Role`, `Marks`, `CustomInfo`) seeds its members.
        Raises `ValueError` when a field is one create_room would refuse. Posts no callback.
        """
        seeded = fields.pop("MemberList", ())
        banned = fields.pop("BannedList", ())
        info = {"RoomId": room_id, "RoomType": "Conference", **fields}
        try:
            _check_room_info(info, creating=True)
        except Refusal as exc:
            raise ValueError(exc.info) from None
        if isinstance(seeded, str) or not isinstance(seeded, Iterable):
            raise ValueError(f"MemberList of {room_id!r} must be a list")
        room = self._new_room(info)
        members = RoomMembers(owner=room["Owner_Account"])
        seed_members(members, seeded)
        for ban in banned:
            members.bans[str(ban["Member_Account"])] = int(ban["BannedUntil"])
        room["MemberCount"] = len(members)
        self.rooms[room_id] = room
        self.members[room_id] = members

    def snapshot(self) -> list[dict[str, Any]]:
        """Every room as `add_room` (and the `rooms` option) takes it back: its settable fields,
        its members and its bans. For keeping a demo's rooms from one run to the next."""
        rooms = []
        for room_id, room in self.rooms.items():
            fields = {k: v for k, v in room.items() if k not in _READ_ONLY_FIELDS}
            if fields.get("TakeSeatMode") not in _SEAT_MODES:
                fields.pop("TakeSeatMode", None)  # "None": never set, and not settable
            members = self.members.get(room_id)
            if members is not None:
                fields["MemberList"] = [m.as_api() for m in members.members.values()]
                fields["BannedList"] = [
                    {"Member_Account": account, "BannedUntil": until}
                    for account, until in members.bans.items()
                ]
            rooms.append(fields)
        return rooms

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

    # -- callbacks, and changes that come from outside the REST API ----------------------------

    @property
    def callbacks(self) -> list[SentCallback]:
        """Every callback delivered or given up on so far, oldest first."""
        return self._callbacks.sent

    @property
    def callbacks_dropped(self) -> int:
        """Callbacks dropped because too many were already waiting."""
        return self._callbacks.dropped

    async def settle_callbacks(self, timeout_s: float = 10.0) -> None:
        """Wait until every callback queued so far has been posted or given up on.

        Raises `TimeoutError` after `timeout_s`. Needs a started emulator.
        """
        await self._callbacks.settle(timeout_s)

    def callback_target(self, command: str) -> str | None:
        """Where a `command` callback would go now: the configured URL if the configuration
        lists it, `callback_url` when nothing is configured, else nowhere (None)."""
        config = self.callback_config
        if config is not None:
            return config.url if command in config.commands else None
        return self.callback_url

    def member_enter(
        self,
        room_id: str,
        account: str,
        *,
        name_card: str = "",
        role: str | None = None,
        platform: str = "Web",
        client_ip: str = "127.0.0.1",
    ) -> None:
        """`account` enters the room (as a client SDK would), posting MemberEnter.

        The owner's role is Owner; others are Member unless `role` is "Admin". Raises `Refusal`:
        100004 for an unknown room, 100006 when the account is banned or the room is full,
        100002 when it is already a member.
        """
        caller = _Caller(account, client_ip, _platform(platform))
        room = self._room(room_id)
        members = self._members_of(room_id)
        now = self._clock()
        if account in members:
            raise invalid("Member_Account", f"{account!r} is already in room {room_id!r}")
        if members.is_banned(account, now):
            until = members.bans[account]
            raise Refusal(100006, f"{account!r} is banned from room {room_id!r} until {until}")
        if len(members) >= room["MaxMemberCount"]:
            raise Refusal(100006, f"room {room_id!r} is full ({room['MaxMemberCount']} members)")
        try:
            members.add(account, name_card=name_card, role=role)
        except ValueError as exc:
            raise invalid("Member_Account", str(exc)) from None
        room["MemberCount"] = len(members)
        body = member_enter_body(account, room_id, [account], len(members), self._event_ms())
        self._emit(body, caller)

    def member_leave(
        self,
        room_id: str,
        account: str,
        *,
        leave_type: str = LeaveType.LEAVE.value,
        reason: str = "",
        platform: str = "Web",
        client_ip: str = "127.0.0.1",
    ) -> None:
        """`account` leaves (Type `Leave`) or its heartbeat is lost (`Expired`); posts MemberLeave.

        Raises `Refusal` 100004 for an unknown room, 100005 when the account is not a member.
        """
        if leave_type not in {LeaveType.LEAVE.value, LeaveType.EXPIRED.value}:
            raise ValueError("leave_type must be Leave or Expired (kicks go through the API)")
        caller = _Caller(account, client_ip, _platform(platform))
        room = self._room(room_id)
        members = self._members_of(room_id)
        if account not in members:
            raise Refusal(100005, f"{account!r} is not a member of room {room_id!r}")
        members.remove([account])
        room["MemberCount"] = len(members)
        body = member_leave_body(
            account,
            room_id,
            [account],
            len(members),
            self._event_ms(),
            leave_type=leave_type,
            reason=reason,
        )
        self._emit(body, caller)

    def outside_update(
        self,
        room_id: str,
        operator: str,
        *,
        platform: str = "Web",
        client_ip: str = "127.0.0.1",
        **fields: Any,
    ) -> None:
        """Change a room as a client app or the Tencent console would, posting UpdateRoomInfo.

        `fields` are `update_room_info` fields by API name, validated the same way. Raises
        `Refusal` (100002, 100004) like the API.
        """
        if not operator:
            raise ValueError("an outside change needs an operator account")
        caller = _Caller(operator, client_ip, _platform(platform))
        info = {"RoomId": room_id, **fields}
        _check_room_info(info, creating=False)
        self._apply_update(info, caller)

    def seat_info_changed(
        self,
        room_id: str,
        seats: Sequence[Mapping[str, Any]],
        *,
        operator: str,
        platform: str = "Web",
        client_ip: str = "127.0.0.1",
    ) -> None:
        """Post `Mic.CallbackAfterSeatInfoChanged` with `seats` (`Index`, `Member_Account`,
        `IsTakenDisabled`, ...). The emulator keeps no seat state; raises `Refusal` 100004 for
        an unknown room."""
        caller = _Caller(operator, client_ip, _platform(platform))
        self._room(room_id)
        body = seat_info_changed_body(
            operator, room_id, [dict(seat) for seat in seats], self._event_ms()
        )
        self._emit(body, caller)

    def _emit(self, body: dict[str, Any], caller: _Caller) -> None:
        target = self.callback_target(str(body["CallbackCommand"]))
        if target is not None:
            self._callbacks.post(target, body, client_ip=caller.client_ip, platform=caller.platform)

    def _event_ms(self) -> int:
        return int(self._clock() * 1000)

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

        events: list[tuple[dict[str, Any], _Caller]] = []
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
            caller = _Caller(identifier, request.remote or "127.0.0.1", REST_PLATFORM)
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
        self, command: str, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        """Carry out one validated call; callbacks it causes are appended to `events`."""
        handler = {
            "update_room_info": self._update_room_info,
            "get_room_info": self._get_room_info,
            "create_room": self._create_room,
            "destroy_room": self._destroy_room,
            "get_room_member_list": self._get_room_member_list,
            "kick_user_out": self._kick_user_out,
            "ban_room_member": self._ban_room_member,
            "unban_room_member": self._unban_room_member,
            "get_banned_member_list": self._get_banned_member_list,
            "set_callback": self._set_callback,
            "update_callback": self._update_callback,
            "get_callback": self._get_callback,
            "delete_callback": self._delete_callback,
        }[command]
        return handler(body, caller, events)

    def _update_room_info(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        info = _room_info_of(body)
        _check_room_info(info, creating=False)
        events.extend(self._apply_update(info, caller, emit=False))
        return None

    def _apply_update(
        self, info: Mapping[str, Any], caller: _Caller, *, emit: bool = True
    ) -> _Events:
        room = self._room(info["RoomId"])
        room.update({k: v for k, v in info.items() if k != "RoomId"})
        body = update_room_info_body(
            caller.operator,
            room,
            self._event_ms(),
            bools_as_strings=self.callback_bools_as_strings,
        )
        if emit:
            self._emit(body, caller)
            return []
        return [(body, caller)]

    def _get_room_info(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        room = self._room(_room_id_of(body))
        return {"RoomInfo": dict(room)}

    def _create_room(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        info = _room_info_of(body)
        _check_room_info(info, creating=True)
        invitees = body.get("ScheduleInviteeList_Account", [])
        if not isinstance(invitees, list) or not all(isinstance(i, str) for i in invitees):
            raise invalid("ScheduleInviteeList_Account", "must be a list of account IDs")
        room_id = info["RoomId"]
        if room_id in self.rooms:
            raise Refusal(100003, f"room {room_id!r} already exists")
        room = self._new_room(info)
        self.rooms[room_id] = room
        self.members[room_id] = RoomMembers(owner=room["Owner_Account"])
        events.append((create_room_body(caller.operator, room, self._event_ms()), caller))
        return None

    def _destroy_room(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        room_id = _room_id_of(body)
        self._room(room_id)
        del self.rooms[room_id]
        self.members.pop(room_id, None)  # its members and bans go with it
        events.append((destroy_room_body(caller.operator, room_id, self._event_ms()), caller))
        return None

    def _get_room_member_list(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        room_id = _room_id_of(body)
        count, cursor = member_page_of(body)
        self._room(room_id)
        page, next_cursor = self._members_of(room_id).page(count, cursor)
        return {"Next": next_cursor, "MemberList": page}

    def _kick_user_out(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        room_id = _room_id_of(body)
        accounts = accounts_of(body)
        reason = reason_of(body)
        events.extend(self._remove(room_id, accounts, reason, caller, verb="kicked out"))
        return None

    def _ban_room_member(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        room_id = _room_id_of(body)
        accounts = accounts_of(body)
        reason = reason_of(body)
        duration = duration_of(body)
        events.extend(self._remove(room_id, accounts, reason, caller, verb="banned"))
        until = int(self._clock()) + duration
        bans = self._members_of(room_id).bans
        for account in accounts:
            bans[account] = until
        return None

    def _remove(
        self, room_id: str, accounts: list[str], reason: str, caller: _Caller, *, verb: str
    ) -> _Events:
        """Kick (or ban) all of `accounts` or none: each must be a member, none the owner."""
        room = self._room(room_id)
        members = self._members_of(room_id)
        outsiders = [account for account in accounts if account not in members]
        if outsiders:
            raise Refusal(100005, f"not a member of room {room_id!r}: {', '.join(outsiders)}")
        owner = room["Owner_Account"]
        if owner in accounts:
            raise Refusal(100006, f"the room owner {owner!r} cannot be {verb}")
        members.remove(accounts)
        room["MemberCount"] = len(members)
        body = member_leave_body(
            caller.operator,
            room_id,
            accounts,
            len(members),
            self._event_ms(),
            leave_type=LeaveType.KICKED.value,
            reason=reason,
        )
        return [(body, caller)]

    def _unban_room_member(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        room_id = _room_id_of(body)
        accounts = accounts_of(body)
        self._room(room_id)
        members = self._members_of(room_id)
        now = self._clock()
        not_banned = [account for account in accounts if not members.is_banned(account, now)]
        if not_banned:
            raise Refusal(100005, f"not banned from room {room_id!r}: {', '.join(not_banned)}")
        for account in accounts:
            del members.bans[account]
        return None

    def _get_banned_member_list(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        room_id = _room_id_of(body)
        limit, offset = banned_page_of(body)
        self._room(room_id)
        bans = self._members_of(room_id).active_bans(self._clock())
        page = bans[offset : offset + limit]
        next_offset = offset + limit if offset + limit < len(bans) else 0
        return {
            "BannedAccountList": [
                {"Member_Account": account, "BannedUntil": until} for account, until in page
            ],
            "NextOffset": next_offset,
        }

    def _set_callback(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        config = callback_config_of(body)
        if self.callback_config is not None:
            raise Refusal(
                100300,
                "callback configuration already exists, use update_callback to change it",
            )
        self.callback_config = config
        return None

    def _update_callback(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        config = callback_config_of(body)
        self._require_callback_config()
        self.callback_config = config
        return None

    def _get_callback(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        config = self._require_callback_config()
        return {"Url": config.url, "CallbackCommandList": list(config.commands)}

    def _delete_callback(
        self, body: dict[str, Any], caller: _Caller, events: _Events
    ) -> dict[str, Any] | None:
        self._require_callback_config()
        self.callback_config = None
        return None

    def _require_callback_config(self) -> CallbackConfiguration:
        if self.callback_config is None:
            raise Refusal(
                100301,
                "callback configuration does not exist, create it with set_callback first",
            )
        return self.callback_config

    def _room(self, room_id: str) -> dict[str, Any]:
        room = self.rooms.get(room_id)
        if room is None:
            raise Refusal(100004, f"room {room_id!r} does not exist")
        return room

    def _members_of(self, room_id: str) -> RoomMembers:
        # A room a test put into `rooms` by hand gets an empty member list on first use.
        members = self.members.get(room_id)
        if members is None:
            members = RoomMembers(owner=self.rooms[room_id]["Owner_Account"])
            self.members[room_id] = members
        return members

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


def _split_path(path: str) -> tuple[str, str]:
    """(service prefix, command) of a request path; ("", path) when no service matches."""
    for prefix in _SERVICES:
        if path.startswith(prefix):
            return prefix, path[len(prefix) :]
    return "", path


def _platform(value: str) -> str:
    if value not in PLATFORMS:
        raise ValueError(f"platform must be one of {sorted(PLATFORMS)}, not {value!r}")
    return value


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
        raise invalid("RoomInfo", "is required and must be a JSON object")
    return info


def _room_id_of(body: Mapping[str, Any]) -> str:
    room_id = body.get("RoomId")
    _check_room_id(room_id)
    assert isinstance(room_id, str)
    return room_id


def _check_room_id(value: Any) -> None:
    if value is None:
        raise invalid("RoomId", "is required")
    if not isinstance(value, str):
        raise invalid("RoomId", "must be a string")
    problem = room_id_problem(value)
    if problem:
        raise invalid("RoomId", problem)


def _check_room_info(info: Mapping[str, Any], *, creating: bool) -> None:
    _check_room_id(info.get("RoomId"))
    if creating:
        room_type = info.get("RoomType")
        if room_type is None:
            raise invalid("RoomType", "is required")
        if room_type != "Conference":
            raise invalid("RoomType", f'must be "Conference", not {json.dumps(room_type)}')
    for name, value in info.items():
        if name == "RoomId" or (creating and name == "RoomType"):
            continue
        kind = PATCH_FIELDS.get(name) or (_CREATE_ONLY_FIELDS.get(name) if creating else None)
        if kind is None:
            if name in _CREATE_ONLY_FIELDS or name in _READ_ONLY_FIELDS:
                verb = "update_room_info" if not creating else "create_room"
                raise invalid(name, f"cannot be set by {verb}")
            raise invalid(name, "unknown field")
        _check_field(name, kind, value)


def _check_field(name: str, kind: type, value: Any) -> None:
    shown = json.dumps(value, ensure_ascii=False)
    if kind is bool:
        if not isinstance(value, bool):
            raise invalid(name, f"must be a JSON boolean (true or false), not {shown}")
        return
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, f"must be an integer, not {shown}")
        problem = max_member_count_problem(value) if name == "MaxMemberCount" else None
        if problem is None and value < 0:
            problem = f"must not be negative, not {value}"
        if problem:
            raise invalid(name, problem)
        return
    if not isinstance(value, str):
        raise invalid(name, f"must be a string, not {shown}")
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
        raise invalid(name, problem)


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
