"""`AlertPoster`: changes made outside roombot posted to the alert channel of a fake Slack, at
most one message per interval, bursts coalesced into one message, Slack failures logged.

Time is a `FakeClock`; the poster's waits go through a gate the test opens, so a test decides
exactly what arrives while the poster waits for its turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.outcomes import ChangeKind, OutsideChange
from handlers import blocks
from handlers.alerts import AlertPoster
from testkit.clock import FakeClock
from testkit.slack_api import FakeSlack

TOKEN = "xoxb-alerts-test"
CHANNEL = "C0ALERTS01"


def change(room: str, **changed: Any) -> OutsideChange:
    return OutsideChange(
        kind=ChangeKind.UPDATED,
        room_id=room,
        operator="ops-console",
        platform="Web",
        at=1_700_000_000.0,
        changed=changed or {"IsAudioDisabled": False},
        before={"IsAudioDisabled": True},
    )


class Gate:
    """The poster's `sleep`: records each wait and returns when the test opens it, having moved
    the fake clock on by the wait."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []
        self._open = asyncio.Event()
        self.asleep = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.asleep.set()
        await self._open.wait()
        self._open.clear()
        self.asleep.clear()
        self.clock.advance(seconds)

    def open(self) -> None:
        self._open.set()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=slack.api_url)


async def _posted(slack: FakeSlack, count: int) -> list[dict[str, Any]]:
    await slack.wait_for(lambda: len(slack.messages(CHANNEL)) >= count)
    return slack.messages(CHANNEL)


async def test_a_burst_becomes_one_message_after_the_first(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    clock = FakeClock(now=100.0)
    gate = Gate(clock)
    poster = AlertPoster(client, CHANNEL, interval_s=1.1, clock=clock, sleep=gate)
    poster.add(change("room-1"))
    [first] = await _posted(slack, 1)  # the first change after a quiet spell goes out at once
    assert "`room-1` was changed outside roombot by `ops-console` via Web" in first["text"]
    for i in range(2, 6):
        poster.add(change(f"room-{i}"))
    await asyncio.wait_for(gate.asleep.wait(), 5)  # waiting for its turn…
    poster.add(change("room-6"))  # …so this one joins the same message
    gate.open()
    messages = await _posted(slack, 2)
    assert len(messages) == 2
    assert gate.waits == [pytest.approx(1.1)]
    second = messages[1]
    sections = [b for b in second["blocks"] if b["type"] == "section"]
    assert [s["accessory"]["value"] for s in sections] == [f"room-{i}" for i in range(2, 7)]
    assert {s["accessory"]["action_id"] for s in sections} == {blocks.ACTION_SHOW}
    assert await poster.flush(1)
    assert poster.messages_posted == 2
    await poster.close()


async def test_after_a_quiet_spell_the_next_change_goes_out_at_once(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    clock = FakeClock(now=100.0)
    gate = Gate(clock)
    poster = AlertPoster(client, CHANNEL, interval_s=1.1, clock=clock, sleep=gate)
    poster.add(change("room-1"))
    assert await poster.flush(5)
    clock.advance(5)
    poster.add(change("room-2"))
    await _posted(slack, 2)
    assert gate.waits == []
    await poster.close()


async def test_a_storm_lists_some_and_counts_the_rest(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    clock = FakeClock(now=100.0)
    gate = Gate(clock)
    poster = AlertPoster(client, CHANNEL, interval_s=1.1, max_pending=30, clock=clock, sleep=gate)
    poster.add(change("room-0"))
    await _posted(slack, 1)
    for i in range(1, 101):
        poster.add(change(f"room-{i}"))
    assert poster.waiting == 100
    await asyncio.wait_for(gate.asleep.wait(), 5)
    gate.open()
    messages = await _posted(slack, 2)
    storm = messages[1]
    sections = [b for b in storm["blocks"] if b["type"] == "section"]
    assert len(sections) == blocks.ALERT_MAX_LISTED
    assert "…and 80 more changes not listed here" in storm["text"]
    assert len(storm["blocks"]) <= blocks.MAX_BLOCKS
    await poster.close()
    assert poster.waiting == 0


async def test_slack_refusing_is_logged_and_the_poster_carries_on(
    slack: FakeSlack, client: AsyncWebClient, caplog: pytest.LogCaptureFixture
) -> None:
    slack.fail("chat.postMessage", "channel_not_found")
    clock = FakeClock(now=100.0)
    poster = AlertPoster(client, CHANNEL, interval_s=1.1, clock=clock, sleep=clock.sleep)
    poster.add(change("room-1"))
    assert await poster.flush(5)
    assert "could not post an alert in C0ALERTS01 (channel_not_found)" in caplog.text
    assert "1 change(s) made outside roombot are only in the audit trail" in caplog.text
    poster.add(change("room-2"))
    assert len(await _posted(slack, 1)) == 1
    await poster.close()


async def test_close_posts_what_is_waiting(slack: FakeSlack, client: AsyncWebClient) -> None:
    clock = FakeClock(now=100.0)
    poster = AlertPoster(client, CHANNEL, interval_s=1.1, clock=clock, sleep=clock.sleep)
    poster.add(change("room-1"))
    poster.add(change("room-2"))
    await poster.close()
    texts = " ".join(m["text"] for m in slack.messages(CHANNEL))
    assert "room-1" in texts
    assert "room-2" in texts


def test_an_alert_message_fits_slack_and_names_the_room_operator_and_change() -> None:
    gone = OutsideChange(
        kind=ChangeKind.DESTROYED, room_id="room-9", operator="ops", platform=None, at=0.0
    )
    renamed = OutsideChange(
        kind=ChangeKind.UPDATED,
        room_id="room-1",
        operator="<!channel>",
        platform="Android",
        at=0.0,
        changed={"RoomName": "*bold* <@U123>"},
        before={"RoomName": "Old"},
    )
    message = blocks.outside_changes_message([gone, renamed])
    assert message.text.splitlines()[0] == ("⚠️ `room-9` was destroyed outside roombot by `ops`")
    second = message.text.splitlines()[1]
    assert "by `&lt;!channel&gt;` via Android" in second  # escaped: it pings nobody
    assert "renamed to “*bold* &lt;@U123&gt;” (was name “Old”)" in second
    assert "accessory" not in message.blocks[0]
    assert message.blocks[1]["accessory"]["value"] == "room-1"
