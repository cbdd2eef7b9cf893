"""The emulator's seat APIs, driven with raw HTTP, its seat callback, and its seat state under
property tests: the reference's rules (locking removes the occupant; an audio/video ban follows
the user and resets when they leave the seat; a ban on an empty seat is a no-op) and the
documented error codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.tencent.emulator import DEMO_ROOMS, RoomEngineEmulator
from bot.tencent.emulator_errors import Refusal
from bot.tencent.emulator_seats import RoomSeats
from tests.bot.tencent.test_emulator import APP, KEY, NOW, call
from tests.bot.tencent.test_emulator_callbacks import Receiver

MIC = "/v4/room_engine_http_mic/"
MEMBERS = ["owner", "m1", "m2", "m3", "m4"]
_PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make(**overrides: Any) -> RoomEngineEmulator:
    kwargs: dict[str, Any] = {
        "sdkappid": APP,
        "secret_key": KEY,
        "rooms": [
            {
                "RoomId": "stage",
                "Owner_Account": "owner",
                "IsSeatEnabled": True,
                "MaxSeatCount": 4,
                "MemberList": MEMBERS,
                "SeatList": [
                    {"Index": 0, "Member_Account": "owner"},
                    {"Index": 1, "Member_Account": "m1", "IsAudioDisabled": True},
                    {"Index": 3, "IsTakenDisabled": True},
                ],
            },
            {"RoomId": "flat", "Owner_Account": "owner", "MemberList": MEMBERS},
        ],
        "clock": lambda: float(NOW),
    }
    kwargs.update(overrides)
    return RoomEngineEmulator(**kwargs)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    await rec.start()
    yield rec
    await rec.stop()


@pytest.fixture
async def emulator(receiver: Receiver) -> AsyncIterator[RoomEngineEmulator]:
    emu = make(callback_url=receiver.url)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def mic(
    http: httpx.AsyncClient, emu: RoomEngineEmulator, command: str, body: dict[str, Any]
) -> dict[str, Any]:
    return await call(http, emu, command, body, path=MIC + command)


async def seats(http: httpx.AsyncClient, emu: RoomEngineEmulator, room: str = "stage") -> Any:
    data = await mic(http, emu, "get_seat_list", {"RoomId": room})
    assert data["ErrorCode"] == 0, data
    return data["Response"]["SeatList"]


def seat(index: int, account: str | None = None, **flags: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"Index": index}
    if account is not None:
        item["Member_Account"] = account
    item["IsTakenDisabled"] = flags.get("taken", False)
    item["IsVideoDisabled"] = flags.get("video", False)
    item["IsAudioDisabled"] = flags.get("audio", False)
    return item


def lock(index: int, taken: bool = False, video: bool = False, audio: bool = False) -> Any:
    return {
        "RoomId": "stage",
        "Index": index,
        "ForbidTaken": taken,
        "ForbidVideo": video,
        "ForbidAudio": audio,
    }


async def seat_callbacks(emu: RoomEngineEmulator, receiver: Receiver) -> list[Any]:
    await emu.settle_callbacks()
    return [body for _, q, body in receiver.got if q["CallbackCommand"] == body["CallbackCommand"]]


# -- get_seat_list ----------------------------------------------------------------------------


async def test_the_seat_list_has_every_seat_in_order_an_empty_one_without_an_account(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    assert await seats(http, emulator) == [
        seat(0, "owner"),
        seat(1, "m1", audio=True),
        seat(2),
        seat(3, taken=True),
    ]


async def test_a_room_without_seats_lists_none_and_refuses_the_seat_writes(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    assert await seats(http, emulator, "flat") == []
    body = {**lock(0, taken=True), "RoomId": "flat"}
    assert (await mic(http, emulator, "lock_seat", body))["ErrorCode"] == 100211
    pick = {"RoomId": "flat", "Index": 0, "Member_Account": "m2"}
    assert (await mic(http, emulator, "pick_user_on_seat", pick))["ErrorCode"] == 100211
    kick = {"RoomId": "flat", "Member_Account": "m2", "Data": "x"}
    assert (await mic(http, emulator, "kick_user_off_seat", kick))["ErrorCode"] == 100206


@pytest.mark.parametrize(
    ("command", "body"),
    [
        ("get_seat_list", {"RoomId": "nope"}),
        ("lock_seat", {"RoomId": "nope", "Index": 0}),
        ("kick_user_off_seat", {"RoomId": "nope", "Member_Account": "m1", "Data": ""}),
        ("pick_user_on_seat", {"RoomId": "nope", "Index": 0, "Member_Account": "m1"}),
    ],
)
async def test_an_unknown_room_is_100004(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, command: str, body: dict[str, Any]
) -> None:
    assert (await mic(http, emulator, command, body))["ErrorCode"] == 100004


@pytest.mark.parametrize(
    ("command", "body", "field"),
    [
        ("lock_seat", {"RoomId": "stage", "Index": 4}, "Index"),
        ("lock_seat", {"RoomId": "stage", "Index": -1}, "Index"),
        ("lock_seat", {"RoomId": "stage", "Index": "1"}, "Index"),
        ("lock_seat", {"RoomId": "stage", "Index": True}, "Index"),
        ("lock_seat", {"RoomId": "stage"}, "Index"),
        ("lock_seat", {"RoomId": "stage", "Index": 2, "ForbidAudio": "true"}, "ForbidAudio"),
        ("kick_user_off_seat", {"RoomId": "stage", "Member_Account": "m1"}, "Data"),
        ("kick_user_off_seat", {"RoomId": "stage", "Member_Account": "m1", "Data": 1}, "Data"),
        ("kick_user_off_seat", {"RoomId": "stage", "Data": "x"}, "Member_Account"),
        ("pick_user_on_seat", {"RoomId": "stage", "Index": 9, "Member_Account": "m2"}, "Index"),
        (
            "move_user_to_seat",
            {"RoomId": "stage", "SeatIndex": 2, "Member_Account": "m1", "Policy": 3},
            "Policy",
        ),
    ],
)
async def test_bad_parameters_are_100002_naming_the_field(
    emulator: RoomEngineEmulator,
    http: httpx.AsyncClient,
    command: str,
    body: dict[str, Any],
    field: str,
) -> None:
    data = await mic(http, emulator, command, body)
    assert data["ErrorCode"] == 100002
    assert field in data["ErrorInfo"]


# -- lock_seat --------------------------------------------------------------------------------


async def test_locking_an_occupied_seat_removes_the_occupant_and_resets_their_bans(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    assert (await mic(http, emulator, "lock_seat", lock(1, taken=True)))["ErrorCode"] == 0
    assert (await seats(http, emulator))[1] == seat(1, taken=True)
    (changed,) = await seat_callbacks(emulator, receiver)
    assert changed["CallbackCommand"] == "Mic.CallbackAfterSeatInfoChanged"
    assert changed["Operator_Account"] == "administrator"
    assert changed["RoomId"] == "stage"
    assert changed["EventTime"] == NOW * 1000
    assert changed["SeatList"][1] == seat(1, taken=True)
    assert len(changed["SeatList"]) == 4  # the whole list, not only the seat that changed
    # Unlocked again, the seat is free for anyone; the removed user is not put back.
    assert (await mic(http, emulator, "lock_seat", lock(1)))["ErrorCode"] == 0
    assert (await seats(http, emulator))[1] == seat(1)


async def test_a_flag_left_out_of_lock_seat_is_read_as_false(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    # The documented-nowhere case, answered the way that hurts: m1's audio ban is lifted.
    body = {"RoomId": "stage", "Index": 1, "ForbidVideo": True}
    assert (await mic(http, emulator, "lock_seat", body))["ErrorCode"] == 0
    assert (await seats(http, emulator))[1] == seat(1, "m1", video=True)


async def test_a_ban_on_an_empty_or_locked_seat_succeeds_and_changes_nothing(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    before = await seats(http, emulator)
    for body in (lock(2, audio=True, video=True), lock(3, taken=True, audio=True)):
        assert (await mic(http, emulator, "lock_seat", body))["ErrorCode"] == 0
    assert await seats(http, emulator) == before
    assert await seat_callbacks(emulator, receiver) == []  # nothing changed, nothing posted


async def test_an_audio_ban_follows_the_user_to_another_seat(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    body = {"RoomId": "stage", "ToIndex": 2, "Member_Account": "m1"}
    assert (await mic(http, emulator, "switch_seat", body))["ErrorCode"] == 0
    listed = await seats(http, emulator)
    assert (listed[1], listed[2]) == (seat(1), seat(2, "m1", audio=True))


@pytest.mark.parametrize(
    "leave",
    ["kick_user_off_seat", "leave_seat", "member_leave", "kick_user_out"],
)
async def test_an_audio_ban_resets_when_the_user_leaves_the_seat(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, leave: str
) -> None:
    if leave == "kick_user_off_seat":
        body = {"RoomId": "stage", "Member_Account": "m1", "Data": "time over"}
        assert (await mic(http, emulator, leave, body))["ErrorCode"] == 0
    elif leave == "leave_seat":
        emulator.leave_seat("stage", "m1")
    elif leave == "member_leave":
        emulator.member_leave("stage", "m1")
        emulator.member_enter("stage", "m1")
    else:
        kick = {"RoomId": "stage", "MemberList_Account": ["m1"], "Reason": "x"}
        assert (await call(http, emulator, "kick_user_out", kick))["ErrorCode"] == 0
        emulator.member_enter("stage", "m1")
    assert (await seats(http, emulator))[1] == seat(1)
    emulator.take_seat("stage", "m1", 1)
    assert (await seats(http, emulator))[1] == seat(1, "m1")  # no ban waiting for them


# -- kick_user_off_seat -----------------------------------------------------------------------


async def test_kick_user_off_seat_takes_one_user_off_and_leaves_them_in_the_room(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = {"RoomId": "stage", "Member_Account": "owner", "Data": "time over"}
    assert (await mic(http, emulator, "kick_user_off_seat", body))["ErrorCode"] == 0
    assert (await seats(http, emulator))[0] == seat(0)
    assert "owner" in emulator.members["stage"]
    (changed,) = await seat_callbacks(emulator, receiver)
    assert changed["SeatList"][0] == seat(0)


@pytest.mark.parametrize("account", ["m2", "nobody"])
async def test_kick_user_off_seat_of_someone_not_on_a_seat_is_100206(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, account: str
) -> None:
    body = {"RoomId": "stage", "Member_Account": account, "Data": "x"}
    data = await mic(http, emulator, "kick_user_off_seat", body)
    assert data["ErrorCode"] == 100206
    assert account in data["ErrorInfo"]


# -- pick_user_on_seat, switch_seat, move_user_to_seat ---------------------------------------


@pytest.mark.parametrize(
    ("account", "index", "code"),
    [
        ("nobody", 2, 100005),  # not a member
        ("m1", 2, 100203),  # already on a seat
        ("m2", 3, 100200),  # locked
        ("m2", 0, 100210),  # taken
        ("m2", 2, 0),
    ],
)
async def test_pick_user_on_seat_answers_the_documented_codes(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, account: str, index: int, code: int
) -> None:
    body = {"RoomId": "stage", "Index": index, "Member_Account": account}
    assert (await mic(http, emulator, "pick_user_on_seat", body))["ErrorCode"] == code


async def test_pick_user_on_seat_when_every_seat_is_taken_or_locked_is_100205(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    emulator.take_seat("stage", "m2")
    body = {"RoomId": "stage", "Index": 2, "Member_Account": "m3"}
    assert (await mic(http, emulator, "pick_user_on_seat", body))["ErrorCode"] == 100205


@pytest.mark.parametrize(
    ("policy", "code", "expected"),
    [
        (0, 100210, [seat(0, "owner"), seat(1, "m1", audio=True)]),
        (1, 0, [seat(0, "m1", audio=True), seat(1)]),
        (2, 0, [seat(0, "m1", audio=True), seat(1, "owner")]),
    ],
)
async def test_move_user_to_a_taken_seat_follows_the_policy(
    emulator: RoomEngineEmulator,
    http: httpx.AsyncClient,
    policy: int,
    code: int,
    expected: list[Any],
) -> None:
    body = {"RoomId": "stage", "SeatIndex": 0, "Member_Account": "m1", "Policy": policy}
    assert (await mic(http, emulator, "move_user_to_seat", body))["ErrorCode"] == code
    assert (await seats(http, emulator))[:2] == expected


async def test_move_user_to_a_locked_seat_unlocks_it_and_switch_seat_refuses_it(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    switch = {"RoomId": "stage", "ToIndex": 3, "Member_Account": "m1"}
    assert (await mic(http, emulator, "switch_seat", switch))["ErrorCode"] == 100200
    move = {"RoomId": "stage", "SeatIndex": 3, "Member_Account": "m1", "Policy": 0}
    assert (await mic(http, emulator, "move_user_to_seat", move))["ErrorCode"] == 0
    assert (await seats(http, emulator))[3] == seat(3, "m1", audio=True)
    off = {"RoomId": "stage", "SeatIndex": 2, "Member_Account": "m2", "Policy": 0}
    assert (await mic(http, emulator, "move_user_to_seat", off))["ErrorCode"] == 100206


# -- seats on create_room, seeding and snapshots ----------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code", "max_seats"),
    [
        ({"IsSeatEnabled": True}, 0, 16),  # no MaxSeatCount: the package's limit
        ({"IsSeatEnabled": True, "MaxSeatCount": 6}, 0, 6),
        ({"IsSeatEnabled": True, "MaxSeatCount": 0}, 100002, None),
        ({"IsSeatEnabled": True, "MaxSeatCount": 17}, 100002, None),
        ({"IsSeatEnabled": "true", "MaxSeatCount": 4}, 100002, None),
        ({"MaxSeatCount": 4}, 0, 4),  # stored, but the room has no seats
    ],
)
async def test_create_room_validates_the_seats(
    emulator: RoomEngineEmulator,
    http: httpx.AsyncClient,
    fields: dict[str, Any],
    code: int,
    max_seats: int | None,
) -> None:
    body = {"RoomInfo": {"RoomId": "new", "RoomType": "Conference", **fields}}
    data = await call(http, emulator, "create_room", body)
    assert data["ErrorCode"] == code, data
    if code:
        assert "new" not in emulator.rooms
        return
    info = (await call(http, emulator, "get_room_info", {"RoomId": "new"}))["Response"]
    assert info["RoomInfo"]["MaxSeatCount"] == max_seats
    listed = await seats(http, emulator, "new")
    assert len(listed) == (max_seats if fields.get("IsSeatEnabled") else 0)
    assert all("Member_Account" not in item for item in listed)


async def test_update_room_info_cannot_change_the_seats(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient
) -> None:
    body = {"RoomInfo": {"RoomId": "stage", "MaxSeatCount": 8}}
    assert (await call(http, emulator, "update_room_info", body))["ErrorCode"] == 100002


@pytest.mark.parametrize(
    "seated",
    [
        [{"Index": 4, "Member_Account": "m2"}],  # out of range
        [{"Index": 0, "Member_Account": "stranger"}],  # not a member
        [{"Index": 0, "Member_Account": "m2"}, {"Index": 1, "Member_Account": "m2"}],
        [{"Index": 0, "Member_Account": "m2", "IsTakenDisabled": True}],
        [{"Index": 0, "IsAudioDisabled": True}],  # a ban on an empty seat
        [{"Index": 0, "Speaker": True}],
    ],
)
def test_seeding_refuses_seats_the_rules_forbid(seated: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="seat"):
        RoomEngineEmulator(
            sdkappid=APP,
            secret_key=KEY,
            rooms=[
                {
                    "RoomId": "r",
                    "IsSeatEnabled": True,
                    "MaxSeatCount": 4,
                    "MemberList": MEMBERS,
                    "SeatList": seated,
                }
            ],
        )


def test_the_snapshot_keeps_the_seats() -> None:
    emulator = make()
    emulator.take_seat("stage", "m2", 2)
    again = RoomEngineEmulator(sdkappid=APP, secret_key=KEY, rooms=emulator.snapshot())
    assert again.seats["stage"].as_api() == emulator.seats["stage"].as_api()
    assert "flat" not in again.seats


def test_the_town_hall_demo_has_speakers_on_its_seats() -> None:
    emulator = RoomEngineEmulator(sdkappid=APP, secret_key=KEY, rooms=DEMO_ROOMS)
    listed = emulator.seats["town-hall"].as_api()
    speakers = [item["Member_Account"] for item in listed if "Member_Account" in item]
    assert speakers == ["host-1", "ceo", "staff-1", "staff-2"]
    assert len(listed) == emulator.rooms["town-hall"]["MaxSeatCount"] == 8
    assert listed[7]["IsTakenDisabled"] is True


def test_take_seat_refuses_like_pick_user_on_seat() -> None:
    emulator = make()
    with pytest.raises(Refusal) as refused:
        emulator.take_seat("stage", "m1")
    assert refused.value.code == 100203
    with pytest.raises(Refusal) as no_seats:
        emulator.take_seat("flat", "m2")
    assert no_seats.value.code == 100211


async def test_seat_changes_outside_the_api_post_the_callback_as_the_user(
    emulator: RoomEngineEmulator, receiver: Receiver
) -> None:
    emulator.take_seat("stage", "m2", platform="Android")
    emulator.leave_seat("stage", "m2")
    await emulator.settle_callbacks()
    (_, took_query, took), (_, _, left) = receiver.got
    assert took_query["OptPlatform"] == "Android"
    assert took["Operator_Account"] == "m2"
    assert took["SeatList"][2] == seat(2, "m2")
    assert left["SeatList"][2] == seat(2)


async def test_a_kick_posts_the_seat_change_before_the_leave(
    emulator: RoomEngineEmulator, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    kick = {"RoomId": "stage", "MemberList_Account": ["m1", "m3"], "Reason": "x"}
    assert (await call(http, emulator, "kick_user_out", kick))["ErrorCode"] == 0
    await emulator.settle_callbacks()
    commands = [body["CallbackCommand"] for _, _, body in receiver.got]
    assert commands == ["Mic.CallbackAfterSeatInfoChanged", "Room.CallbackAfterMemberLeave"]


# -- the seat state under property tests -------------------------------------------------------

_ACCOUNTS = ["a", "b", "c", "d", "e"]
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.sampled_from(_ACCOUNTS), st.none() | st.integers(0, 3)),
        st.tuples(st.just("leave"), st.sampled_from(_ACCOUNTS)),
        st.tuples(st.just("lock"), st.integers(0, 3), st.booleans(), st.booleans(), st.booleans()),
        st.tuples(
            st.just("move"), st.sampled_from(_ACCOUNTS), st.integers(0, 3), st.integers(0, 2)
        ),
    ),
    max_size=40,
)


@_PROPS
@given(_OPS)
def test_seat_state_keeps_the_rules_whatever_happens(ops: list[tuple[Any, ...]]) -> None:
    state = RoomSeats(4)
    for op in ops:
        refused: int | None = None
        try:
            if op[0] == "take":
                state.take(op[2], op[1])
            elif op[0] == "leave":
                state.leave(op[1])
            elif op[0] == "lock":
                _, index, taken, video, audio = op
                flags = {"ForbidTaken": taken, "ForbidVideo": video, "ForbidAudio": audio}
                state.lock(index, flags)
            else:
                state.move(op[1], op[2], policy=op[3])
        except Refusal as exc:
            refused = exc.code
        assert refused in {None, 100200, 100203, 100205, 100206, 100210}
        listed = state.as_api()
        seated = [item["Member_Account"] for item in listed if "Member_Account" in item]
        assert len(seated) == len(set(seated))  # nobody on two seats
        for item in listed:
            if item["IsTakenDisabled"] or "Member_Account" not in item:
                # A locked seat is empty; an empty seat has no ban: bans belong to users.
                assert "Member_Account" not in item
                assert not item["IsAudioDisabled"]
                assert not item["IsVideoDisabled"]


@_PROPS
@given(st.booleans(), st.booleans())
def test_whoever_leaves_a_seat_comes_back_without_bans(video: bool, audio: bool) -> None:
    state = RoomSeats(2)
    state.take(0, "a")
    state.lock(0, {"ForbidTaken": False, "ForbidVideo": video, "ForbidAudio": audio})
    state.move("a", 1, policy=0)
    assert state.as_api()[1]["IsAudioDisabled"] is audio  # the ban went with them
    state.leave("a")
    state.take(0, "a")
    back = state.as_api()[0]
    assert not back["IsAudioDisabled"]
    assert not back["IsVideoDisabled"]


async def test_seat_calls_are_rate_limited_per_api(http: httpx.AsyncClient) -> None:
    emu = make(rate_limit_per_api=2)
    async with emu:
        codes = await asyncio.gather(
            *(mic(http, emu, "get_seat_list", {"RoomId": "stage"}) for _ in range(3))
        )
        assert sorted(c["ErrorCode"] for c in codes) == [0, 0, 60007]
        # Another API has its own budget.
        assert (await mic(http, emu, "lock_seat", lock(2)))["ErrorCode"] == 0
