"""Seat callbacks (`Mic.CallbackAfterSeatInfoChanged`) through `CallbackProcessor`, over a real
audit store: roombot's seat verbs run through the service against the emulator, and each
callback is the body the emulator posts for the room's seats as they then stand.

A seat change made outside roombot goes into the room's history (changes only, not every
callback) and a lock or a removal is alerted, once; roombot's own seat changes are its echo;
sit/leave traffic is counted, never stored; the first callback of a room is the baseline."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bot import metrics, wording
from bot.audit import AuditError, Outcome, Source, open_store
from bot.callbacks import (
    OUTSIDE_SEATS,
    CallbackProcessor,
    Delivery,
    Handled,
    Handling,
    SeatMemory,
    parse_callback,
    seat_events,
)
from bot.models import Seat, SeatEvent, SeatEventKind
from bot.outcomes import Approved, ChangeKind
from bot.tencent.emulator_callbacks import seat_info_changed_body
from bot.wording import CORE
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import ADMIN, Core, actor

SEAT = "Mic.CallbackAfterSeatInfoChanged"
OPERATOR = "ops-console"
_event_ms = itertools.count(1_700_000_000_000)

#: A room with seats: the host on 0, a speaker on 1, seat 2 free, seat 3 locked.
STAGE: Mapping[str, Any] = {
    "RoomId": "stage",
    "Owner_Account": "host",
    "IsSeatEnabled": True,
    "MaxSeatCount": 4,
    "MemberList": ["host", "speaker", "guest"],
    "SeatList": [
        {"Index": 0, "Member_Account": "host"},
        {"Index": 1, "Member_Account": "speaker"},
        {"Index": 3, "IsTakenDisabled": True},
    ],
}


@pytest.fixture
async def core(make_core: CoreFactory) -> Core:
    return await make_core(rooms=[STAGE])


def processor(core: Core) -> CallbackProcessor:
    return CallbackProcessor(core.store, admin_id=ADMIN, clock=core.clock)


def seats_now(core: Core, operator: str | None = OPERATOR, platform: str = "Web") -> Delivery:
    """The seat callback for `stage` as its seats stand now (`operator` None: a body without
    `Operator_Account`, as Tencent's newer revisions send it)."""
    listed = core.emulator.seats["stage"].as_api()
    body = seat_info_changed_body(operator or "", "stage", listed, next(_event_ms))
    if operator is None:
        del body["Operator_Account"]
    query = {"CallbackCommand": SEAT, "OptPlatform": platform}
    return parse_callback(query, json.dumps(body).encode())


async def run(core: Core, text: str) -> None:
    prepared = await core.service.prepare(text, actor())
    assert isinstance(prepared, Approved), prepared
    result = await core.service.execute(prepared)
    assert result.succeeded, result


async def outside_rows(core: Core) -> list[Any]:
    return [r for r in await core.store.query(room="stage") if r.source == Source.TENCENT]


async def baseline(core: Core, callbacks: CallbackProcessor) -> None:
    assert (await callbacks.handle(seats_now(core))).handling is Handling.COUNTED


async def test_an_outside_lock_is_recorded_in_history_and_alerted_once(core: Core) -> None:
    callbacks = processor(core)
    await baseline(core, callbacks)
    assert await outside_rows(core) == []  # the first callback is only the baseline

    # Someone locks the speaker's seat in the Tencent console: the speaker is taken off it.
    core.emulator.seats["stage"].lock(
        1, {"ForbidTaken": True, "ForbidVideo": False, "ForbidAudio": False}
    )
    delivery = seats_now(core)
    handled = await callbacks.handle(delivery)
    assert handled.handling is Handling.OUTSIDE
    change = handled.change
    assert change is not None
    assert (change.kind, change.room_id, change.operator, change.platform) == (
        ChangeKind.SEATS,
        "stage",
        OPERATOR,
        "Web",
    )
    assert change.seats == (
        SeatEvent(SeatEventKind.LOCKED, 1, "speaker"),
        SeatEvent(SeatEventKind.REMOVED, 1, "speaker"),
    )
    line = wording.outside_change_line(CORE, change)
    assert line == (
        "⚠️ `stage`'s seats were changed outside roombot by `ops-console` via Web: "
        "seat 1 locked (speaker `speaker` removed)"
    )

    [row] = await outside_rows(core)
    assert (row.id, row.verb, row.user_id, row.outcome) == (
        handled.row_id,
        OUTSIDE_SEATS,
        OPERATOR,
        Outcome.OK,
    )
    assert row.previous == {
        "Seats": [
            {
                "Index": 1,
                "Member_Account": "speaker",
                "IsTakenDisabled": False,
                "IsVideoDisabled": False,
                "IsAudioDisabled": False,
            }
        ]
    }
    history = wording.history_line(CORE, row)
    assert "outside roombot · `ops-console` · `outside-seats` · seat 1 locked" in history
    assert "(speaker `speaker` removed)" in history

    # The same callback again (Tencent retried it): nothing changed since, nothing more.
    assert (await callbacks.handle(delivery)).handling is Handling.COUNTED
    assert len(await outside_rows(core)) == 1


async def test_roombots_own_seat_changes_are_not_recorded_or_alerted(core: Core) -> None:
    callbacks = processor(core)
    await baseline(core, callbacks)
    own = [
        "lock-seat stage 1",  # takes the speaker off too
        "unlock-seat stage 1",
        "mute-seat stage 0",
        "kick-seat stage host",
    ]
    for text in own:
        await run(core, text)
        handled = await callbacks.handle(seats_now(core, ADMIN, "RESTAPI"))
        assert handled.handling is Handling.ECHO, text
        assert handled.change is None
        assert handled.echo_of is not None
    assert await outside_rows(core) == []


async def test_without_operator_account_the_echo_rule_still_knows_roombots_lock(
    core: Core,
) -> None:
    # Tencent's newer seat callbacks drop Operator_Account.
    callbacks = processor(core)
    await baseline(core, callbacks)
    await run(core, "lock-seat stage 1")
    assert (await callbacks.handle(seats_now(core, None, "RESTAPI"))).handling is Handling.ECHO
    # Someone else's lock of another seat, a minute later, is still theirs.
    core.clock.advance(60)
    core.emulator.seats["stage"].lock(
        2, {"ForbidTaken": True, "ForbidVideo": False, "ForbidAudio": False}
    )
    handled = await callbacks.handle(seats_now(core, None, "RESTAPI"))
    assert handled.handling is Handling.OUTSIDE
    assert handled.change is not None
    assert handled.change.seats == (SeatEvent(SeatEventKind.LOCKED, 2),)


async def test_sit_and_leave_traffic_is_counted_never_stored_or_posted(core: Core) -> None:
    callbacks = processor(core)
    await baseline(core, callbacks)
    seats = core.emulator.seats["stage"]
    counted = metrics.value("roombot_callbacks_total", command=SEAT, outcome="counted")
    handled: list[Handled] = []
    for _ in range(5):
        seats.take(2, "guest")
        handled.append(await callbacks.handle(seats_now(core, "guest")))
        seats.leave("guest")
        handled.append(await callbacks.handle(seats_now(core, "guest")))
    # A member leaving on their own, as reported without Operator_Account.
    seats.leave("speaker")
    handled.append(await callbacks.handle(seats_now(core, None)))
    assert {h.handling for h in handled} == {Handling.COUNTED}
    assert all(h.change is None for h in handled)
    assert await outside_rows(core) == []
    after = metrics.value("roombot_callbacks_total", command=SEAT, outcome="counted")
    assert after - counted == len(handled)


async def test_other_outside_seat_changes_are_recorded_not_alerted(core: Core) -> None:
    callbacks = processor(core)
    await baseline(core, callbacks)
    seats = core.emulator.seats["stage"]
    seats.lock(0, {"ForbidTaken": False, "ForbidVideo": False, "ForbidAudio": True})
    seats.lock(3, {"ForbidTaken": False, "ForbidVideo": False, "ForbidAudio": False})
    handled = await callbacks.handle(seats_now(core))
    assert handled.handling is Handling.RECORDED
    assert handled.change is None
    [row] = await outside_rows(core)
    assert wording.history_line(CORE, row).endswith(
        "audio forbidden for `host` on seat 0, seat 3 unlocked"
    )


async def test_a_speaker_taken_off_by_someone_else_is_alerted(core: Core) -> None:
    callbacks = processor(core)
    await baseline(core, callbacks)
    core.emulator.seats["stage"].leave("speaker")  # kick_user_off_seat by another admin
    handled = await callbacks.handle(seats_now(core, OPERATOR, "RESTAPI"))
    assert handled.handling is Handling.OUTSIDE
    assert handled.change is not None
    assert handled.change.seats == (SeatEvent(SeatEventKind.REMOVED, 1, "speaker"),)
    assert "speaker `speaker` removed from seat 1" in wording.outside_change_line(
        CORE, handled.change
    )


async def test_a_seat_list_of_changed_seats_only_is_merged(core: Core) -> None:
    # Tencent does not say whether SeatList holds every seat: a delta must not read as the
    # other seats emptied.
    callbacks = processor(core)
    await baseline(core, callbacks)
    body = seat_info_changed_body(
        OPERATOR,
        "stage",
        [{"Index": 2, "Member_Account": "guest", "IsTakenDisabled": False}],
        next(_event_ms),
    )
    query = {"CallbackCommand": SEAT, "OptPlatform": "Web"}
    handled = await callbacks.handle(parse_callback(query, json.dumps(body).encode()))
    assert handled.handling is Handling.RECORDED  # put on a seat by someone else
    remembered = callbacks.seats.get("stage")
    assert remembered is not None
    assert [remembered[i].account for i in range(4)] == ["host", "speaker", "guest", None]


async def test_a_failing_store_alerts_a_lock_unchecked(core: Core, tmp_path: Path) -> None:
    store = await open_store(tmp_path / "broken.sqlite3")
    await store.close()
    with pytest.raises(AuditError):
        await store.claim("x")
    callbacks = CallbackProcessor(store, admin_id=ADMIN, clock=core.clock)
    await baseline(core, callbacks)
    core.emulator.seats["stage"].lock(
        2, {"ForbidTaken": True, "ForbidVideo": False, "ForbidAudio": False}
    )
    handled = await callbacks.handle(seats_now(core, ADMIN, "RESTAPI"))
    assert handled.handling is Handling.UNRECORDED
    assert handled.change is not None
    assert handled.change.note is not None
    assert "neither recorded nor checked" in handled.change.note


def test_seat_memory_is_bounded() -> None:
    memory = SeatMemory(max_rooms=3)
    for i in range(10):
        memory.update(f"room-{i}", [Seat(0, "u")])
    assert len(memory) == 3
    assert memory.get("room-0") is None
    assert memory.get("room-9") is not None


def test_bans_follow_the_member_and_a_leave_resets_them_without_an_event() -> None:
    before = {0: Seat(0, "u1", audio_forbidden=True), 1: Seat(1)}
    moved = {0: Seat(0), 1: Seat(1, "u1", audio_forbidden=True)}
    assert seat_events(before, moved, "u1") == [
        SeatEvent(SeatEventKind.SWITCHED, 1, "u1", from_index=0)
    ]
    left = {0: Seat(0), 1: Seat(1)}
    assert seat_events(before, left, "u1") == [SeatEvent(SeatEventKind.LEFT, 0, "u1")]
    moved_by_admin = seat_events(before, moved, "admin")
    assert moved_by_admin == [SeatEvent(SeatEventKind.MOVED, 1, "u1", from_index=0)]
    assert not moved_by_admin[0].traffic


def test_seats_not_known_before_are_learnt_not_reported() -> None:
    # A first list that named no seat is no baseline; a seat the baseline lacked is learnt.
    memory = SeatMemory()
    assert memory.update("r", []) == (None, {})
    assert memory.get("r") is None
    before, after = memory.update("r", [Seat(0, "u1")])
    assert before is None
    before, after = memory.update("r", [Seat(0, "u1"), Seat(5, "u2", locked=False)])
    assert before is not None
    assert seat_events(before, after, "admin") == []
