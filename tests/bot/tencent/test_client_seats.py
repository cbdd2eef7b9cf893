"""The client's seat APIs: requests, parsing, retries and hints (against `httpx.MockTransport`),
and the same calls against the emulator."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from bot.budget import RateBudget
from bot.models import Seat, SeatList
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import DEMO_ROOMS, RoomEngineEmulator
from bot.tencent.errors import ERROR_HINTS, ApiError, MalformedResponse, TransportError
from tests.bot.tencent.test_client import ADMIN, APP, KEY, Recorder, fail, make_client, ok

Call = Callable[[RoomEngineClient], Awaitable[Any]]


def _lock(client: RoomEngineClient) -> Awaitable[Any]:
    return client.lock_seat("r", 2, forbid_taken=True, forbid_video=False, forbid_audio=True)


@pytest.mark.parametrize(
    ("invoke", "path", "body"),
    [
        (lambda c: c.get_seat_list("r"), "get_seat_list", {"RoomId": "r"}),
        (
            _lock,
            "lock_seat",
            {
                "RoomId": "r",
                "Index": 2,
                "ForbidTaken": True,
                "ForbidVideo": False,
                "ForbidAudio": True,
            },
        ),
        (
            lambda c: c.kick_user_off_seat("r", "u1", "time over"),
            "kick_user_off_seat",
            {"RoomId": "r", "Member_Account": "u1", "Data": "time over"},
        ),
        (
            lambda c: c.pick_user_on_seat("r", 1, "u1"),
            "pick_user_on_seat",
            {"RoomId": "r", "Member_Account": "u1", "Index": 1},
        ),
    ],
)
async def test_requests_are_built_exactly(invoke: Call, path: str, body: dict[str, Any]) -> None:
    recorder = Recorder(ok(Response={"SeatList": []}))
    async with make_client(recorder) as client:
        await invoke(client)
    (request,) = recorder.requests
    assert request.url.path == f"/v4/room_engine_http_mic/{path}"
    assert json.loads(request.content) == body


def test_lock_seat_cannot_be_called_without_all_three_flags() -> None:
    parameters = inspect.signature(RoomEngineClient.lock_seat).parameters
    for name in ("forbid_taken", "forbid_video", "forbid_audio"):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default is inspect.Parameter.empty


@pytest.mark.parametrize(
    "invoke",
    [
        lambda c: c.lock_seat("r", -1, forbid_taken=True, forbid_video=False, forbid_audio=False),
        lambda c: c.lock_seat("r", True, forbid_taken=True, forbid_video=False, forbid_audio=False),
        lambda c: c.lock_seat("r", 1, forbid_taken=1, forbid_video=False, forbid_audio=False),
        lambda c: c.kick_user_off_seat("r", "", "x"),
        lambda c: c.kick_user_off_seat("r", "u1", "x" * 1001),
        lambda c: c.pick_user_on_seat("r", -2, "u1"),
        lambda c: c.pick_user_on_seat("r", 0, "has space"),
    ],
)
async def test_bad_arguments_raise_value_error_without_a_call(invoke: Call) -> None:
    recorder = Recorder(ok())
    async with make_client(recorder) as client:
        with pytest.raises(ValueError):  # noqa: PT011 - the message is the argument's problem
            await invoke(client)
    assert recorder.requests == []


async def test_the_seat_list_is_read_leniently_and_in_index_order() -> None:
    answer = ok(
        request_id="Id-seats",
        Response={
            "SeatList": [
                {"Index": 2, "Member_Account": 144115233775727695, "IsAudioDisabled": "true"},
                {"Index": 0, "Member_Account": "user2", "IsTakenDisabled": False},
                {"Index": 1, "Member_Account": "", "IsTakenDisabled": "true", "Extra": 1},
                {"Index": 3},
            ]
        },
    )
    async with make_client(Recorder(answer)) as client:
        listed = await client.get_seat_list("r")
    assert listed == SeatList(
        "r",
        (
            Seat(0, "user2"),
            Seat(1, None, locked=True),
            Seat(2, "144115233775727695", audio_forbidden=True),
            Seat(3),
        ),
        "Id-seats",
    )
    assert listed.seat_of("user2") == Seat(0, "user2")
    assert listed.seat(7) is None
    assert listed.span() == "0-3"


@pytest.mark.parametrize(
    "response",
    [None, {"SeatList": [{"Member_Account": "u"}]}, {"SeatList": [{"Index": -1}]}, {"SeatList": 3}],
)
async def test_seat_lists_that_do_not_fit_are_malformed(response: Any) -> None:
    answer = ok() if response is None else ok(Response=response)
    async with make_client(Recorder(answer)) as client:
        with pytest.raises(MalformedResponse):
            await client.get_seat_list("r")


@pytest.mark.parametrize("code", [100200, 100202, 100203, 100205, 100206, 100210, 100211])
async def test_the_seat_codes_carry_hints(code: int) -> None:
    async with make_client(Recorder(fail(code))) as client:
        with pytest.raises(ApiError) as excinfo:
            await client.pick_user_on_seat("r", 0, "u1")
    assert excinfo.value.hint == ERROR_HINTS[code]


def test_the_100206_hint_says_the_account_is_not_on_a_seat_and_where_to_look() -> None:
    assert "not on a seat" in ERROR_HINTS[100206]
    assert "`/room seats ROOM`" in ERROR_HINTS[100206]


# -- which calls are retried ------------------------------------------------------------------

_IDEMPOTENT: list[Call] = [lambda c: c.get_seat_list("r"), _lock]
_ONCE_ONLY: list[Call] = [
    lambda c: c.kick_user_off_seat("r", "u1", "x"),
    lambda c: c.pick_user_on_seat("r", 0, "u1"),
]
_GOOD = ok(Response={"SeatList": []})
_AMBIGUOUS: list[httpx.Response | Exception] = [
    fail(100001),
    httpx.Response(502),
    httpx.ReadTimeout("slow"),
]
_CERTAINLY_NOT_APPLIED: list[httpx.Response | Exception] = [
    fail(60007),
    httpx.ConnectError("refused"),
]


@pytest.mark.parametrize("first", _AMBIGUOUS)
@pytest.mark.parametrize("invoke", _IDEMPOTENT)
async def test_reads_and_lock_seat_retry_any_transient_failure(
    invoke: Call, first: httpx.Response | Exception
) -> None:
    recorder = Recorder(first, _GOOD)
    async with make_client(recorder) as client:
        await invoke(client)
    assert len(recorder.requests) == 2


@pytest.mark.parametrize("first", _AMBIGUOUS)
@pytest.mark.parametrize("invoke", _ONCE_ONLY)
async def test_kick_and_pick_are_not_repeated_when_they_may_have_applied(
    invoke: Call, first: httpx.Response | Exception
) -> None:
    recorder = Recorder(first, _GOOD)
    async with make_client(recorder) as client:
        with pytest.raises((ApiError, TransportError)):
            await invoke(client)
    assert len(recorder.requests) == 1


@pytest.mark.parametrize("first", _CERTAINLY_NOT_APPLIED)
@pytest.mark.parametrize("invoke", _ONCE_ONLY)
async def test_kick_and_pick_retry_what_certainly_did_not_apply(
    invoke: Call, first: httpx.Response | Exception
) -> None:
    recorder = Recorder(first, _GOOD)
    async with make_client(recorder) as client:
        await invoke(client)
    assert len(recorder.requests) == 2


# -- against the emulator ---------------------------------------------------------------------


@pytest.fixture
async def live() -> AsyncIterator[tuple[RoomEngineEmulator, RoomEngineClient]]:
    emulator = RoomEngineEmulator(sdkappid=APP, secret_key=KEY, admin_id=ADMIN, rooms=DEMO_ROOMS)
    async with emulator:
        client = RoomEngineClient(
            base_url=emulator.base_url,
            sdkappid=APP,
            secret_key=KEY,
            admin_id=ADMIN,
            rate_budget=RateBudget(200, burst=200),
        )
        async with client:
            yield emulator, client


async def test_seat_calls_against_the_emulator(
    live: tuple[RoomEngineEmulator, RoomEngineClient],
) -> None:
    _, client = live
    before = await client.get_seat_list("town-hall")
    assert [s.account for s in before.seats[:4]] == ["host-1", "ceo", "staff-1", "staff-2"]
    assert before.seat(3) == Seat(3, "staff-2", audio_forbidden=True)
    await client.lock_seat(
        "town-hall", 2, forbid_taken=True, forbid_video=False, forbid_audio=False
    )
    await client.kick_user_off_seat("town-hall", "ceo", "time over")
    await client.pick_user_on_seat("town-hall", 4, "staff-3")
    after = await client.get_seat_list("town-hall")
    assert after.seat(2) == Seat(2, None, locked=True)  # locking took staff-1 off
    assert after.seat(1) == Seat(1)
    assert after.seat_of("staff-3") == Seat(4, "staff-3")
    with pytest.raises(ApiError) as excinfo:
        await client.kick_user_off_seat("town-hall", "staff-1", "again")
    assert excinfo.value.code == 100206
    assert "not on a seat" in excinfo.value.hint
    assert (await client.get_seat_list("room-test")).seats == ()
