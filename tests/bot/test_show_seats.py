"""`show` reads the seats of the few rooms it would draw as cards (`get_seat_list`, alongside
`get_room_info`), none for a bigger `show`, and a seat list that cannot be read leaves the room's
view whole, saying why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from bot.outcomes import Approved, RoomView
from bot.reads import SHOW_SEATS_MAX_ROOMS
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import Core, actor

STAGE: Mapping[str, Any] = {
    "RoomId": "stage",
    "Owner_Account": "host",
    "IsSeatEnabled": True,
    "MaxSeatCount": 3,
    "MemberList": ["host", "speaker"],
    "SeatList": [
        {"Index": 0, "Member_Account": "host"},
        {"Index": 2, "IsTakenDisabled": True},
    ],
}
OTHERS = [f"room-{i:02d}" for i in range(SHOW_SEATS_MAX_ROOMS)]


@pytest.fixture
async def core(make_core: CoreFactory) -> Core:
    return await make_core(rooms=[STAGE, *OTHERS])


async def show(core: Core, rooms: list[str]) -> list[RoomView]:
    approved = await core.service.prepare("show " + " ".join(rooms), actor())
    assert isinstance(approved, Approved)
    return await core.service.show(approved)


async def test_show_of_a_few_rooms_reads_their_seats_too(core: Core) -> None:
    stage, plain = await show(core, ["stage", "room-00"])
    assert stage.seats is not None
    assert [(s.index, s.account, s.locked) for s in stage.seats.seats] == [
        (0, "host", False),
        (1, None, False),
        (2, None, True),
    ]
    assert stage.seats_failure is None
    assert plain.seats is not None
    assert plain.seats.seats == ()  # a room without seats
    assert len(core.calls("get_seat_list")) == 2


async def test_a_bigger_show_reads_rooms_only(core: Core) -> None:
    views = await show(core, ["stage", *OTHERS])
    assert len(views) == SHOW_SEATS_MAX_ROOMS + 1
    assert all(v.seats is None and v.seats_failure is None for v in views)
    assert core.calls("get_seat_list") == []
    assert len(core.calls("get_room_info")) == SHOW_SEATS_MAX_ROOMS + 1


async def test_a_seat_list_that_cannot_be_read_leaves_the_room_whole(core: Core) -> None:
    async def down(command: str, body: dict[str, Any]) -> httpx.Response | None:
        if command == "get_seat_list":
            return httpx.Response(502)
        return None

    core.wire.hook = down
    [stage] = await show(core, ["stage"])
    assert stage.snapshot is not None
    assert stage.failure is None
    assert stage.seats is None
    assert stage.seats_failure is not None
    assert "502" in stage.seats_failure.message


async def test_a_room_that_cannot_be_read_is_a_failure_whatever_its_seats(core: Core) -> None:
    [ghost] = await show(core, ["ghost"])
    assert ghost.failure is not None
    assert ghost.failure.code == 100004
    assert ghost.seats is None
