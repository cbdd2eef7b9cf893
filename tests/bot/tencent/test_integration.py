"""The real client against the emulator on 127.0.0.1: success, every error class, retries, rate."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.budget import RateBudget
from bot.models import RoomPatch
from bot.tencent.client import RetryPolicy, RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from bot.tencent.errors import (
    ApiError,
    MalformedResponse,
    RequestTimeout,
    RoomEngineError,
    TransportError,
)

APP = 1400000000
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
ADMIN = "administrator"
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, total_budget_s=10)


def client_for(base_url: str, **overrides: Any) -> RoomEngineClient:
    kwargs: dict[str, Any] = {
        "base_url": base_url,
        "sdkappid": APP,
        "secret_key": KEY,
        "admin_id": ADMIN,
        "rate_budget": RateBudget(200),
        "retry": FAST_RETRY,
    }
    kwargs.update(overrides)
    return RoomEngineClient(**kwargs)


@pytest.fixture
async def emulator() -> AsyncIterator[RoomEngineEmulator]:
    emu = RoomEngineEmulator(
        sdkappid=APP, secret_key=KEY, admin_id=ADMIN, rooms=["room-test", "lobby"]
    )
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def client(emulator: RoomEngineEmulator) -> AsyncIterator[RoomEngineClient]:
    async with client_for(emulator.base_url) as c:
        yield c


# -- success ----------------------------------------------------------------------------------


async def test_update_then_read(emulator: RoomEngineEmulator, client: RoomEngineClient) -> None:
    patch = RoomPatch.of(
        "room-test",
        {"IsAudioDisabled": True, "RoomName": "Incident 42 🚨", "TakeSeatMode": "ApplyToTake"},
    )
    result = await client.update_room_info(patch)
    assert result.attempts == 1
    assert result.request_id == emulator.requests[-1].request_id
    snap = await client.get_room_info("room-test")
    assert snap.room.is_audio_disabled is True
    assert snap.room.room_name == "Incident 42 🚨"
    assert snap.room.take_seat_mode == "ApplyToTake"
    assert snap.room.is_video_disabled is False  # untouched
    assert snap.request_id != result.request_id
    assert emulator.requests[0].body == patch.body()  # partial means partial, on the wire too


async def test_create_and_destroy(emulator: RoomEngineEmulator, client: RoomEngineClient) -> None:
    await client.create_room("war-room", RoomName="War room", MaxMemberCount=50)
    snap = await client.get_room_info("war-room")
    assert (snap.room.room_name, snap.room.max_member_count) == ("War room", 50)
    assert snap.room.room_type == "Conference"
    await client.destroy_room("war-room")
    assert "war-room" not in emulator.rooms


# -- every error class ------------------------------------------------------------------------


async def test_unknown_room_is_an_api_error_with_hint(client: RoomEngineClient) -> None:
    with pytest.raises(ApiError) as excinfo:
        await client.get_room_info("no-such-room")
    err = excinfo.value
    assert err.code == 100004
    assert err.request_id is not None
    assert err.request_id.startswith("Id-")
    assert "check the ID" in err.hint
    assert err.attempts == 1


async def test_invalid_field_is_100002_naming_it(client: RoomEngineClient) -> None:
    patch = RoomPatch.of("room-test", {"CustomInfo": "x" * 501})
    with pytest.raises(ApiError) as excinfo:
        await client.update_room_info(patch)
    assert excinfo.value.code == 100002
    assert "CustomInfo" in excinfo.value.info


async def test_key_of_another_app_is_70009(emulator: RoomEngineEmulator) -> None:
    async with client_for(emulator.base_url, secret_key="0" * 64) as wrong:
        with pytest.raises(ApiError) as excinfo:
            await wrong.get_room_info("room-test")
    assert excinfo.value.code == 70009
    assert excinfo.value.hint.startswith("the secret key belongs to another SDKAppID")
    assert excinfo.value.attempts == 1  # credentials do not get better by retrying


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"sdkappid": 1400000999}, 70020), ({"admin_id": "bob"}, 60010)],
)
async def test_wrong_identity_is_rejected(
    emulator: RoomEngineEmulator, overrides: dict[str, Any], code: int
) -> None:
    async with client_for(emulator.base_url, **overrides) as wrong:
        with pytest.raises(ApiError) as excinfo:
            await wrong.get_room_info("room-test")
    assert excinfo.value.code == code


async def test_expired_sig_from_a_skewed_clock_is_70001(emulator: RoomEngineEmulator) -> None:
    skewed = time.time() - 3 * 86400  # our clock three days behind: the sig looks expired
    async with client_for(emulator.base_url, clock=lambda: skewed) as late:
        with pytest.raises(ApiError) as excinfo:
            await late.get_room_info("room-test")
    assert excinfo.value.code == 70001


async def test_nothing_listening_is_a_transport_error() -> None:
    with socket.socket() as sock:  # find a port, then free it: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with client_for(f"http://127.0.0.1:{port}") as nowhere:
        with pytest.raises(TransportError) as excinfo:
            await nowhere.get_room_info("room-test")
    err = excinfo.value
    assert type(err) is TransportError
    assert err.status is None
    assert err.attempts == 4
    assert "usersig" not in str(err).replace("usersig=***", "")


@pytest.mark.slow  # the real clock
async def test_hang_is_a_timeout_after_retries(
    emulator: RoomEngineEmulator,
) -> None:
    emulator.script("get_room_info", ["hang", "hang"])
    async with client_for(emulator.base_url, timeout_s=0.3) as impatient:
        snap = await impatient.get_room_info("room-test")  # third attempt answers
        assert snap.attempts == 3
        emulator.script("update_room_info", ["hang"] * 4)
        with pytest.raises(RequestTimeout) as excinfo:
            await impatient.update_room_info(RoomPatch.of("room-test", {"IsAudioDisabled": True}))
    assert excinfo.value.attempts == 4


async def test_non_room_engine_server_is_malformed() -> None:
    from aiohttp import web

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>captive portal</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", html)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with client_for(f"http://127.0.0.1:{port}") as confused:
            with pytest.raises(MalformedResponse):
                await confused.get_room_info("room-test")
    finally:
        await runner.cleanup()


# -- retries ----------------------------------------------------------------------------------


async def test_retries_that_succeed(emulator: RoomEngineEmulator, client: RoomEngineClient) -> None:
    emulator.script("update_room_info", [100001, "502", 60007])
    result = await client.update_room_info(RoomPatch.of("room-test", {"IsVideoDisabled": True}))
    assert result.attempts == 4
    assert emulator.rooms["room-test"]["IsVideoDisabled"] is True
    assert [r.error_code for r in emulator.requests] == [100001, None, 60007, 0]


async def test_retries_that_give_up_keep_the_last_request_id(
    emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    emulator.script("update_room_info", [100001, 100001, 100001, "502"])
    with pytest.raises(TransportError) as excinfo:
        await client.update_room_info(RoomPatch.of("room-test", {"IsVideoDisabled": True}))
    err = excinfo.value
    assert err.status == 502
    assert err.attempts == 4
    assert err.request_id == emulator.requests[2].request_id  # last answer that had one
    assert emulator.rooms["room-test"]["IsVideoDisabled"] is False


async def test_permanent_errors_are_tried_once(
    emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    emulator.script("destroy_room", [100006])
    with pytest.raises(ApiError) as excinfo:
        await client.destroy_room("room-test")
    assert excinfo.value.code == 100006
    assert len(emulator.requests) == 1


async def test_random_faults_are_absorbed_by_retries() -> None:
    emu = RoomEngineEmulator(
        sdkappid=APP, secret_key=KEY, rooms=["room-test"], fail_rate=0.2, http_502_rate=0.1, seed=4
    )
    await emu.start()
    try:
        policy = RetryPolicy(max_attempts=8, base_delay=0.005, max_delay=0.02)
        async with client_for(emu.base_url, retry=policy) as c:
            results = await asyncio.gather(
                *(
                    c.update_room_info(RoomPatch.of("room-test", {"MaxMemberCount": n + 1}))
                    for n in range(40)
                )
            )
        assert any(r.attempts > 1 for r in results)
        faults = [r for r in emu.requests if r.error_code != 0]
        assert faults  # the seed did inject some
        assert sum(r.attempts for r in results) == len(emu.requests)
    finally:
        await emu.stop()


# -- the rate budget --------------------------------------------------------------------------


@pytest.mark.slow  # the real clock
async def test_rate_budget_keeps_a_burst_under_the_emulator_limit() -> None:
    # The emulator allows 25/s per API; the bot's budget is 20/s. 50 concurrent calls must take
    # at least two windows' worth of time and never draw a single 60007.
    emu = RoomEngineEmulator(
        sdkappid=APP, secret_key=KEY, rooms=["room-test"], rate_limit_per_api=25
    )
    await emu.start()
    try:
        no_retry = RetryPolicy(max_attempts=1)
        async with client_for(emu.base_url, rate_budget=RateBudget(20), retry=no_retry) as c:
            began = time.monotonic()
            await asyncio.gather(*(c.get_room_info("room-test") for _ in range(50)))
            elapsed = time.monotonic() - began
        assert emu.rate_limited == 0
        assert len(emu.requests) == 50
        assert elapsed >= 2.0  # calls 21 and 41 each wait for a window to pass
    finally:
        await emu.stop()


async def test_without_the_budget_the_emulator_would_refuse() -> None:
    # Control for the test above: the same burst, unpaced, does trip 60007.
    emu = RoomEngineEmulator(
        sdkappid=APP, secret_key=KEY, rooms=["room-test"], rate_limit_per_api=25
    )
    await emu.start()
    try:
        no_retry = RetryPolicy(max_attempts=1)
        async with client_for(
            emu.base_url, rate_budget=RateBudget(200, burst=200), retry=no_retry
        ) as c:
            outcomes = await asyncio.gather(
                *(c.get_room_info("room-test") for _ in range(50)), return_exceptions=True
            )
        refused = [o for o in outcomes if isinstance(o, ApiError) and o.code == 60007]
        assert refused
        assert all(not isinstance(o, RoomEngineError) or o in refused for o in outcomes)
        assert emu.rate_limited == len(refused)
    finally:
        await emu.stop()
