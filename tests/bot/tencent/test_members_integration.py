"""The client's member and callback-configuration calls against the emulator on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.models import BannedMember, CallbackConfig, RoomMember
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import DEMO_ROOMS, RoomEngineEmulator
from bot.tencent.errors import ApiError, TransportError
from testkit.clock import FakeClock
from tests.bot.tencent.test_client_members import Call
from tests.bot.tencent.test_integration import ADMIN, APP, KEY, client_for

UPDATE = "Room.CallbackAfterUpdateRoomInfo"
LEAVE = "Room.CallbackAfterMemberLeave"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
async def emulator(clock: FakeClock) -> AsyncIterator[RoomEngineEmulator]:
    emu = RoomEngineEmulator(
        sdkappid=APP, secret_key=KEY, admin_id=ADMIN, rooms=DEMO_ROOMS, clock=clock
    )
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def client(emulator: RoomEngineEmulator, clock: FakeClock) -> AsyncIterator[RoomEngineClient]:
    async with client_for(emulator.base_url, clock=clock) as c:
        yield c


async def test_list_the_demo_room(client: RoomEngineClient) -> None:
    listing = await client.get_room_members("room-test")
    assert listing.members == (
        RoomMember("alice", "Alice Chen", "Owner"),
        RoomMember("bob", "Bob Okafor", "Admin"),
        RoomMember("carol", "Carol Díaz", "Member"),
        RoomMember("dave", "Dave", "Member"),
    )
    assert not listing.truncated
    assert len(listing.request_ids) == 1
    assert listing.request_ids[0].startswith("Id-")


@pytest.mark.parametrize(("page_size", "cap"), [(1, 100), (3, 100), (7, 100), (50, 100), (3, 5)])
async def test_paging_over_http(
    emulator: RoomEngineEmulator, client: RoomEngineClient, page_size: int, cap: int
) -> None:
    accounts = [f"guest-{n:02d}" for n in range(30)]
    for account in accounts:
        emulator.member_enter("town-hall", account)
    expected = emulator.members["town-hall"].accounts()
    listing = await client.get_room_members("town-hall", max_members=cap, page_size=page_size)
    assert [m.account for m in listing.members] == expected[:cap]
    assert listing.truncated == (cap < len(expected))
    # One request per page, never an extra one to find out the list had ended.
    assert len(listing.request_ids) == -(-min(cap, len(expected)) // page_size)


async def test_kick_ban_unban_round_trip(
    emulator: RoomEngineEmulator, client: RoomEngineClient, clock: FakeClock
) -> None:
    result = await client.kick_user_out("room-test", ["dave"], "by U123 via roombot")
    assert result.attempts == 1
    assert result.request_id == emulator.requests[-1].request_id
    await client.ban_room_member("room-test", ["carol"], "abuse", 7200)
    members = await client.get_room_members("room-test")
    assert [m.account for m in members.members] == ["alice", "bob"]
    banned = await client.get_banned_members("room-test")
    assert banned.members == (BannedMember("carol", int(clock.now) + 7200),)
    await client.unban_room_member("room-test", ["carol"])
    assert (await client.get_banned_members("room-test")).members == ()
    emulator.member_enter("room-test", "carol")  # free to come back
    clock.now += 10
    await client.ban_room_member("room-test", ["carol"], "again", 5)
    clock.now += 5
    assert (await client.get_banned_members("room-test")).members == ()  # expired


@pytest.mark.parametrize(
    ("call", "code", "hint"),
    [
        (lambda c: c.kick_user_out("room-test", ["ghost"], "x"), 100005, "not a member"),
        (lambda c: c.unban_room_member("room-test", ["bob"]), 100005, "not banned"),
        (lambda c: c.kick_user_out("room-test", ["alice"], "x"), 100006, "permission"),
        (lambda c: c.get_room_members("no-such-room"), 100004, "check the ID"),
        (lambda c: c.get_banned_members("no-such-room"), 100004, "check the ID"),
        (lambda c: c.delete_callback(), 100301, "create one first"),
        (lambda c: c.update_callback("https://x.example/cb", [UPDATE]), 100301, "create one"),
        (lambda c: c.set_callback("https://x.example/cb", ["Room.Nope"]), 100002, "parameter"),
    ],
)
async def test_refusals_are_api_errors_with_hints(
    client: RoomEngineClient, call: Call, code: int, hint: str
) -> None:
    with pytest.raises(ApiError) as excinfo:
        await call(client)
    assert excinfo.value.code == code
    assert hint in excinfo.value.hint
    assert excinfo.value.request_id is not None
    assert excinfo.value.attempts == 1


async def test_destroyed_room_is_gone_for_member_calls(
    emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    await client.destroy_room("standup")
    for call in (
        client.get_room_member_list("standup"),
        client.kick_user_out("standup", ["frank"], "x"),
        client.get_banned_member_list("standup"),
    ):
        with pytest.raises(ApiError) as excinfo:
            await call
        assert excinfo.value.code == 100004


async def test_callback_configuration_through_the_client(
    emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    assert await client.get_callback() is None
    url = "https://bot.example/tencent/callback?token=t0k"
    await client.set_callback(url, [UPDATE, LEAVE])
    got = await client.get_callback()
    assert isinstance(got, CallbackConfig)
    assert (got.url, got.commands) == (url, (UPDATE, LEAVE))
    with pytest.raises(ApiError) as excinfo:
        await client.set_callback(url, [UPDATE])
    assert excinfo.value.code == 100300
    await client.update_callback(url, [LEAVE])
    assert emulator.callback_target(UPDATE) is None
    assert emulator.callback_target(LEAVE) == url
    await client.delete_callback()
    assert await client.get_callback() is None
    paths = {r.command for r in emulator.requests}
    assert {"set_callback", "get_callback", "update_callback", "delete_callback"} <= paths


async def test_kick_is_not_repeated_after_an_unseen_outcome(
    emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    emulator.script("kick_user_out", ["502"])
    with pytest.raises(TransportError) as excinfo:
        await client.kick_user_out("room-test", ["dave"], "x")
    assert excinfo.value.status == 502
    assert excinfo.value.attempts == 1
    emulator.script("kick_user_out", [60007])  # refused before processing: retried
    result = await client.kick_user_out("room-test", ["dave"], "x")
    assert result.attempts == 2
    assert "dave" not in emulator.members["room-test"]


async def test_member_list_is_retried(
    emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    emulator.script("get_room_member_list", [100001, "502"])
    page = await client.get_room_member_list("room-test")
    assert page.attempts == 3
    assert len(page.members) == 4
