"""Member traffic for the timeline (`bot.callbacks.traffic`): member enter/leave callbacks are
counted per room, hour and kind, written a row per room-hour-kind with its count (never a row
per callback), and summed in the timeline, never listed. Both store backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.audit import AuditError, open_store
from bot.callbacks import CallbackProcessor, parse_callback
from bot.callbacks.requests import Delivery
from bot.callbacks.traffic import TrafficTally
from bot.models import CallbackCommand
from bot.tencent.emulator_callbacks import member_enter_body, member_leave_body
from bot.timeline import Window, build_timeline

T0 = 1_700_000_000.0  # 22:13:20 UTC
HOUR = T0 - T0 % 3600


def _delivery(body: dict[str, Any]) -> Delivery:
    query = {"CallbackCommand": body["CallbackCommand"], "OptPlatform": "Android"}
    return parse_callback(query, json.dumps(body).encode())


def enter(room: str, at: float, n: int = 1) -> Delivery:
    accounts = [f"u{i}" for i in range(n)]
    return _delivery(member_enter_body(accounts[0], room, accounts, 10, int(at * 1000)))


def leave(room: str, at: float) -> Delivery:
    body = member_leave_body("u0", room, ["u0"], 9, int(at * 1000), leave_type="Leave", reason="")
    return _delivery(body)


async def test_member_traffic_is_written_summed_and_the_timeline_sums_it(
    target: str | Path,
) -> None:
    async with await open_store(target, clock=lambda: T0 + 60) as store:
        callbacks = CallbackProcessor(store, admin_id="administrator", clock=lambda: T0)
        for i in range(30):
            callbacks.count(enter("room-1", T0 + i))
        for i in range(12):
            callbacks.count(leave("room-1", T0 + 100 + i))
        callbacks.count(enter("room-2", T0 + 3600))  # the next hour
        assert await store.query(limit=100) == []  # nothing written per callback
        assert await callbacks.flush_traffic() == 3  # a row per room, hour and kind
        assert await callbacks.flush_traffic() == 0  # written once
        rows = sorted(await store.query(limit=100), key=lambda r: (r.room_id, r.verb))
        assert [(r.room_id, r.verb, r.patch) for r in rows] == [
            ("room-1", "member-enter", {"count": 30, "hour": HOUR}),
            ("room-1", "member-leave", {"count": 12, "hour": HOUR}),
            ("room-2", "member-enter", {"count": 1, "hour": HOUR + 3600}),
        ]
        callbacks.count(enter("room-1", T0 + 200))  # a later flush of the same hour adds up
        await callbacks.flush_traffic()
        timeline = await build_timeline(store, Window(T0 - 3600, T0 + 7200))
    assert timeline.entries == []  # never listed
    assert timeline.traffic == {
        ("room-1", HOUR): {"member-enter": 31, "member-leave": 12},
        ("room-2", HOUR + 3600): {"member-enter": 1},
    }
    assert "| room-1 | 31 member-enter, 12 member-leave |" in timeline.markdown()


def test_only_member_enter_and_leave_are_traffic() -> None:
    tally = TrafficTally()
    assert not tally.add(CallbackCommand.UPDATE_ROOM_INFO, "room-1", T0)
    assert not tally.add(CallbackCommand.MEMBER_ENTER, "", T0)
    assert tally.add(CallbackCommand.MEMBER_LEAVE, "room-1", T0)
    assert tally.waiting == 1


def test_the_tally_is_bounded_dropping_the_oldest_hour(caplog: pytest.LogCaptureFixture) -> None:
    tally = TrafficTally(max_keys=2)
    tally.add(CallbackCommand.MEMBER_ENTER, "room-1", T0)
    tally.add(CallbackCommand.MEMBER_ENTER, "room-2", T0 + 3600)
    tally.add(CallbackCommand.MEMBER_ENTER, "room-3", T0 + 7200)
    assert tally.waiting == 2
    assert "member traffic of room-1" in caplog.text


async def test_counts_a_failing_store_refused_are_written_by_the_next_flush(
    tmp_path: Path,
) -> None:
    broken = await open_store(tmp_path / "broken.sqlite3")
    await broken.close()  # every call now raises AuditError
    tally = TrafficTally()
    tally.add(CallbackCommand.MEMBER_ENTER, "room-1", T0)
    assert await tally.flush(broken) == 0
    tally.add(CallbackCommand.MEMBER_ENTER, "room-1", T0 + 1)
    async with await open_store(tmp_path / "good.sqlite3", clock=lambda: T0) as store:
        assert await tally.flush(store) == 1
        [row] = await store.query(limit=10)
    assert row.patch == {"count": 2, "hour": HOUR}
    with pytest.raises(AuditError):
        await broken.claim("x")
