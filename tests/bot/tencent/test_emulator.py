"""The Room Engine emulator, driven with raw HTTP: it must answer like the real service."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from bot.tencent.emulator import DEMO_ROOMS, RoomEngineEmulator
from bot.tencent.usersig import gen_usersig
from testkit.clock import FakeClock

APP = 1400000000
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
OTHER_KEY = "f" * 64
ADMIN = "administrator"
NOW = 1_700_000_000
GOOD_SIG = gen_usersig(APP, KEY, ADMIN, 86400, now=NOW - 100)
REQUEST_ID = re.compile(r"^Id-[0-9a-f]{32}-O-Seq-\d+$")

# Every field get_room_info reports, with its JSON type (reference §2).
ROOM_FIELDS: dict[str, type] = {
    "RoomId": str,
    "RoomName": str,
    "RoomType": str,
    "Owner_Account": str,
    "CustomInfo": str,
    "RoomStatus": str,
    "TakeSeatMode": str,
    "MaxMemberCount": int,
    "MaxSeatCount": int,
    "ScheduleStartTime": int,
    "ScheduleEndTime": int,
    "CreateTime": int,
    "MemberCount": int,
    "IsVideoDisabled": bool,
    "IsAudioDisabled": bool,
    "IsMessageDisabled": bool,
    "IsScreenSharingDisabled": bool,
    "IsCloudRecordingDisabled": bool,
    "IsSeatEnabled": bool,
}


def make_emulator(**overrides: Any) -> RoomEngineEmulator:
    kwargs: dict[str, Any] = {
        "sdkappid": APP,
        "secret_key": KEY,
        "admin_id": ADMIN,
        "rooms": ["room-test", {"RoomId": "named", "RoomName": "Named room"}],
        "clock": lambda: float(NOW),
    }
    kwargs.update(overrides)
    return RoomEngineEmulator(**kwargs)


@pytest.fixture
async def emulator() -> AsyncIterator[RoomEngineEmulator]:
    emu = make_emulator()
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def query(**changes: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "sdkappid": str(APP),
        "identifier": ADMIN,
        "usersig": GOOD_SIG,
        "random": "99999999",
        "contenttype": "json",
    }
    params.update(changes)
    return {k: v for k, v in params.items() if v is not None}


async def call(
    http: httpx.AsyncClient,
    emu: RoomEngineEmulator,
    command: str,
    body: Any,
    *,
    raw: bytes | None = None,
    path: str | None = None,
    method: str = "POST",
    overrides: Mapping[str, str | None] | None = None,
    **params: str | None,
) -> dict[str, Any]:
    url = emu.base_url + (path or f"/v4/room_engine_http_srv/{command}")
    content = raw if raw is not None else json.dumps(body).encode()
    all_params = {**(overrides or {}), **params}
    response = await http.request(method, url, params=query(**all_params), content=content)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    assert REQUEST_ID.match(data["RequestId"]), data
    assert data["ActionStatus"] == ("OK" if data["ErrorCode"] == 0 else "FAIL")
    assert isinstance(data["ErrorInfo"], str)
    return data


# -- the happy path ---------------------------------------------------------------------------


async def test_partial_update_changes_only_the_fields_sent(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    before = dict(emulator.rooms["named"])
    body = {"RoomInfo": {"RoomId": "named", "IsAudioDisabled": True, "CustomInfo": "x"}}
    assert (await call(http, emulator, "update_room_info", body))["ErrorCode"] == 0
    after = (await call(http, emulator, "get_room_info", {"RoomId": "named"}))["Response"]
    changed = {k for k in ROOM_FIELDS if after["RoomInfo"][k] != before[k]}
    assert changed == {"IsAudioDisabled", "CustomInfo"}
    assert after["RoomInfo"]["IsAudioDisabled"] is True
    assert after["RoomInfo"]["RoomName"] == "Named room"


async def test_the_seed_request_succeeds(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    seed = {
        "RoomId": "room-test",
        "RoomName": "room-name-test",
        "MaxMemberCount": 300,
        "IsVideoDisabled": True,
        "IsAudioDisabled": True,
        "IsMessageDisabled": True,
        "IsScreenSharingDisabled": True,
        "IsCloudRecordingDisabled": True,
        "CustomInfo": "custom123",
        "TakeSeatMode": "ApplyToTake",
    }
    data = await call(http, emulator, "update_room_info", {"RoomInfo": seed})
    assert data == {
        "ActionStatus": "OK",
        "ErrorCode": 0,
        "ErrorInfo": "",
        "RequestId": data["RequestId"],
    }
    room = emulator.rooms["room-test"]
    assert {k: room[k] for k in seed} == seed


async def test_get_room_info_reports_every_field_with_defaults(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    data = await call(http, emulator, "get_room_info", {"RoomId": "room-test"})
    info = data["Response"]["RoomInfo"]
    assert set(info) == set(ROOM_FIELDS)
    for name, kind in ROOM_FIELDS.items():
        assert type(info[name]) is kind, name
    assert info["RoomId"] == "room-test"
    assert info["RoomName"] == "room-test"  # defaults to the RoomId
    assert info["RoomType"] == "Conference"
    assert info["Owner_Account"] == ADMIN
    assert info["CreateTime"] == NOW
    assert info["RoomStatus"] in {"None", "NotStarted", "Running"}
    assert info["TakeSeatMode"] in {"None", "FreeToTake", "ApplyToTake"}
    assert info["MaxMemberCount"] > 0


async def test_create_get_destroy(emulator: RoomEngineEmulator, http: httpx.AsyncClient) -> None:
    body = {
        "RoomInfo": {
            "RoomId": "new-room",
            "RoomType": "Conference",
            "Owner_Account": "user2",
            "IsSeatEnabled": True,
            "MaxSeatCount": 16,
            "ScheduleStartTime": NOW + 3600,
            "ScheduleEndTime": NOW + 7200,
        },
        "ScheduleInviteeList_Account": ["user1", "user2"],
    }
    assert (await call(http, emulator, "create_room", body))["ErrorCode"] == 0
    info = (await call(http, emulator, "get_room_info", {"RoomId": "new-room"}))["Response"][
        "RoomInfo"
    ]
    assert info["Owner_Account"] == "user2"
    assert info["MaxSeatCount"] == 16
    assert info["TakeSeatMode"] == "FreeToTake"  # seats on: a real mode, not "None"
    assert info["RoomStatus"] == "NotStarted"
    again = await call(http, emulator, "create_room", body)
    assert again["ErrorCode"] == 100003
    assert (await call(http, emulator, "destroy_room", {"RoomId": "new-room"}))["ErrorCode"] == 0
    gone = await call(http, emulator, "get_room_info", {"RoomId": "new-room"})
    assert gone["ErrorCode"] == 100004


@pytest.mark.parametrize(
    ("command", "body"),
    [
        ("update_room_info", {"RoomInfo": {"RoomId": "nope", "IsAudioDisabled": True}}),
        ("get_room_info", {"RoomId": "nope"}),
        ("destroy_room", {"RoomId": "nope"}),
    ],
)
async def test_unknown_room_is_100004(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, command: str, body: Any
) -> None:
    data = await call(http, emulator, command, body)
    assert data["ErrorCode"] == 100004
    assert "nope" in data["ErrorInfo"]


async def test_request_ids_are_unique(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    ids = [
        (await call(http, emulator, "get_room_info", {"RoomId": room}))["RequestId"]
        for room in ["room-test", "nope"] * 10
    ]
    assert len(set(ids)) == 20


# -- the query string -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"sdkappid": None}, 60012),
        ({"sdkappid": "abc"}, 60006),
        ({"sdkappid": "1400000999"}, 70020),
        ({"identifier": None}, 60004),
        ({"usersig": None}, 70002),
        ({"usersig": ""}, 70002),
        ({"usersig": "garbage"}, 70003),
        ({"usersig": gen_usersig(APP, KEY, ADMIN, 60, now=NOW - 61)}, 70001),
        ({"usersig": gen_usersig(1400000999, KEY, ADMIN, now=NOW)}, 70014),
        ({"usersig": gen_usersig(APP, OTHER_KEY, ADMIN, now=NOW)}, 70009),
        ({"usersig": gen_usersig(APP, KEY, "bob", now=NOW)}, 70013),
        ({"identifier": "bob", "usersig": gen_usersig(APP, KEY, "bob", now=NOW)}, 60010),
        ({"random": None}, 60002),
        ({"random": "-1"}, 60002),
        ({"random": "4294967296"}, 60002),
        ({"random": "12abc"}, 60002),
        ({"contenttype": None}, 60002),
        ({"contenttype": "xml"}, 60002),
        ({"contenttype": "JSON"}, 60002),  # parameter values are case-sensitive
    ],
)
async def test_bad_query_is_rejected(
    emulator: RoomEngineEmulator,
    http: httpx.AsyncClient,
    params: dict[str, str | None],
    code: int,
) -> None:
    before = dict(emulator.rooms["room-test"])
    body = {"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": True}}
    data = await call(http, emulator, "update_room_info", body, overrides=params)
    assert data["ErrorCode"] == code, data
    assert emulator.rooms["room-test"] == before


@pytest.mark.parametrize("value", ["0", "4294967295", "1"])
async def test_random_range_is_inclusive(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, value: str
) -> None:
    data = await call(http, emulator, "get_room_info", {"RoomId": "room-test"}, random=value)
    assert data["ErrorCode"] == 0


async def test_expired_usersig_detail_names_the_problem(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    expired = gen_usersig(APP, KEY, ADMIN, 60, now=NOW - 61)
    data = await call(http, emulator, "get_room_info", {"RoomId": "room-test"}, usersig=expired)
    assert "expired" in data["ErrorInfo"]
    assert expired not in data["ErrorInfo"]


# -- the body and the path --------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"   ", b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
async def test_body_that_is_not_a_json_object_is_60003(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, raw: bytes
) -> None:
    data = await call(http, emulator, "update_room_info", None, raw=raw)
    assert data["ErrorCode"] == 60003


@pytest.mark.parametrize(
    "path",
    [
        "/v4/room_engine_http_srv/change_room_owner",  # real, but not emulated
        "/v4/room_engine_http_srv/",
        "/v4/room_engine_http_srv/set_callback",  # a room_config command under the wrong service
        "/v4/room_config/update_room_info",
        "/v4/room_config/",
        "/v4/live_engine_http_srv/update_room_info",
        "/v4/room_engine_http_mic/apply_seat",  # not a seat API
        "/v4/room_engine_http_mic/get_room_info",  # a room API under the seat service
        "/",
    ],
)
async def test_unknown_path_is_60009(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, path: str
) -> None:
    data = await call(http, emulator, "", {"RoomId": "room-test"}, path=path)
    assert data["ErrorCode"] == 60009


async def test_get_method_is_refused(emulator: RoomEngineEmulator, http: httpx.AsyncClient) -> None:
    data = await call(http, emulator, "get_room_info", {"RoomId": "room-test"}, method="GET")
    assert data["ErrorCode"] == 60002


# -- field validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "field"),
    [
        ({"IsAudioDisabled": True}, "RoomId"),
        ({"RoomId": 42}, "RoomId"),
        ({"RoomId": ""}, "RoomId"),
        ({"RoomId": "r" * 49}, "RoomId"),
        ({"RoomId": "room-test", "RoomName": "é" * 51}, "RoomName"),  # 102 bytes, 51 chars
        ({"RoomId": "room-test", "RoomName": 5}, "RoomName"),
        ({"RoomId": "room-test", "CustomInfo": "😀" * 126}, "CustomInfo"),  # 504 bytes
        ({"RoomId": "room-test", "CustomInfo": None}, "CustomInfo"),
        ({"RoomId": "room-test", "MaxMemberCount": "300"}, "MaxMemberCount"),
        ({"RoomId": "room-test", "MaxMemberCount": True}, "MaxMemberCount"),
        ({"RoomId": "room-test", "MaxMemberCount": 0}, "MaxMemberCount"),
        ({"RoomId": "room-test", "MaxMemberCount": 1.5}, "MaxMemberCount"),
        ({"RoomId": "room-test", "IsAudioDisabled": "true"}, "IsAudioDisabled"),
        ({"RoomId": "room-test", "IsVideoDisabled": 1}, "IsVideoDisabled"),
        ({"RoomId": "room-test", "IsMessageDisabled": None}, "IsMessageDisabled"),
        ({"RoomId": "room-test", "TakeSeatMode": "Free"}, "TakeSeatMode"),
        ({"RoomId": "room-test", "TakeSeatMode": "None"}, "TakeSeatMode"),
        ({"RoomId": "room-test", "RoomType": "Conference"}, "RoomType"),
        ({"RoomId": "room-test", "Owner_Account": "bob"}, "Owner_Account"),
        ({"RoomId": "room-test", "CreateTime": 1}, "CreateTime"),
        ({"RoomId": "room-test", "Colour": "blue"}, "Colour"),
    ],
)
async def test_invalid_fields_are_100002_naming_the_field(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, info: dict[str, Any], field: str
) -> None:
    before = dict(emulator.rooms["room-test"])
    data = await call(http, emulator, "update_room_info", {"RoomInfo": info})
    assert data["ErrorCode"] == 100002, data
    assert field in data["ErrorInfo"]
    assert emulator.rooms["room-test"] == before


@pytest.mark.parametrize("body", [{}, {"RoomInfo": "room-test"}, {"RoomInfo": None}])
async def test_missing_room_info_is_100002(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, body: Any
) -> None:
    data = await call(http, emulator, "update_room_info", body)
    assert data["ErrorCode"] == 100002
    assert "RoomInfo" in data["ErrorInfo"]


async def test_limits_are_inclusive(emulator: RoomEngineEmulator, http: httpx.AsyncClient) -> None:
    emulator.add_room("r" * 48)
    info = {
        "RoomId": "r" * 48,
        "RoomName": "é" * 50,  # exactly 100 bytes
        "CustomInfo": "😀" * 125,  # exactly 500 bytes
        "TakeSeatMode": "FreeToTake",
    }
    data = await call(http, emulator, "update_room_info", {"RoomInfo": info})
    assert data["ErrorCode"] == 0, data
    assert emulator.rooms["r" * 48]["CustomInfo"] == "😀" * 125


@pytest.mark.parametrize(
    ("info", "field"),
    [
        ({"RoomId": "x"}, "RoomType"),
        ({"RoomId": "x", "RoomType": "Live"}, "RoomType"),
        ({"RoomId": "x", "RoomType": "Conference", "MaxSeatCount": -1}, "MaxSeatCount"),
        ({"RoomId": "x", "RoomType": "Conference", "IsSeatEnabled": "yes"}, "IsSeatEnabled"),
        ({"RoomId": "x", "RoomType": "Conference", "RoomStatus": "Running"}, "RoomStatus"),
    ],
)
async def test_create_room_validates(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, info: dict[str, Any], field: str
) -> None:
    data = await call(http, emulator, "create_room", {"RoomInfo": info})
    assert data["ErrorCode"] == 100002
    assert field in data["ErrorInfo"]
    assert "x" not in emulator.rooms


async def test_create_room_invitees_must_be_accounts(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    body = {
        "RoomInfo": {"RoomId": "x", "RoomType": "Conference"},
        "ScheduleInviteeList_Account": [1, 2],
    }
    data = await call(http, emulator, "create_room", body)
    assert data["ErrorCode"] == 100002
    assert "ScheduleInviteeList_Account" in data["ErrorInfo"]


# -- rate limit -------------------------------------------------------------------------------


async def test_rate_limit_per_api_in_a_sliding_second(http: httpx.AsyncClient) -> None:
    clock = FakeClock(50.0)
    emu = make_emulator(rate_limit_per_api=3, monotonic=clock)
    await emu.start()
    try:
        get = {"RoomId": "room-test"}
        codes = [(await call(http, emu, "get_room_info", get))["ErrorCode"] for _ in range(5)]
        assert codes == [0, 0, 0, 60007, 60007]
        assert emu.rate_limited == 2
        # Another API has its own budget.
        upd = {"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": True}}
        assert (await call(http, emu, "update_room_info", upd))["ErrorCode"] == 0
        clock.now += 0.999
        assert (await call(http, emu, "get_room_info", get))["ErrorCode"] == 60007
        clock.now += 0.001  # the first three calls leave the window
        codes = [(await call(http, emu, "get_room_info", get))["ErrorCode"] for _ in range(4)]
        assert codes == [0, 0, 0, 60007]
        assert emu.rate_limited == 4
    finally:
        await emu.stop()


# -- fault injection --------------------------------------------------------------------------


async def test_scripted_outcomes_are_consumed_in_order(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    emulator.script("get_room_info", [100001, "502", "ok", 60018])
    url = emulator.base_url + "/v4/room_engine_http_srv/get_room_info"
    statuses = []
    for _ in range(5):
        response = await http.post(url, params=query(), json={"RoomId": "room-test"})
        code = response.json()["ErrorCode"] if response.status_code == 200 else None
        statuses.append((response.status_code, code))
    assert statuses == [(200, 100001), (502, None), (200, 0), (200, 60018), (200, 0)]
    # Other commands were never affected.
    upd = {"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": True}}
    assert (await call(http, emulator, "update_room_info", upd))["ErrorCode"] == 0


async def test_script_for_any_command(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    emulator.script("*", [100001])
    data = await call(http, emulator, "destroy_room", {"RoomId": "room-test"})
    assert data["ErrorCode"] == 100001
    assert "room-test" in emulator.rooms


def test_script_rejects_nonsense() -> None:
    emu = make_emulator()
    with pytest.raises(ValueError, match="command"):
        emu.script("change_room_owner", [100001])
    with pytest.raises(ValueError, match="outcome"):
        emu.script("get_room_info", ["boom"])


@pytest.mark.slow  # the real clock
async def test_hang_never_answers_until_stop(http: httpx.AsyncClient) -> None:
    emu = make_emulator()
    await emu.start()
    emu.script("get_room_info", ["hang"])
    url = emu.base_url + "/v4/room_engine_http_srv/get_room_info"
    with pytest.raises(httpx.ReadTimeout):
        await http.post(url, params=query(), json={"RoomId": "room-test"}, timeout=0.3)
    pending = asyncio.create_task(http.post(url, params=query(), json={"RoomId": "room-test"}))
    emu.script("get_room_info", ["hang"])
    await asyncio.sleep(0.2)
    await asyncio.wait_for(emu.stop(), timeout=10)  # would take 60 s if hangs were not released
    (outcome,) = await asyncio.wait_for(asyncio.gather(pending, return_exceptions=True), 10)
    # A released hang answers 503 (or the connection closes): never a success.
    if isinstance(outcome, httpx.Response):
        assert outcome.status_code == 503
    else:
        assert isinstance(outcome, httpx.HTTPError)
    assert [r.http_status for r in emu.requests] == [None, None]


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        ({"fail_rate": 1.0}, (200, 100001)),
        ({"http_502_rate": 1.0}, (502, None)),
    ],
)
async def test_fault_rates(
    http: httpx.AsyncClient, rates: dict[str, float], expected: tuple[int, int | None]
) -> None:
    emu = make_emulator(**rates)
    await emu.start()
    try:
        url = emu.base_url + "/v4/room_engine_http_srv/get_room_info"
        for _ in range(3):
            response = await http.post(url, params=query(), json={"RoomId": "room-test"})
            code = response.json()["ErrorCode"] if response.status_code == 200 else None
            assert (response.status_code, code) == expected
    finally:
        await emu.stop()


async def test_hang_rate_one_never_answers(http: httpx.AsyncClient) -> None:
    emu = make_emulator(hang_rate=1.0)
    await emu.start()
    try:
        url = emu.base_url + "/v4/room_engine_http_srv/get_room_info"
        with pytest.raises(httpx.ReadTimeout):
            await http.post(url, params=query(), json={"RoomId": "room-test"}, timeout=0.2)
    finally:
        await asyncio.wait_for(emu.stop(), timeout=10)
    assert emu.requests[0].http_status is None


async def test_seeded_fault_rates_are_reproducible(http: httpx.AsyncClient) -> None:
    async def codes(seed: int) -> list[int]:
        emu = make_emulator(fail_rate=0.5, seed=seed)
        await emu.start()
        try:
            body = {"RoomId": "room-test"}
            return [(await call(http, emu, "get_room_info", body))["ErrorCode"] for _ in range(20)]
        finally:
            await emu.stop()

    first = await codes(11)
    assert first == await codes(11)
    assert set(first) == {0, 100001}


async def test_latency_is_added(http: httpx.AsyncClient) -> None:
    emu = make_emulator(latency_s=0.2)
    await emu.start()
    try:
        began = time.monotonic()
        await call(http, emu, "get_room_info", {"RoomId": "room-test"})
        assert time.monotonic() - began >= 0.2
    finally:
        await emu.stop()


@pytest.mark.parametrize(
    "bad",
    [
        {"fail_rate": 1.5},
        {"http_502_rate": -0.1},
        {"hang_rate": float("nan")},
        {"fail_rate": 0.6, "hang_rate": 0.6},
        {"latency_s": -1.0},
        {"rate_limit_per_api": 0},
        {"rooms": [{"RoomName": "no id"}]},
        {"rooms": [{"RoomId": "x", "MaxMemberCount": "lots"}]},
    ],
)
def test_bad_options_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case words it differently
        make_emulator(**bad)


# -- the record of requests -------------------------------------------------------------------


async def test_requests_are_recorded_without_the_usersig(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    await call(http, emulator, "get_room_info", {"RoomId": "room-test"})
    await call(http, emulator, "update_room_info", None, raw=b"nope")
    ok, bad = emulator.requests
    assert ok.command == "get_room_info"
    assert ok.query["usersig"] == "***"
    assert ok.query["identifier"] == ADMIN
    assert ok.body == {"RoomId": "room-test"}
    assert (ok.error_code, ok.http_status) == (0, 200)
    assert ok.request_id is not None
    assert REQUEST_ID.match(ok.request_id)
    assert bad.body is None
    assert bad.error_code == 60003
    assert GOOD_SIG not in repr(emulator.requests)
    assert KEY not in repr(emulator)


def test_demo_rooms_seed_cleanly() -> None:
    emu = make_emulator(rooms=DEMO_ROOMS)
    assert "room-test" in emu.rooms
    assert set(emu.rooms) == {room["RoomId"] for room in DEMO_ROOMS}
    for room in emu.rooms.values():
        assert set(room) == set(ROOM_FIELDS)


def test_base_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not been started"):
        _ = make_emulator().base_url
