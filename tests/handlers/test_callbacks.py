"""`POST /tencent/callback` served by aiohttp on 127.0.0.1: 401 before anything is read, 4xx
without a traceback for what cannot be read, the OK answer at once, member callbacks (and seat
traffic) counted inline, room-level ones, seat changes and rate warnings handled after the
answer in arrival order, and a bounded queue."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.audit import AuditStore, open_store
from bot.budget import RateBudget
from bot.callbacks import CallbackProcessor, Delivery, Handled, Handling, callback_sign
from bot.config import load_settings
from bot.tencent.emulator_callbacks import (
    member_enter_body,
    member_leave_body,
    seat_info_changed_body,
    update_room_info_body,
)
from handlers.alerts import AlertPoster
from handlers.callbacks import CALLBACK_PATH, CallbackReceiver, add_callback_route, build_receiver
from testkit.slack_api import FakeSlack

TOKEN = "handler-callback-token-0123456789"
APP = 1400000055
OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
UPDATE = "Room.CallbackAfterUpdateRoomInfo"
ROOM = {
    "RoomId": "room-test",
    "RoomName": "Town hall",
    "Owner_Account": "alice",
    "TakeSeatMode": "FreeToTake",
    "MaxMemberCount": 300,
    "IsVideoDisabled": False,
    "IsAudioDisabled": False,
    "IsMessageDisabled": False,
    "IsScreenSharingDisabled": False,
    "IsCloudRecordingDisabled": False,
    "CustomInfo": "",
}


class Held(CallbackProcessor):
    """The real processor, except that room-level handling first waits for `release` (so a
    test can keep the worker busy while the queue fills)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()

    async def handle(self, delivery: Delivery) -> Handled:
        await self.release.wait()
        return await super().handle(delivery)


@dataclass
class Served:
    receiver: CallbackReceiver
    store: AuditStore
    url: str
    session: aiohttp.ClientSession

    async def post(
        self, query: dict[str, str], body: bytes | dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.session.post(self.url, params=query, data=data) as response:
            return response.status, await response.json()


@asynccontextmanager
async def serving(
    tmp_path: Path,
    *,
    max_queued: int = 1000,
    processor: Callable[[AuditStore], CallbackProcessor] | None = None,
    alerts: AlertPoster | None = None,
    flush_s: float = 60.0,
) -> AsyncIterator[Served]:
    store = await open_store(tmp_path / "audit.sqlite3")
    made = (processor or (lambda s: CallbackProcessor(s, admin_id="administrator")))(store)
    receiver = CallbackReceiver(
        made, token=TOKEN, sdkappid=APP, max_queued=max_queued, alerts=alerts, flush_s=flush_s
    )
    app = web.Application()
    add_callback_route(app, receiver)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    session = aiohttp.ClientSession()
    try:
        yield Served(receiver, store, f"http://127.0.0.1:{port}{CALLBACK_PATH}", session)
    finally:
        await session.close()
        await receiver.close(grace_s=1)
        await runner.cleanup()
        await store.close()


def query(command: str = UPDATE, **extra: str) -> dict[str, str]:
    return {
        "token": TOKEN,
        "SdkAppid": str(APP),
        "CallbackCommand": command,
        "contenttype": "json",
        "ClientIP": "203.0.113.9",
        "OptPlatform": "Web",
        **extra,
    }


def update_body(operator: str = "ops", **fields: Any) -> dict[str, Any]:
    return update_room_info_body(operator, {**ROOM, **fields}, 1, bools_as_strings=True)


async def test_a_valid_callback_is_answered_ok_and_handled_after(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        started = time.perf_counter()
        status, answer = await served.post(query(), update_body(IsAudioDisabled=True))
        assert (status, answer) == (200, OK)
        assert time.perf_counter() - started < 1.0
        await served.receiver.settle()
        assert served.receiver.handled[Handling.OUTSIDE] == 1
        [row] = await served.store.query()
        assert (row.source, row.user_id, row.room_id) == ("tencent", "ops", "room-test")
        assert row.detail is not None
        assert "ClientIP 203.0.113.9" in row.detail
        # The same delivery again (Tencent retried): answered OK, recorded once.
        assert await served.post(query(), update_body(IsAudioDisabled=True)) == (200, OK)
        await served.receiver.settle()
        assert served.receiver.handled[Handling.DUPLICATE] == 1
        assert len(await served.store.query()) == 1


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"token": None}, "no token"),
        ({"token": "wrong-token-0123456789"}, "wrong token"),
        ({"SdkAppid": "1400000056"}, "another SdkAppid"),
        ({"SdkAppid": None}, "no SdkAppid"),
        ({"Sign": "stale", "RequestTime": "1000"}, "stale RequestTime"),
        ({"Sign": "0" * 64, "RequestTime": "now"}, "Sign and RequestTime must come together"),
        ({"Sign": "0" * 64, "RequestTime": "NOW"}, "wrong Sign"),
    ],
)
async def test_unauthenticated_requests_get_401_and_nothing_is_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, changes: dict[str, str | None], why: str
) -> None:
    q = query()
    for key, value in changes.items():
        if value is None:
            q.pop(key)
        else:  # "NOW" is now when the test runs, not when it was collected
            q[key] = str(int(time.time())) if value == "NOW" else value
    async with serving(tmp_path) as served:
        status, answer = await served.post(q, b"not even json")  # the body is never read
        assert status == 401
        assert answer == {"ActionStatus": "FAIL", "ErrorCode": 401, "ErrorInfo": "unauthorized"}
        await served.receiver.settle()
        assert await served.store.query() == []
        assert set(served.receiver.handled.values()) == {0}
    lines = [r.getMessage() for r in caplog.records if "callback refused" in r.getMessage()]
    assert lines == [f"callback refused ({why}) from 127.0.0.1"]
    assert TOKEN not in caplog.text
    assert "Traceback" not in caplog.text


async def test_a_signed_callback_passes(tmp_path: Path) -> None:
    now = str(int(time.time()))
    signed = query(Sign=callback_sign(TOKEN, now), RequestTime=now)
    async with serving(tmp_path) as served:
        assert await served.post(signed, update_body()) == (200, OK)


@pytest.mark.parametrize(
    ("q", "body", "status", "info"),
    [
        (query(), b"{oops", 400, "the body is not JSON"),
        (query(), b"[]", 400, "the body is not a JSON object"),
        (query(command=""), b"{}", 400, "no CallbackCommand"),
        (query(command="Room.CallbackSomethingElse"), b"{}", 400, "unknown CallbackCommand"),
        (query(), b'{"RoomInfo": {"RoomId": "bad room"}}', 400, "RoomId is not a valid room ID"),
        (query(), b"x" * 70_000, 413, "body too large"),
    ],
)
async def test_what_cannot_be_read_gets_a_4xx_never_a_traceback(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    q: dict[str, str],
    body: bytes,
    status: int,
    info: str,
) -> None:
    async with serving(tmp_path) as served:
        got, answer = await served.post(q, body)
        assert (got, answer["ErrorInfo"]) == (status, info)
        assert await served.store.query() == []
    assert "Traceback" not in caplog.text
    assert body[:20].decode() not in caplog.text or status == 413


async def test_member_callbacks_are_counted_at_once_and_touch_nothing_else(
    tmp_path: Path,
) -> None:
    enter = "Room.CallbackAfterMemberEnter"
    async with serving(tmp_path) as served:
        for i in range(50):
            body = member_enter_body(f"u{i}", "room-test", [f"u{i}"], i + 1, 1_000 + i)
            assert await served.post(query(enter), body) == (200, OK)
        assert served.receiver.handled[Handling.COUNTED] == 50
        assert served.receiver.queued == 0
        assert served.receiver.processor.members.get("room-test") == (50, 1.049)
        assert await served.store.query() == []


async def test_member_traffic_is_written_summed_a_while_after_it_came(tmp_path: Path) -> None:
    enter, leave = "Room.CallbackAfterMemberEnter", "Room.CallbackAfterMemberLeave"
    async with serving(tmp_path, flush_s=0.2) as served:
        for i in range(20):
            body = member_enter_body(f"u{i}", "room-test", [f"u{i}"], i + 1, 1_000 + i)
            assert await served.post(query(enter), body) == (200, OK)
        for i in range(5):
            gone = member_leave_body(
                f"u{i}", "room-test", [f"u{i}"], 19 - i, 2_000 + i, leave_type="Leave", reason=""
            )
            assert await served.post(query(leave), gone) == (200, OK)
        assert await served.store.query() == []  # not a row per callback
        for _ in range(100):
            rows = await served.store.query()
            if rows:
                break
            await asyncio.sleep(0.05)
        counted = sorted((r.verb, (r.patch or {}).get("count")) for r in rows)
        assert counted == [("member-enter", 20), ("member-leave", 5)]
        assert {r.room_id for r in rows} == {"room-test"}


async def test_the_queue_is_bounded_and_a_full_one_answers_503(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    held: list[Held] = []

    def make(store: AuditStore) -> CallbackProcessor:
        held.append(Held(store, admin_id="administrator"))
        return held[0]

    async with serving(tmp_path, max_queued=3, processor=make) as served:
        answers = [
            (await served.post(query(), update_body(MaxMemberCount=10 + i)))[0] for i in range(5)
        ]
        # One is being handled (held), three wait, the fifth finds the queue full.
        assert answers == [200, 200, 200, 200, 503]
        assert "1 callbacks already waiting" not in caplog.text
        assert "3 callbacks already waiting" in caplog.text
        held[0].release.set()
        await served.receiver.settle()
        rows = await served.store.query()
        assert len(rows) == 4
        # Handled one at a time, in arrival order.
        assert [r.patch and r.patch.get("MaxMemberCount") for r in reversed(rows)][1:] == [
            11,
            12,
            13,
        ]


def test_no_token_no_receiver() -> None:
    settings = load_settings(env_file=None, tencent_sdkappid=APP)
    assert build_receiver(settings, store=None, slack=None) is None  # type: ignore[arg-type]


async def test_every_callback_is_counted_in_the_metrics(tmp_path: Path) -> None:
    def count(command: str, outcome: str) -> float:
        return metrics.value("roombot_callbacks_total", command=command, outcome=outcome)

    enter = "Room.CallbackAfterMemberEnter"
    before = {
        "outside": count(UPDATE, "outside"),
        "unauthorized": count(UPDATE, "unauthorized"),
        "counted": count(enter, "counted"),
        "invalid": count("other", "invalid"),
    }
    async with serving(tmp_path) as served:
        await served.post(query(), update_body(IsAudioDisabled=True))
        await served.post(query(token="wrong-token-0123456789"), update_body())
        await served.post(query(enter), member_enter_body("u1", "room-test", ["u1"], 1, 1_000))
        await served.post(query(command="Room.CallbackSomethingElse"), b"{}")
        await served.receiver.settle()
    assert count(UPDATE, "outside") == before["outside"] + 1
    assert count(UPDATE, "unauthorized") == before["unauthorized"] + 1
    assert count(enter, "counted") == before["counted"] + 1
    assert count("other", "invalid") == before["invalid"] + 1


async def test_a_forged_operator_writes_no_forged_log_line(tmp_path: Path) -> None:
    """Issue 27, item 2: an `Operator_Account` carrying a line break and ANSI colour used to
    write a second, coloured log line in the text format."""
    import io
    import logging

    from bot.logs import make_handler

    stream = io.StringIO()
    handler = make_handler("text", stream)
    logger = logging.getLogger("handlers.callbacks")
    logger.addHandler(handler)
    saved = logger.level
    logger.setLevel(logging.INFO)
    forged = "ops\n2026-01-01 00:00:00,000 INFO bot.auth: \x1b[32mlogin ok"
    try:
        async with serving(tmp_path) as served:
            status, _ = await served.post(query(), update_body(forged, IsAudioDisabled=True))
            await served.receiver.settle()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)
    assert status == 200
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "room room-test updated by (unknown) (" in lines[0]
    assert "\x1b" not in stream.getvalue()
    assert "bot.auth" not in stream.getvalue()


async def test_a_chunked_body_over_the_cap_is_refused_while_it_is_read(tmp_path: Path) -> None:
    """Issue 27, item 4: the 64 KiB cap was checked against Content-Length only; a chunked
    900 KB body was parsed, stored whole and quoted in an alert."""
    big = update_body(IsAudioDisabled=True, CustomInfo="x" * 900_000)
    data = json.dumps(big).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no length: sent with chunked encoding
        for start in range(0, len(data), 16_384):
            yield data[start : start + 16_384]

    async with serving(tmp_path) as served:
        async with served.session.post(served.url, params=query(), data=chunks()) as response:
            status, answer = response.status, await response.json()
        assert (status, answer["ErrorInfo"]) == (413, "body too large")
        await served.receiver.settle()
        assert set(served.receiver.handled.values()) == {0}
        assert await served.store.query() == []


async def test_stored_fields_are_capped_at_room_engines_own_limits(tmp_path: Path) -> None:
    long_name = "n" * 99 + "é"  # 101 bytes: over by one, in the middle of a character
    long_info = "i" * 60_000
    body = update_body(long_name, IsAudioDisabled=True, RoomName=long_name, CustomInfo=long_info)
    async with serving(tmp_path) as served:
        assert len(json.dumps(body)) < 64 * 1024
        assert await served.post(query(), body) == (200, OK)
        await served.receiver.settle()
        [row] = await served.store.query()
    assert row.user_id == "(unknown)"  # 101 bytes is no account ID
    assert row.patch is not None
    name, info = row.patch["RoomName"], row.patch["CustomInfo"]
    assert len(name.encode()) <= 100
    assert name.startswith("n" * 90)
    assert len(info.encode()) <= 500
    assert info.startswith("i" * 400)


async def test_rate_warnings_halve_the_budget_and_post_one_alert(tmp_path: Path) -> None:
    budget = RateBudget(20)
    alert = "Alert.RequestOverLimit"
    body = {
        "CallbackCommand": alert,
        "ServiceName": "room_engine_http_srv",
        "Command": "get_room_member_list",
        "Request": 180,
        "Limit": 200,
    }
    async with FakeSlack(bot_token="xoxb-cb") as slack:
        client = AsyncWebClient(token="xoxb-cb", base_url=slack.api_url)
        poster = AlertPoster(client, "C0ALERTS01")

        def make(store: AuditStore) -> CallbackProcessor:
            return CallbackProcessor(store, admin_id="administrator", limits=budget)

        async with serving(tmp_path, processor=make, alerts=poster) as served:
            # Tencent's sample URL has no ClientIP; it warns every few seconds while it lasts.
            for _ in range(3):
                plain = {k: v for k, v in query(alert).items() if k != "ClientIP"}
                assert await served.post(plain, body) == (200, OK)
            await served.receiver.settle()
            assert await poster.flush(5)
            assert served.receiver.handled[Handling.OVER_LIMIT] == 3
        assert budget.limit("get_room_member_list") == 10
        [posted] = slack.messages("C0ALERTS01")
        assert "calls to `get_room_member_list` passed 80% of its limit" in posted["text"]
        assert "to 10 calls/s" in posted["text"]
        assert "roombot_rate_budget_limit" in posted["text"]
        assert all("accessory" not in b for b in posted["blocks"])  # no room to Show


async def test_seat_traffic_is_counted_inline_and_a_lock_is_queued_and_alerted(
    tmp_path: Path,
) -> None:
    seat = "Mic.CallbackAfterSeatInfoChanged"

    def seats(*listed: dict[str, Any]) -> dict[str, Any]:
        return seat_info_changed_body("ops", "room-test", list(listed), 1_000)

    async with FakeSlack(bot_token="xoxb-cb") as slack:
        client = AsyncWebClient(token="xoxb-cb", base_url=slack.api_url)
        poster = AlertPoster(client, "C0ALERTS01")
        async with serving(tmp_path, alerts=poster) as served:
            taken = {"Index": 0, "Member_Account": "u1"}
            assert await served.post(query(seat), seats({"Index": 0})) == (200, OK)  # baseline
            for _ in range(20):  # u1 takes and leaves seat 0 as themselves
                assert await served.post(
                    query(seat), seat_info_changed_body("u1", "room-test", [taken], 1)
                ) == (200, OK)
                assert await served.post(
                    query(seat), seat_info_changed_body("u1", "room-test", [{"Index": 0}], 1)
                ) == (200, OK)
            assert served.receiver.handled[Handling.COUNTED] == 41
            assert served.receiver.queued == 0
            assert await served.store.query() == []
            await served.post(query(seat), seat_info_changed_body("u1", "room-test", [taken], 1))
            locked = {"Index": 0, "IsTakenDisabled": True}
            assert await served.post(query(seat), seats(locked)) == (200, OK)
            await served.receiver.settle()
            assert await poster.flush(5)
            assert served.receiver.handled[Handling.OUTSIDE] == 1
            [row] = await served.store.query()
            assert (row.verb, row.user_id) == ("outside-seats", "ops")
        [posted] = slack.messages("C0ALERTS01")
        assert "`room-test`'s seats were changed outside roombot by `ops` via Web" in posted["text"]
        assert "seat 0 locked (speaker `u1` removed)" in posted["text"]
