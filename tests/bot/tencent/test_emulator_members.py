"""The emulator's member APIs, driven with raw HTTP, and its member state under property tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.tencent.emulator import DEMO_ROOMS, RoomEngineEmulator
from bot.tencent.emulator_errors import Refusal
from bot.tencent.emulator_members import RoomMembers
from testkit.clock import FakeClock
from tests.bot.tencent.test_emulator import APP, KEY, NOW, call

MEMBERS = [
    {"Member_Account": "owner", "NameCard": "The Owner"},
    {"Member_Account": "admin1", "NameCard": "Admin One", "Role": "Admin", "Marks": [7]},
    {"Member_Account": "m1", "NameCard": "Member 1", "CustomInfo": "x"},
    "m2",
    "m3",
]
_PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(float(NOW))


@pytest.fixture
async def emulator(clock: FakeClock) -> AsyncIterator[RoomEngineEmulator]:
    emu = RoomEngineEmulator(
        sdkappid=APP,
        secret_key=KEY,
        rooms=[
            {"RoomId": "hall", "Owner_Account": "owner", "MemberList": MEMBERS},
            "empty",
            {"RoomId": "tiny", "MaxMemberCount": 2, "MemberList": ["a", "b"]},
        ],
        clock=clock,
        # The property tests page hundreds of times a second; the rate limit is tested elsewhere.
        rate_limit_per_api=1_000_000,
    )
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def members_of(
    http: httpx.AsyncClient, emu: RoomEngineEmulator, room: str, count: int = 100
) -> list[str]:
    data = await call(http, emu, "get_room_member_list", {"RoomId": room, "Count": count})
    assert data["ErrorCode"] == 0, data
    return [m["Member_Account"] for m in data["Response"]["MemberList"]]


async def banned_of(http: httpx.AsyncClient, emu: RoomEngineEmulator, room: str) -> dict[str, int]:
    data = await call(http, emu, "get_banned_member_list", {"RoomId": room})
    assert data["ErrorCode"] == 0, data
    return {b["Member_Account"]: b["BannedUntil"] for b in data["Response"]["BannedAccountList"]}


# -- listing ----------------------------------------------------------------------------------


async def test_member_list_reports_every_field_and_role(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    data = await call(http, emulator, "get_room_member_list", {"RoomId": "hall"})
    assert data["ErrorCode"] == 0
    response = data["Response"]
    assert response["Next"] == ""  # five members fit the default page of 50
    first, second, third, fourth = response["MemberList"][:4]
    assert first == {
        "Member_Account": "owner",
        "NameCard": "The Owner",
        "Role": "Owner",
        "Marks": [],
        "CustomInfo": "",
    }
    assert second["Role"] == "Admin"
    assert second["Marks"] == [7]
    assert (third["Role"], third["CustomInfo"]) == ("Member", "x")
    assert fourth == {
        "Member_Account": "m2",
        "NameCard": "",
        "Role": "Member",
        "Marks": [],
        "CustomInfo": "",
    }
    room = (await call(http, emulator, "get_room_info", {"RoomId": "hall"}))["Response"]
    assert room["RoomInfo"]["MemberCount"] == 5


async def test_member_list_pages_with_next(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        body = {"RoomId": "hall", "Count": 2, "Next": cursor}
        data = await call(http, emulator, "get_room_member_list", body)
        page = data["Response"]
        seen += [m["Member_Account"] for m in page["MemberList"]]
        pages += 1
        cursor = page["Next"]
        if not cursor:
            break
    assert seen == ["owner", "admin1", "m1", "m2", "m3"]
    assert pages == 3


async def test_empty_room_lists_nobody(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    data = await call(http, emulator, "get_room_member_list", {"RoomId": "empty"})
    assert data["Response"] == {"Next": "", "MemberList": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"RoomId": "hall", "Count": 0}, "Count"),
        ({"RoomId": "hall", "Count": 101}, "Count"),
        ({"RoomId": "hall", "Count": "10"}, "Count"),
        ({"RoomId": "hall", "Count": True}, "Count"),
        ({"RoomId": "hall", "Next": 5}, "Next"),
        ({"RoomId": "hall", "Next": "not-a-cursor"}, "Next"),
        ({"Count": 10}, "RoomId"),
    ],
)
async def test_member_list_validates(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    data = await call(http, emulator, "get_room_member_list", body)
    assert data["ErrorCode"] == 100002
    assert field in data["ErrorInfo"]


# -- kick ---------------------------------------------------------------------------------------


async def test_kick_removes_members(emulator: RoomEngineEmulator, http: httpx.AsyncClient) -> None:
    body = {"RoomId": "hall", "MemberList_Account": ["m1", "m3"], "Reason": "spam"}
    assert (await call(http, emulator, "kick_user_out", body))["ErrorCode"] == 0
    assert await members_of(http, emulator, "hall") == ["owner", "admin1", "m2"]
    assert emulator.rooms["hall"]["MemberCount"] == 3
    assert await banned_of(http, emulator, "hall") == {}  # a kick is not a ban
    emulator.member_enter("hall", "m1")  # and a kicked member may come back
    assert (await members_of(http, emulator, "hall"))[-1] == "m1"


async def test_kick_is_all_or_nothing(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    body = {"RoomId": "hall", "MemberList_Account": ["m1", "ghost", "m2", "nobody"], "Reason": "x"}
    data = await call(http, emulator, "kick_user_out", body)
    assert data["ErrorCode"] == 100005
    assert "ghost, nobody" in data["ErrorInfo"]
    assert "m1" not in data["ErrorInfo"]
    assert len(await members_of(http, emulator, "hall")) == 5


@pytest.mark.parametrize("command", ["kick_user_out", "ban_room_member"])
async def test_the_owner_cannot_be_removed(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, command: str
) -> None:
    body = {"RoomId": "hall", "MemberList_Account": ["m1", "owner"], "Reason": "x", "Duration": 60}
    data = await call(http, emulator, command, body)
    assert data["ErrorCode"] == 100006
    assert "owner" in data["ErrorInfo"]
    assert len(await members_of(http, emulator, "hall")) == 5


_ACCOUNTS_21 = [f"u{n}" for n in range(21)]


@pytest.mark.parametrize(
    ("command", "changes", "field"),
    [
        ("kick_user_out", {"MemberList_Account": None}, "MemberList_Account"),
        ("kick_user_out", {"MemberList_Account": "m1"}, "MemberList_Account"),
        ("kick_user_out", {"MemberList_Account": []}, "MemberList_Account"),
        ("kick_user_out", {"MemberList_Account": _ACCOUNTS_21}, "MemberList_Account"),
        ("kick_user_out", {"MemberList_Account": ["m1", 5]}, "MemberList_Account"),
        ("kick_user_out", {"MemberList_Account": ["m1", ""]}, "MemberList_Account"),
        ("kick_user_out", {"MemberList_Account": ["m1", "m1"]}, "MemberList_Account"),
        ("kick_user_out", {"Reason": None}, "Reason"),
        ("kick_user_out", {"Reason": ""}, "Reason"),
        ("kick_user_out", {"Reason": 42}, "Reason"),
        ("kick_user_out", {"Reason": "é" * 501}, "Reason"),  # 1002 bytes, 501 characters
        ("kick_user_out", {"RoomId": None}, "RoomId"),
        ("ban_room_member", {"Duration": None}, "Duration"),
        ("ban_room_member", {"Duration": 0}, "Duration"),
        ("ban_room_member", {"Duration": -5}, "Duration"),
        ("ban_room_member", {"Duration": 1.5}, "Duration"),
        ("ban_room_member", {"Duration": "60"}, "Duration"),
        ("ban_room_member", {"Duration": True}, "Duration"),
        ("ban_room_member", {"Duration": 2**31}, "Duration"),
        ("ban_room_member", {"Reason": None}, "Reason"),
        ("ban_room_member", {"MemberList_Account": _ACCOUNTS_21}, "MemberList_Account"),
        ("unban_room_member", {"MemberList_Account": None}, "MemberList_Account"),
        ("unban_room_member", {"MemberList_Account": _ACCOUNTS_21}, "MemberList_Account"),
    ],
)
async def test_moderation_calls_validate(
    emulator: RoomEngineEmulator,
    http: httpx.AsyncClient,
    command: str,
    changes: dict[str, Any],
    field: str,
) -> None:
    body: dict[str, Any] = {
        "RoomId": "hall",
        "MemberList_Account": ["m1"],
        "Reason": "r",
        "Duration": 60,
    }
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    data = await call(http, emulator, command, body)
    assert data["ErrorCode"] == 100002, data
    assert field in data["ErrorInfo"]
    assert len(await members_of(http, emulator, "hall")) == 5
    assert await banned_of(http, emulator, "hall") == {}


async def test_limits_are_inclusive(emulator: RoomEngineEmulator, http: httpx.AsyncClient) -> None:
    accounts = [f"u{n}" for n in range(20)]
    for account in accounts:
        emulator.member_enter("empty", account)
    body = {"RoomId": "empty", "MemberList_Account": accounts, "Reason": "é" * 500}
    assert (await call(http, emulator, "kick_user_out", body))["ErrorCode"] == 0
    assert emulator.members["empty"].accounts() == []


# -- ban and unban ------------------------------------------------------------------------------


async def test_ban_removes_records_and_blocks_until_it_expires(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    body = {"RoomId": "hall", "MemberList_Account": ["m2"], "Reason": "abuse", "Duration": 600}
    assert (await call(http, emulator, "ban_room_member", body))["ErrorCode"] == 0
    assert "m2" not in await members_of(http, emulator, "hall")
    assert await banned_of(http, emulator, "hall") == {"m2": NOW + 600}
    with pytest.raises(Refusal) as refused:
        emulator.member_enter("hall", "m2")
    assert refused.value.code == 100006
    assert "banned" in refused.value.info
    clock.now += 599
    with pytest.raises(Refusal):
        emulator.member_enter("hall", "m2")
    clock.now += 1  # BannedUntil reached: the ban is over
    assert await banned_of(http, emulator, "hall") == {}
    emulator.member_enter("hall", "m2")
    assert "m2" in await members_of(http, emulator, "hall")


async def test_ban_of_a_non_member_is_refused_whole(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    body = {"RoomId": "hall", "MemberList_Account": ["m1", "ghost"], "Reason": "r", "Duration": 60}
    data = await call(http, emulator, "ban_room_member", body)
    assert data["ErrorCode"] == 100005
    assert "ghost" in data["ErrorInfo"]
    assert await banned_of(http, emulator, "hall") == {}
    assert "m1" in await members_of(http, emulator, "hall")


async def test_unban_lifts_bans_and_refuses_accounts_not_banned(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    ban = {"RoomId": "hall", "MemberList_Account": ["m1", "m2"], "Reason": "r", "Duration": 60}
    assert (await call(http, emulator, "ban_room_member", ban))["ErrorCode"] == 0
    mixed = {"RoomId": "hall", "MemberList_Account": ["m1", "m3"]}
    data = await call(http, emulator, "unban_room_member", mixed)
    assert data["ErrorCode"] == 100005
    assert "m3" in data["ErrorInfo"]
    assert set(await banned_of(http, emulator, "hall")) == {"m1", "m2"}  # nothing changed
    unban = {"RoomId": "hall", "MemberList_Account": ["m1"]}
    assert (await call(http, emulator, "unban_room_member", unban))["ErrorCode"] == 0
    assert set(await banned_of(http, emulator, "hall")) == {"m2"}
    again = await call(http, emulator, "unban_room_member", unban)
    assert again["ErrorCode"] == 100005  # a repeat answers differently: not retry-safe
    emulator.member_enter("hall", "m1")


async def test_banned_list_pages_by_offset(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    for n, account in enumerate(["m1", "m2", "m3"]):
        clock.now = NOW + n
        body = {"RoomId": "hall", "MemberList_Account": [account], "Reason": "r", "Duration": 100}
        assert (await call(http, emulator, "ban_room_member", body))["ErrorCode"] == 0
    pages = []
    offset = 0
    while True:
        body = {"RoomId": "hall", "Limit": 2, "Offset": offset}
        page = (await call(http, emulator, "get_banned_member_list", body))["Response"]
        pages.append(page)
        offset = page["NextOffset"]
        if offset == 0:
            break
    assert [p["NextOffset"] for p in pages] == [2, 0]
    listed = [b for p in pages for b in p["BannedAccountList"]]
    assert listed == [
        {"Member_Account": "m1", "BannedUntil": NOW + 100},
        {"Member_Account": "m2", "BannedUntil": NOW + 101},
        {"Member_Account": "m3", "BannedUntil": NOW + 102},
    ]
    clock.now = NOW + 101  # m1's and m2's bans are over
    assert await banned_of(http, emulator, "hall") == {"m3": NOW + 102}
    past_the_end = {"RoomId": "hall", "Offset": 50}
    response = (await call(http, emulator, "get_banned_member_list", past_the_end))["Response"]
    assert response == {"BannedAccountList": [], "NextOffset": 0}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"RoomId": "hall", "Limit": 0}, "Limit"),
        ({"RoomId": "hall", "Limit": 101}, "Limit"),
        ({"RoomId": "hall", "Limit": "5"}, "Limit"),
        ({"RoomId": "hall", "Offset": -1}, "Offset"),
        ({"RoomId": "hall", "Offset": "0"}, "Offset"),
        ({"Limit": 5}, "RoomId"),
    ],
)
async def test_banned_list_validates(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    data = await call(http, emulator, "get_banned_member_list", body)
    assert data["ErrorCode"] == 100002
    assert field in data["ErrorInfo"]


# -- unknown and destroyed rooms ---------------------------------------------------------------

_ON_HALL: list[tuple[str, dict[str, Any]]] = [
    ("get_room_member_list", {"RoomId": "hall"}),
    ("kick_user_out", {"RoomId": "hall", "MemberList_Account": ["m1"], "Reason": "r"}),
    (
        "ban_room_member",
        {"RoomId": "hall", "MemberList_Account": ["m1"], "Reason": "r", "Duration": 9},
    ),
    ("unban_room_member", {"RoomId": "hall", "MemberList_Account": ["m1"]}),
    ("get_banned_member_list", {"RoomId": "hall"}),
    ("get_room_info", {"RoomId": "hall"}),
    ("update_room_info", {"RoomInfo": {"RoomId": "hall", "IsAudioDisabled": True}}),
    ("destroy_room", {"RoomId": "hall"}),
]


@pytest.mark.parametrize(("command", "body"), _ON_HALL)
async def test_every_call_on_a_destroyed_room_is_100004(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, command: str, body: dict[str, Any]
) -> None:
    assert (await call(http, emulator, "destroy_room", {"RoomId": "hall"}))["ErrorCode"] == 0
    data = await call(http, emulator, command, body)
    assert data["ErrorCode"] == 100004
    assert "hall" in data["ErrorInfo"]
    with pytest.raises(Refusal) as refused:
        emulator.member_enter("hall", "m9")
    assert refused.value.code == 100004


async def test_a_recreated_room_starts_without_members_or_bans(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    ban = {"RoomId": "hall", "MemberList_Account": ["m1"], "Reason": "r", "Duration": 60}
    assert (await call(http, emulator, "ban_room_member", ban))["ErrorCode"] == 0
    assert (await call(http, emulator, "destroy_room", {"RoomId": "hall"}))["ErrorCode"] == 0
    create = {"RoomInfo": {"RoomId": "hall", "RoomType": "Conference"}}
    assert (await call(http, emulator, "create_room", create))["ErrorCode"] == 0
    assert await members_of(http, emulator, "hall") == []
    assert await banned_of(http, emulator, "hall") == {}
    emulator.member_enter("hall", "m1")


# -- entering and leaving (no REST API: the emulator's own methods) ----------------------------


def test_member_enter_and_leave_keep_the_count(clock: FakeClock) -> None:
    emu = RoomEngineEmulator(sdkappid=APP, secret_key=KEY, rooms=["r"], clock=clock)
    emu.member_enter("r", "u1", name_card="User One")
    emu.member_enter("r", "u2", role="Admin")
    assert emu.rooms["r"]["MemberCount"] == 2
    emu.member_leave("r", "u1")
    emu.member_leave("r", "u2", leave_type="Expired")
    assert emu.rooms["r"]["MemberCount"] == 0
    assert emu.members["r"].accounts() == []


@pytest.mark.parametrize(
    ("room", "account", "code"),
    [
        ("nope", "u1", 100004),
        ("tiny", "c", 100006),  # full: MaxMemberCount 2
        ("tiny", "a", 100002),  # already in
    ],
)
async def test_member_enter_refusals(
    emulator: RoomEngineEmulator, room: str, account: str, code: int
) -> None:
    with pytest.raises(Refusal) as refused:
        emulator.member_enter(room, account)
    assert refused.value.code == code
    assert refused.value.info in str(refused.value)


async def test_member_leave_refusals(emulator: RoomEngineEmulator) -> None:
    with pytest.raises(Refusal) as refused:
        emulator.member_leave("hall", "ghost")
    assert refused.value.code == 100005
    with pytest.raises(ValueError, match="Leave or Expired"):
        emulator.member_leave("hall", "m1", leave_type="Kicked")
    with pytest.raises(ValueError, match="platform"):
        emulator.member_leave("hall", "m1", platform="Amiga")


@pytest.mark.parametrize(
    "members",
    [
        [{"Member_Account": "x", "Role": "Owner"}],  # owner is the admin, not x
        [{"Member_Account": "x", "Role": "Boss"}],
        [{"NameCard": "no account"}],
        [{"Member_Account": "x", "Colour": "blue"}],
        ["x", "x"],
        "x",
    ],
)
def test_bad_seeded_members_are_refused(members: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case words it differently
        RoomEngineEmulator(
            sdkappid=APP, secret_key=KEY, rooms=[{"RoomId": "r", "MemberList": members}]
        )


def test_demo_rooms_have_an_owner_and_a_few_members() -> None:
    emu = RoomEngineEmulator(sdkappid=APP, secret_key=KEY, rooms=DEMO_ROOMS)
    for room_id, room in emu.rooms.items():
        members = emu.members[room_id]
        assert 2 <= len(members) == room["MemberCount"]
        roles = [m.role for m in members.members.values()]
        assert roles.count("Owner") == 1
        assert members.members[room["Owner_Account"]].role == "Owner"
        assert all(m.name_card for m in members.members.values())
    assert "Admin" in [m.role for m in emu.members["room-test"].members.values()]


# -- properties of the member state -------------------------------------------------------------


@_PROPS
@given(
    initial=st.integers(min_value=0, max_value=40),
    count=st.integers(min_value=1, max_value=12),
    churn=st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=60)), max_size=30),
)
def test_paging_lists_each_steady_member_exactly_once(
    initial: int, count: int, churn: list[tuple[bool, int]]
) -> None:
    """Whatever the page size, and however members come and go between pages, everyone who is
    in the room throughout is listed exactly once, and nobody is listed twice (but someone who
    left and came back during the listing, a new membership, may be listed again)."""
    room = RoomMembers(owner="owner")
    for n in range(initial):
        room.add(f"u{n}")
    steady = set(room.accounts())
    rejoined: set[str] = set()
    listed: list[str] = []
    cursor = ""
    changes = iter(churn)
    for _ in range(1000):
        page, cursor = room.page(count, cursor)
        assert len(page) <= count
        listed += [m["Member_Account"] for m in page]
        change = next(changes, None)
        if change is not None:
            enter, n = change
            account = f"u{n}"
            if enter and account not in room:
                room.add(account)
                rejoined.add(account)
            elif not enter and account in room:
                room.remove([account])
                steady.discard(account)
        if not cursor:
            break
    else:
        raise AssertionError("paging never finished")
    twice = {account for account in listed if listed.count(account) > 1}
    assert twice <= rejoined
    assert all(listed.count(account) <= 2 for account in twice)
    assert steady <= set(listed)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.integers(min_value=0, max_value=60), st.integers(min_value=1, max_value=100))
async def test_banned_paging_returns_every_ban_once(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, bans: int, limit: int
) -> None:
    """Over HTTP: any Limit pages through every ban exactly once and ends with NextOffset 0.

    One emulator serves every example; each example starts from its own set of bans.
    """
    accounts = [f"u{n}" for n in range(bans)]
    emulator.members["empty"].bans = dict.fromkeys(accounts, NOW + 60)
    listed: list[str] = []
    offset = 0
    while True:
        body = {"RoomId": "empty", "Limit": limit, "Offset": offset}
        page = (await call(http, emulator, "get_banned_member_list", body))["Response"]
        assert len(page["BannedAccountList"]) <= limit
        listed += [b["Member_Account"] for b in page["BannedAccountList"]]
        offset = page["NextOffset"]
        if offset == 0:
            break
    assert listed == accounts
