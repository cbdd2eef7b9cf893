"""Seats end to end (#25): `seats` answers privately, `lock-seat` reports in its thread and its
Undo opens the seat again, `kick-seat` of someone not on a seat says 100206 with its hint, a dry
run shows the partial body — signed requests to the real HTTP endpoint, a fake Slack, the
emulator with a seated room."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.audit import Outcome
from bot.callbacks import OUTSIDE_SEATS, Handling
from handlers import blocks
from tests.e2e.stack import ALERTS, GENERAL, Stack, button, running_stack
from tests.e2e.test_members import _parent, _read, _reply

STAGE: dict[str, Any] = {
    "RoomId": "town-hall",
    "Owner_Account": "host",
    "IsSeatEnabled": True,
    "MaxSeatCount": 4,
    "MemberList": ["host", "speaker", "heckler", "guest"],
    "SeatList": [
        {"Index": 0, "Member_Account": "host"},
        {"Index": 1, "Member_Account": "heckler", "IsVideoDisabled": True},
        {"Index": 2, "Member_Account": "speaker"},
    ],
}


def _seat(stack: Stack, index: int) -> dict[str, Any]:
    listed: dict[str, Any] = stack.emulator.seats["town-hall"].as_api()[index]
    return listed


async def test_seats_answers_privately(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[STAGE]) as stack:
        text = await _read(stack, "seats town-hall")
        assert text.splitlines()[:5] == [
            "4 seats in `town-hall` (3 taken):",
            "0 · `host`",
            "1 · `heckler` · 🚫 video forbidden",
            "2 · `speaker`",
            "3 · empty",
        ]
        assert stack.slack.messages(GENERAL) == []
        assert [r.command for r in stack.emulator.requests] == ["get_seat_list"]


async def test_the_room_card_lists_the_seats(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[STAGE]) as stack:
        _ack, key = await stack.slash("show town-hall")
        await stack.settle()
        [card] = stack.response_posts(key)
        seats = [b for b in card["blocks"] if b["type"] == "context"]
        assert seats[0]["elements"][0]["text"] == (
            "Seats (3/4 taken): 0 · `host`; 1 · `heckler` · 🚫 video forbidden; 2 · `speaker`; "
            "3 · empty"
        )
        assert sorted(r.command for r in stack.emulator.requests) == [
            "get_room_info",
            "get_seat_list",
        ]


async def test_lock_seat_takes_the_heckler_off_and_undo_opens_the_seat(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[STAGE]) as stack:
        await stack.slash("lock-seat town-hall 1 --reason heckling")
        await stack.settle()
        [lock] = stack.tencent_calls("lock_seat")
        assert lock.body == {
            "RoomId": "town-hall",
            "Index": 1,
            "ForbidTaken": True,
            "ForbidVideo": True,  # as read: the call changes nothing it does not mean to
            "ForbidAudio": False,
        }
        assert "Member_Account" not in _seat(stack, 1)
        parent, reply = _parent(stack), _reply(stack)
        assert "`/room lock-seat` on 1 room: `town-hall` (seat 1)" in parent["text"]
        assert parent["text"].splitlines()[-1] == "✅ done: 1/1 seat changed"
        assert f"seat 1: locked · RequestId `{lock.request_id}`" in reply["text"]
        undo = button(reply, blocks.ACTION_UNDO)
        assert undo is not None
        await stack.click(
            blocks.ACTION_UNDO,
            undo["value"],
            message_ts=reply["ts"],
            thread_ts=parent["ts"],
            message=reply,
        )
        await stack.settle()
        _, unlock = stack.tencent_calls("lock_seat")
        assert unlock.body["ForbidTaken"] is False
        assert _seat(stack, 1)["IsTakenDisabled"] is False
        rows = await stack.rows()
        assert [(r.verb, r.outcome) for r in rows if r.verb in ("lock-seat", "undo")] == [
            ("lock-seat", Outcome.OK),
            ("undo", Outcome.OK),
        ]


async def test_kick_seat_of_someone_not_on_a_seat_is_100206_with_its_hint(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[STAGE]) as stack:
        await stack.slash("kick-seat town-hall speaker guest")
        await stack.settle()
        reply = _reply(stack)
        assert "`town-hall` · `guest` — error 100206" in reply["text"]
        assert "the account is not on a seat" in reply["text"]
        assert "`speaker` taken off the seat" in reply["text"]
        assert "Taking someone off a seat cannot be undone" in reply["text"]
        assert button(reply, blocks.ACTION_UNDO) is None
        assert "Member_Account" not in _seat(stack, 2)


async def test_a_seat_dry_run_shows_the_partial_body_and_calls_nothing(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rooms=[STAGE]) as stack:
        reply, _ = await stack.slash("mute-seat town-hall 2 --video --dry-run")
        body = reply.json()
        assert body["response_type"] == "ephemeral"
        assert "on 1 seat: nothing was sent" in body["text"]
        assert '{"RoomId": "town-hall", "Index": 2, "ForbidVideo": true}' in body["text"]
        assert "seat list read just before the call" in str(body["blocks"][-1])
        await stack.settle()
        assert stack.emulator.requests == []


async def test_a_seat_locked_outside_roombot_is_in_history_and_alerted_once(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, rooms=[STAGE], callbacks=True) as stack:
        # A guest takes a seat: roombot learns the room's seats (its first seat callback).
        stack.emulator.take_seat("town-hall", "guest", 3)
        # roombot's own lock: echoed back, not alerted, not recorded again.
        await stack.slash("lock-seat town-hall 2")
        await stack.settle()
        # Plain sit/leave traffic: counted, never posted.
        for _ in range(5):
            stack.emulator.leave_seat("town-hall", "guest")
            stack.emulator.take_seat("town-hall", "guest", 3)
        await stack.settle_callbacks()
        assert stack.slack.messages(ALERTS) == []
        receiver = stack.bot.callbacks
        assert receiver is not None
        assert receiver.handled[Handling.ECHO] == 1
        assert receiver.handled[Handling.COUNTED] == 11

        # Someone locks the heckler's seat in the Tencent console.
        async with stack.as_admin() as console:
            await console.lock_seat(
                "town-hall", 1, forbid_taken=True, forbid_video=True, forbid_audio=False
            )
        await stack.settle_callbacks()
        [alert] = stack.slack.messages(ALERTS)
        assert alert["text"].startswith(
            "⚠️ `town-hall`'s seats were changed outside roombot by `ops-console` via RESTAPI: "
            "seat 1 locked (speaker `heckler` removed)"
        )
        show = alert["blocks"][0]["accessory"]
        assert (show["action_id"], show["value"]) == (blocks.ACTION_SHOW, "town-hall")

        _, key = await stack.slash("history town-hall")
        await stack.settle()
        history = stack.response_posts(key)[-1]["text"]
        assert "`ops-console` · `outside-seats` · seat 1 locked (speaker `heckler` removed)" in (
            history
        )
        outside = [r for r in await stack.rows() if r.verb == OUTSIDE_SEATS]
        assert len(outside) == 1
