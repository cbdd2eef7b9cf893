"""Room Engine callbacks end to end, in-process: the emulator posts them to roombot's real HTTP
endpoint (`POST /tencent/callback`), roombot records and alerts in the fake Slack.

The authentication checks and one alert also run against a real `roombot serve` process
(`test_callbacks_process.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.audit import Outcome, Source
from bot.callbacks import OUTSIDE_DESTROY, OUTSIDE_UPDATE, Handling
from bot.models import RoomPatch
from handlers import blocks
from tests.e2e.stack import ALERTS, GENERAL, MALLORY, OTHER_ADMIN, Stack, running_stack

OPERATOR = OTHER_ADMIN


def _alerts(stack: Stack) -> list[dict[str, Any]]:
    return stack.slack.messages(ALERTS)


def _history_text(stack: Stack, key: str) -> str:
    posts = stack.response_posts(key)
    assert posts, stack.slack.summary()
    return str(posts[-1]["text"])


async def _mute(stack: Stack, room: str = "room-test") -> None:
    reply, _ = await stack.slash(f"mute-all {room}")
    assert reply.status == 200
    await stack.settle()
    await stack.settle_callbacks()


async def test_roombots_own_change_echoed_back_is_not_alerted(tmp_path: Path) -> None:
    async with running_stack(tmp_path, callbacks=True) as stack:
        await _mute(stack)
        sent = [c for c in stack.emulator.callbacks if c.command.endswith("UpdateRoomInfo")]
        assert [c.status for c in sent] == [200]
        assert sent[0].answer == {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
        assert stack.bot.callbacks is not None
        assert stack.bot.callbacks.handled[Handling.ECHO] == 1
        assert _alerts(stack) == []
        assert stack.bot.audit is not None
        rows = await stack.bot.audit.query(room="room-test")
        assert [r.source for r in rows] == ["slash"]  # the echo is not recorded


async def test_an_outside_change_is_alerted_shows_in_history_and_blocks_undo(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, callbacks=True) as stack:
        await _mute(stack)
        parent = next(m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None)
        request_key = next(
            e["value"]
            for m in stack.slack.thread(GENERAL, parent["ts"])
            for b in m["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == blocks.ACTION_UNDO
        )
        # Someone unmutes it in the Tencent console, right after roombot muted it.
        stack.emulator.outside_update("room-test", OPERATOR, IsAudioDisabled=False)
        await stack.settle_callbacks()

        alerts = _alerts(stack)
        assert len(alerts) == 1
        text = alerts[0]["text"]
        assert "`room-test` was changed outside roombot by `ops-console` via Web" in text
        assert "audio unmuted" in text
        show = alerts[0]["blocks"][0]["accessory"]
        assert (show["action_id"], show["value"]) == (blocks.ACTION_SHOW, "room-test")

        assert stack.bot.audit is not None
        row = (await stack.bot.audit.query(room="room-test", limit=1))[0]
        assert (row.source, row.user_id, row.verb) == (Source.TENCENT, OPERATOR, OUTSIDE_UPDATE)
        assert row.patch == {"IsAudioDisabled": False}
        assert row.previous == {"IsAudioDisabled": True}
        assert row.outcome is Outcome.OK

        _, key = await stack.slash("history room-test")
        await stack.settle()
        history = _history_text(stack, key)
        assert "⚠️ outside roombot · `ops-console` · `outside-update` · audio unmuted" in history

        # Undo is refused without a read: the callback already said who changed the room.
        reads_before = len(stack.tencent_calls("get_room_info"))
        _, click = await stack.click(
            blocks.ACTION_UNDO, request_key, message_ts=parent["ts"], thread_ts=parent["ts"]
        )
        await stack.settle()
        refusal = str(stack.response_posts(click)[-1]["text"])
        assert "not undone: changed outside roombot since this request" in refusal
        assert "`room-test` by `ops-console`" in refusal
        assert "audio unmuted" in refusal
        assert len(stack.tencent_calls("get_room_info")) == reads_before
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is False


async def test_the_platform_backend_as_the_same_admin_is_still_an_outside_change(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, callbacks=True) as stack:
        await _mute(stack)
        # The app's backend calls the REST API as roombot's own administrator account.
        async with stack.as_admin("administrator") as backend:
            await backend.update_room_info(RoomPatch.of("room-test", {"IsVideoDisabled": True}))
        await stack.settle_callbacks()
        alerts = _alerts(stack)
        assert len(alerts) == 1
        assert "by `administrator` via RESTAPI: video disabled" in alerts[0]["text"]


async def test_a_destroy_is_alerted_and_recorded_with_what_roombot_knew(tmp_path: Path) -> None:
    async with running_stack(tmp_path, callbacks=True) as stack:
        await _mute(stack, "room-2")
        async with stack.as_admin() as console:
            await console.destroy_room("room-2")
        await stack.settle_callbacks()
        texts = [m["text"] for m in _alerts(stack)]
        assert texts == [
            "⚠️ `room-2` was destroyed outside roombot by `ops-console` via RESTAPI\n"
            "Recorded in the audit trail: `/room history ROOM`, or `roombot audit --since 1h`."
        ]
        assert "accessory" not in _alerts(stack)[0]["blocks"][0]  # nothing left to show
        assert stack.bot.audit is not None
        row = (await stack.bot.audit.query(room="room-2", limit=1))[0]
        assert (row.source, row.verb, row.user_id) == (Source.TENCENT, OUTSIDE_DESTROY, OTHER_ADMIN)
        # What roombot knew: its own mute, and the rest of the room from that mute's echo.
        assert row.previous is not None
        assert row.previous["IsAudioDisabled"] is True
        assert len(row.previous) == 9


async def test_a_burst_of_500_member_callbacks_is_answered_and_posts_nothing(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, callbacks=True) as stack:
        for i in range(250):
            stack.emulator.member_enter("room-test", f"user-{i:03d}")
        for i in range(250):
            stack.emulator.member_leave("room-test", f"user-{i:03d}")
        await stack.settle_callbacks()
        member = [c for c in stack.emulator.callbacks if "Member" in c.command]
        assert len(member) == 500
        assert {c.status for c in member} == {200}
        assert stack.bot.callbacks is not None
        assert stack.bot.callbacks.handled[Handling.COUNTED] == 500
        assert stack.bot.callbacks.processor.members.get("room-test") is not None
        assert stack.slack.calls_to("chat.postMessage") == []


async def test_show_button_answers_whoever_clicks_with_the_policy_checked(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, callbacks=True) as stack:
        stack.emulator.outside_update("room-test", OPERATOR, IsMessageDisabled=True)
        await stack.settle_callbacks()
        alert = _alerts(stack)[0]
        _, key = await stack.click(
            blocks.ACTION_SHOW, "room-test", channel_id=ALERTS, message_ts=alert["ts"]
        )
        await stack.settle()
        shown = stack.response_posts(key)[-1]
        assert shown["response_type"] == "ephemeral"
        assert "chat ⛔ disabled" in shown["text"]
        _, denied = await stack.click(
            blocks.ACTION_SHOW, "room-test", user_id=MALLORY, channel_id=ALERTS, message_ts="1.2"
        )
        await stack.settle()
        assert "not allowed to run `show`" in stack.response_posts(denied)[-1]["text"]


async def test_show_button_of_a_room_id_with_quotes_shows_that_room_not_another(
    tmp_path: Path,
) -> None:
    # Room Engine takes any printable ASCII room ID; typed bare, `'standup'` would be `standup`.
    async with running_stack(tmp_path, callbacks=True, rooms=["'standup'", "standup"]) as stack:
        stack.emulator.outside_update("'standup'", OPERATOR, IsMessageDisabled=True)
        await stack.settle_callbacks()
        show = _alerts(stack)[0]["blocks"][0]["accessory"]
        assert show["value"] == "'standup'"
        _, key = await stack.click(
            show["action_id"], show["value"], channel_id=ALERTS, message_ts="1.3"
        )
        await stack.settle()
        shown = stack.response_posts(key)[-1]["text"]
        assert "(`'standup'`)" in shown
        assert "chat ⛔ disabled" in shown


async def test_a_burst_of_outside_changes_is_coalesced(tmp_path: Path) -> None:
    async with running_stack(tmp_path, callbacks=True, rooms=[f"r{i}" for i in range(40)]) as stack:
        for i in range(40):
            stack.emulator.outside_update(f"r{i}", OPERATOR, IsVideoDisabled=True)
        await stack.settle_callbacks()
        alerts = _alerts(stack)
        assert 1 <= len(alerts) <= 3
        listed = sum(len([b for b in m["blocks"] if b["type"] == "section"]) for m in alerts)
        more = sum("more change" in m["text"] for m in alerts)
        assert listed <= 40
        assert listed == 40 or more


async def test_without_a_token_there_is_no_callback_endpoint(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        assert stack.bot.callbacks is None
        url = stack.url.replace("/slack/events", "/tencent/callback")
        async with stack.session.post(url, params={"token": "x"}, data=b"{}") as response:
            assert response.status == 404
