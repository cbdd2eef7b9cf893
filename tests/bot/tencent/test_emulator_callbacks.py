"""The emulator's callback configuration APIs and the callbacks it posts, caught by a receiver."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.models import CALLBACK_COMMANDS
from bot.tencent.emulator import RoomEngineEmulator
from bot.tencent.emulator_callbacks import CallbackSender, callback_sign
from bot.tencent.emulator_errors import Refusal
from bot.tencent.usersig import gen_usersig
from tests.bot.tencent.test_emulator import ADMIN, APP, KEY, NOW, call

TOKEN = "receiver-secret-token"
OK_ANSWER = {"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0}
UPDATE = "Room.CallbackAfterUpdateRoomInfo"
LEAVE = "Room.CallbackAfterMemberLeave"


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that keeps every callback it is sent."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], Any]] = []
        self.status = 200
        self.delay_s = 0.0
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/tencent/callback"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.got.append((request.path, dict(request.query), await request.json()))
        self.arrived.set()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.json_response(OK_ANSWER, status=self.status)

    def commands(self) -> list[str]:
        return [query["CallbackCommand"] for _, query, _ in self.got]

    def bodies(self, command: str) -> list[Any]:
        return [body for _, query, body in self.got if query["CallbackCommand"] == command]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    await rec.start()
    yield rec
    await rec.stop()


def make(**overrides: Any) -> RoomEngineEmulator:
    kwargs: dict[str, Any] = {
        "sdkappid": APP,
        "secret_key": KEY,
        "admin_id": ADMIN,
        "rooms": [
            {
                "RoomId": "hall",
                "RoomName": "Hall",
                "Owner_Account": "owner",
                "MemberList": ["owner", "m1", "m2", "m3"],
            },
            "quiet",
        ],
        "clock": lambda: float(NOW),
    }
    kwargs.update(overrides)
    return RoomEngineEmulator(**kwargs)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def emulator(receiver: Receiver) -> AsyncIterator[RoomEngineEmulator]:
    emu = make(callback_url=receiver.url + "?token=" + TOKEN)
    await emu.start()
    yield emu
    await emu.stop()


async def config_call(
    http: httpx.AsyncClient, emu: RoomEngineEmulator, command: str, body: Any, **params: str
) -> dict[str, Any]:
    path = f"/v4/room_config/{command}"
    return await call(http, emu, command, body, path=path, overrides=params)


# -- the configuration APIs -------------------------------------------------------------------


async def test_callback_configuration_lifecycle(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    first = {"Url": "https://bot.example/cb?token=t", "CallbackCommandList": [UPDATE]}
    second = {"Url": "http://other.example/cb", "CallbackCommandList": [LEAVE, UPDATE, LEAVE]}
    steps: list[tuple[str, Any, int]] = [
        ("get_callback", {}, 100301),
        ("update_callback", first, 100301),
        ("delete_callback", {}, 100301),
        ("set_callback", first, 0),
        ("set_callback", second, 100300),  # one configuration per SDKAppID
        ("update_callback", second, 0),
        ("delete_callback", {}, 0),
        ("get_callback", {}, 100301),
        ("set_callback", first, 0),
    ]
    for command, body, code in steps:
        data = await config_call(http, emulator, command, body)
        assert data["ErrorCode"] == code, (command, data)
        if command == "update_callback" and code == 0:
            got = (await config_call(http, emulator, "get_callback", {}))["Response"]
            assert got == {"Url": second["Url"], "CallbackCommandList": [LEAVE, UPDATE]}
    got = await config_call(http, emulator, "get_callback", {})
    assert got["Response"] == {"Url": first["Url"], "CallbackCommandList": [UPDATE]}
    assert [r.command for r in emulator.requests][:3] == [
        "get_callback",
        "update_callback",
        "delete_callback",
    ]


_CB = "https://bot.example/cb"
_MISSPELT = "Room.CallbackUpdateRoomInfo"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"CallbackCommandList": [UPDATE]}, "Url"),
        ({"Url": "", "CallbackCommandList": [UPDATE]}, "Url"),
        ({"Url": 7, "CallbackCommandList": [UPDATE]}, "Url"),
        ({"Url": "ftp://bot.example/cb", "CallbackCommandList": [UPDATE]}, "Url"),
        ({"Url": "bot.example/cb", "CallbackCommandList": [UPDATE]}, "Url"),
        ({"Url": _CB}, "CallbackCommandList"),
        ({"Url": _CB, "CallbackCommandList": []}, "CallbackCommandList"),
        ({"Url": _CB, "CallbackCommandList": UPDATE}, "CallbackCommandList"),
        # The misspelling in one of Tencent's samples is not a command.
        ({"Url": _CB, "CallbackCommandList": [_MISSPELT]}, "CallbackCommandList"),
        ({"Url": _CB, "CallbackCommandList": [UPDATE, 3]}, "CallbackCommandList"),
    ],
)
@pytest.mark.parametrize("command", ["set_callback", "update_callback"])
async def test_configuration_is_validated(
    emulator: RoomEngineEmulator,
    http: httpx.AsyncClient,
    command: str,
    body: dict[str, Any],
    field: str,
) -> None:
    data = await config_call(http, emulator, command, body)
    assert data["ErrorCode"] == 100002, data
    assert field in data["ErrorInfo"]
    assert emulator.callback_config is None


async def test_configuration_apis_check_credentials(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    data = await config_call(http, emulator, "get_callback", {}, usersig="garbage")
    assert data["ErrorCode"] == 70003
    emulator.script("set_callback", [100001])
    body = {"Url": "https://bot.example/cb", "CallbackCommandList": [UPDATE]}
    assert (await config_call(http, emulator, "set_callback", body))["ErrorCode"] == 100001
    assert emulator.callback_config is None


# -- what is posted, and how ------------------------------------------------------------------


async def test_update_room_info_callback(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = {"RoomInfo": {"RoomId": "hall", "IsAudioDisabled": True, "RoomName": "Hall 🚨"}}
    assert (await call(http, emulator, "update_room_info", body))["ErrorCode"] == 0
    await emulator.settle_callbacks()
    ((path, query, sent),) = receiver.got
    assert path == "/tencent/callback"
    assert query == {
        "token": TOKEN,  # the target's own query is kept
        "SdkAppid": str(APP),
        "CallbackCommand": UPDATE,
        "contenttype": "json",
        "ClientIP": "127.0.0.1",
        "OptPlatform": "RESTAPI",
    }
    assert sent == {
        "CallbackCommand": UPDATE,
        "Operator_Account": ADMIN,
        "RoomInfo": {
            # Every field, not only the changed ones; booleans as strings (Tencent's quirk).
            "RoomId": "hall",
            "RoomName": "Hall 🚨",
            "Owner_Account": "owner",
            "TakeSeatMode": "None",
            "MaxMemberCount": 300,
            "IsVideoDisabled": "false",
            "IsAudioDisabled": "true",
            "IsMessageDisabled": "false",
            "IsScreenSharingDisabled": "false",
            "IsCloudRecordingDisabled": "false",
            "CustomInfo": "",
        },
        "EventTime": NOW * 1000,
    }
    (record,) = emulator.callbacks
    assert (record.command, record.status, record.answer, record.error) == (
        UPDATE,
        200,
        OK_ANSWER,
        None,
    )
    assert record.target == receiver.url  # no query, so no token, in what gets printed
    assert record.query["OptPlatform"] == "RESTAPI"


async def test_booleans_can_be_sent_as_json_booleans(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    async with make(callback_url=receiver.url, callback_bools_as_strings=False) as emu:
        body = {"RoomInfo": {"RoomId": "hall", "IsVideoDisabled": True}}
        assert (await call(http, emu, "update_room_info", body))["ErrorCode"] == 0
        await emu.settle_callbacks()
    info = receiver.bodies(UPDATE)[0]["RoomInfo"]
    assert info["IsVideoDisabled"] is True
    assert info["IsAudioDisabled"] is False


async def test_room_lifecycle_and_moderation_callbacks(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    create = {"RoomInfo": {"RoomId": "new", "RoomType": "Conference", "RoomName": "New"}}
    kick = {"RoomId": "hall", "MemberList_Account": ["m1", "m2"], "Reason": "spam"}
    ban = {"RoomId": "hall", "MemberList_Account": ["m3"], "Reason": "abuse", "Duration": 60}
    for command, body in [
        ("create_room", create),
        ("kick_user_out", kick),
        ("ban_room_member", ban),
        ("unban_room_member", {"RoomId": "hall", "MemberList_Account": ["m3"]}),
        ("get_room_info", {"RoomId": "hall"}),
        ("get_room_member_list", {"RoomId": "hall"}),
        ("destroy_room", {"RoomId": "new"}),
    ]:
        assert (await call(http, emulator, command, body))["ErrorCode"] == 0, command
    await emulator.settle_callbacks()
    assert receiver.commands() == [
        "Room.CallbackAfterCreateRoom",
        LEAVE,
        LEAVE,
        "Room.CallbackAfterDestroyRoom",
    ]  # reads and unban post nothing; order is the order of the changes
    created, kicked, banned, destroyed = (body for _, _, body in receiver.got)
    assert created["Operator_Account"] == ADMIN
    assert created["RoomInfo"]["RoomName"] == "New"
    assert created["RoomInfo"]["RoomType"] == "Conference"
    assert created["EventTime"] == NOW * 1000
    assert kicked == {
        "CallbackCommand": LEAVE,
        "Operator_Account": ADMIN,
        "RoomId": "hall",
        "MemberCount": 2,
        "Type": "Kicked",
        "MemberList_Account": ["m1", "m2"],
        "Reason": "spam",
        "EventTime": NOW * 1000,
    }
    assert (banned["Type"], banned["MemberList_Account"], banned["Reason"]) == (
        "Kicked",
        ["m3"],
        "abuse",
    )
    assert banned["MemberCount"] == 1
    assert destroyed == {
        "CallbackCommand": "Room.CallbackAfterDestroyRoom",
        "Operator_Account": ADMIN,
        "RoomId": "new",
        "EventTime": NOW * 1000,
    }


async def test_refused_calls_post_nothing(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    emulator.script("update_room_info", [100001, "502"])
    upd = {"RoomInfo": {"RoomId": "hall", "IsAudioDisabled": True}}
    assert (await call(http, emulator, "update_room_info", upd))["ErrorCode"] == 100001
    response = await http.post(
        emulator.base_url + "/v4/room_engine_http_srv/update_room_info",
        params={"sdkappid": str(APP), "identifier": ADMIN},
        json=upd,
    )
    assert response.status_code == 502
    bad = {"RoomInfo": {"RoomId": "hall", "IsAudioDisabled": "yes"}}
    assert (await call(http, emulator, "update_room_info", bad))["ErrorCode"] == 100002
    kick = {"RoomId": "hall", "MemberList_Account": ["ghost"], "Reason": "x"}
    assert (await call(http, emulator, "kick_user_out", kick))["ErrorCode"] == 100005
    await emulator.settle_callbacks()
    assert receiver.got == []
    assert emulator.callbacks == []


async def test_members_entering_and_leaving_outside_the_api(
    emulator: RoomEngineEmulator, receiver: Receiver
) -> None:
    emulator.member_enter("quiet", "u1", platform="Android", client_ip="198.51.100.7")
    emulator.member_leave("quiet", "u1", leave_type="Expired", reason="heartbeat lost")
    emulator.seat_info_changed(
        "hall", [{"Index": 0, "Member_Account": "m1", "IsTakenDisabled": False}], operator="m1"
    )
    await emulator.settle_callbacks()
    (_, enter_query, enter), (_, _, leave), (_, seat_query, seat) = receiver.got
    assert (enter_query["OptPlatform"], enter_query["ClientIP"]) == ("Android", "198.51.100.7")
    assert enter == {
        "CallbackCommand": "Room.CallbackAfterMemberEnter",
        "Operator_Account": "u1",
        "RoomId": "quiet",
        "MemberCount": 1,
        "Type": "Enter",
        "MemberList_Account": ["u1"],
        "EventTime": NOW * 1000,
    }
    assert (leave["Type"], leave["Reason"], leave["MemberCount"]) == (
        "Expired",
        "heartbeat lost",
        0,
    )
    assert seat_query["CallbackCommand"] == "Mic.CallbackAfterSeatInfoChanged"
    assert seat["SeatList"] == [{"Index": 0, "Member_Account": "m1", "IsTakenDisabled": False}]
    assert seat["RoomId"] == "hall"


async def test_outside_update_applies_validates_and_reports_the_operator(
    emulator: RoomEngineEmulator, receiver: Receiver
) -> None:
    emulator.outside_update("hall", "console-user", platform="Web", IsMessageDisabled=True)
    assert emulator.rooms["hall"]["IsMessageDisabled"] is True
    with pytest.raises(Refusal) as refused:
        emulator.outside_update("hall", "console-user", IsMessageDisabled="yes")
    assert refused.value.code == 100002
    with pytest.raises(Refusal) as refused:
        emulator.outside_update("nope", "console-user", IsMessageDisabled=True)
    assert refused.value.code == 100004
    await emulator.settle_callbacks()
    ((_, query, body),) = receiver.got
    assert (query["OptPlatform"], body["Operator_Account"]) == ("Web", "console-user")
    assert body["RoomInfo"]["IsMessageDisabled"] == "true"


async def test_another_admin_changes_a_room_through_the_api(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    async with make(callback_url=receiver.url, other_admins=["ops-console"]) as emu:
        sig = gen_usersig(APP, KEY, "ops-console", 86400, now=NOW - 10)
        body = {"RoomInfo": {"RoomId": "hall", "CustomInfo": "from the console"}}
        data = await call(
            http, emu, "update_room_info", body, identifier="ops-console", usersig=sig
        )
        assert data["ErrorCode"] == 0
        stranger = gen_usersig(APP, KEY, "stranger", 86400, now=NOW - 10)
        refused = await call(
            http, emu, "update_room_info", body, identifier="stranger", usersig=stranger
        )
        assert refused["ErrorCode"] == 60010
        await emu.settle_callbacks()
        assert emu.other_admins == ("ops-console",)
    (body_sent,) = receiver.bodies(UPDATE)
    assert body_sent["Operator_Account"] == "ops-console"


async def test_a_configuration_replaces_the_callback_url_and_filters_commands(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    configured = Receiver()
    await configured.start()
    try:
        conf = {"Url": configured.url + "?token=abc", "CallbackCommandList": [LEAVE]}
        assert (await config_call(http, emulator, "set_callback", conf))["ErrorCode"] == 0
        assert emulator.callback_target(LEAVE) == conf["Url"]
        assert emulator.callback_target(UPDATE) is None
        upd = {"RoomInfo": {"RoomId": "hall", "IsAudioDisabled": True}}
        kick = {"RoomId": "hall", "MemberList_Account": ["m1"], "Reason": "x"}
        assert (await call(http, emulator, "update_room_info", upd))["ErrorCode"] == 0
        assert (await call(http, emulator, "kick_user_out", kick))["ErrorCode"] == 0
        await emulator.settle_callbacks()
        assert configured.commands() == [LEAVE]  # UpdateRoomInfo is not in its list
        assert configured.got[0][1]["token"] == "abc"
        assert receiver.got == []  # the --callback-url target is not used meanwhile
        assert (await config_call(http, emulator, "delete_callback", {}))["ErrorCode"] == 0
        assert (await call(http, emulator, "update_room_info", upd))["ErrorCode"] == 0
        await emulator.settle_callbacks()
        assert receiver.commands() == [UPDATE]  # back to the --callback-url target
    finally:
        await configured.stop()


async def test_without_any_target_nothing_is_posted(http: httpx.AsyncClient) -> None:
    async with make() as emu:
        upd = {"RoomInfo": {"RoomId": "hall", "IsAudioDisabled": True}}
        assert (await call(http, emu, "update_room_info", upd))["ErrorCode"] == 0
        emu.member_enter("hall", "u9")
        await emu.settle_callbacks()
        assert emu.callbacks == []
        assert emu.callback_target(UPDATE) is None


async def test_signed_callbacks_carry_sign_and_request_time(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    async with make(callback_url=receiver.url, callback_token=TOKEN) as emu:
        upd = {"RoomInfo": {"RoomId": "hall", "IsAudioDisabled": True}}
        assert (await call(http, emu, "update_room_info", upd))["ErrorCode"] == 0
        await emu.settle_callbacks()
        assert emu.callback_signed
    ((_, query, _),) = receiver.got
    assert query["RequestTime"] == str(NOW)
    expected = hashlib.sha256(f"{TOKEN}{NOW}".encode()).hexdigest()
    assert query["Sign"] == expected
    assert TOKEN not in str(query)


def test_callback_sign_matches_the_documented_scheme() -> None:
    # The docs' example: token "xxxx", RequestTime 1669872112 → sha256 of "xxxx1669872112".
    assert callback_sign("xxxx", 1669872112) == hashlib.sha256(b"xxxx1669872112").hexdigest()
    assert len(callback_sign("xxxx", 1669872112)) == 64


# -- a receiver that is down, slow or failing ---------------------------------------------------


async def test_a_receiver_that_is_down_is_logged_and_skipped(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    caplog.set_level(logging.WARNING)
    target = f"http://127.0.0.1:{port}/cb?token={TOKEN}"
    async with make(callback_url=target, callback_token="sign-secret") as emu:
        upd = {"RoomInfo": {"RoomId": "hall", "IsAudioDisabled": True}}
        for _ in range(2):
            assert (await call(http, emu, "update_room_info", upd))["ErrorCode"] == 0
        await emu.settle_callbacks()
        assert [c.status for c in emu.callbacks] == [None, None]
        assert all(c.error for c in emu.callbacks)
        assert emu.rooms["hall"]["IsAudioDisabled"] is True
    assert "skipped" in caplog.text
    assert TOKEN not in caplog.text
    assert "sign-secret" not in caplog.text


async def test_a_failing_receiver_does_not_change_the_answer(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.status = 500
    upd = {"RoomInfo": {"RoomId": "hall", "IsAudioDisabled": True}}
    assert (await call(http, emulator, "update_room_info", upd))["ErrorCode"] == 0
    await emulator.settle_callbacks()
    assert [c.status for c in emulator.callbacks] == [500]


@pytest.mark.slow
async def test_a_slow_receiver_never_delays_the_api(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    receiver.delay_s = 0.6
    async with make(callback_url=receiver.url, callback_timeout_s=0.3) as emu:
        upd = {"RoomInfo": {"RoomId": "hall", "IsAudioDisabled": True}}
        began = time.monotonic()
        for _ in range(3):
            assert (await call(http, emu, "update_room_info", upd))["ErrorCode"] == 0
        assert time.monotonic() - began < 0.5  # three answers while callbacks still wait
        await emu.settle_callbacks()
        assert [c.status for c in emu.callbacks] == [None, None, None]
        assert all("no answer within 0.3 s" in (c.error or "") for c in emu.callbacks)


@pytest.mark.slow
async def test_stopping_cancels_callbacks_still_waiting(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    receiver.delay_s = 60  # never answers while the test runs
    emu = make(callback_url=receiver.url, callback_timeout_s=30)
    await emu.start()
    upd = {"RoomInfo": {"RoomId": "hall", "IsAudioDisabled": True}}
    for _ in range(3):
        assert (await call(http, emu, "update_room_info", upd))["ErrorCode"] == 0
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    began = time.monotonic()
    await asyncio.wait_for(emu.stop(), 10)
    assert time.monotonic() - began < 3  # one second of grace, then cancelled
    assert emu.callbacks == []  # none was answered
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "emulator-callbacks"]
    assert len(receiver.got) == 1  # the others never left


async def test_the_queue_is_bounded() -> None:
    sender = CallbackSender(sdkappid=APP, clock=lambda: float(NOW), max_pending=2)
    body = {"CallbackCommand": UPDATE}
    for _ in range(5):
        sender.post("http://127.0.0.1:9/cb", body, client_ip="127.0.0.1", platform="RESTAPI")
    assert sender.pending == 2
    assert sender.dropped == 3
    await sender.close()  # never started: nothing to clean up


def test_bad_callback_options_are_refused() -> None:
    with pytest.raises(ValueError, match="callback URL"):
        make(callback_url="ftp://example.com/cb")
    with pytest.raises(ValueError, match="timeout"):
        make(callback_timeout_s=0)
    with pytest.raises(ValueError, match="platform"):
        make().member_enter("hall", "u1", platform="Nokia")


def test_every_callback_command_is_known() -> None:
    assert CALLBACK_COMMANDS == (
        "Room.CallbackAfterCreateRoom",
        "Room.CallbackAfterDestroyRoom",
        "Room.CallbackAfterUpdateRoomInfo",
        "Room.CallbackAfterMemberEnter",
        "Room.CallbackAfterMemberLeave",
        "Mic.CallbackAfterSeatInfoChanged",
    )


async def test_callbacks_are_signed_when_sent_not_when_queued(receiver: Receiver) -> None:
    now = [float(NOW)]
    sender = CallbackSender(sdkappid=APP, token=TOKEN, clock=lambda: now[0])
    sender.post(receiver.url, {"CallbackCommand": UPDATE}, client_ip="127.0.0.1", platform="Web")
    now[0] += 90  # it waited in the queue for a minute and a half
    await sender.start()
    try:
        await sender.settle()
    finally:
        await sender.close()
    ((_, query, _),) = receiver.got
    assert query["RequestTime"] == str(NOW + 90)
    assert query["Sign"] == callback_sign(TOKEN, NOW + 90)
