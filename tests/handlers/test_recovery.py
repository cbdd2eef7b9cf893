"""Reporting a taken-over request in Slack (against the fake Web API): in the request's thread
with every room's verdict and Retry for what is not done, the parent's status rewritten; by the
response_url, then privately, when the channel refuses; and what the lease stores to get there."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from bot.takeover import RoomVerdict, TakeoverReport
from handlers.recovery import SlackRecovery, TakeoverUndelivered, lease_context
from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import Outcome
from bot.commands import parse_command
from bot.outcomes import Actor, Plan, RunKind, Source
from handlers import blocks
from handlers.delivery import ThreadReporter
from testkit import FakeSlack

TOKEN = "xoxb-recovery-test"
ALICE = "U0ALICE01"
GENERAL = "C0GENERAL1"
MUTE = {"IsAudioDisabled": True}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def client(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as session:
        yield AsyncWebClient(token=TOKEN, base_url=slack.api_url, session=session)


def verdict(room: str, outcome: Outcome, **fields: Any) -> RoomVerdict:
    values: dict[str, Any] = {
        "row_id": 1,
        "room_id": room,
        "outcome": outcome,
        "wanted": MUTE,
        "found": None,
        "request_id": f"Id-read-{room}",
        "read_back": True,
        **fields,
    }
    return RoomVerdict(**values)


def report(context: dict[str, Any], *verdicts: RoomVerdict, **fields: Any) -> TakeoverReport:
    values: dict[str, Any] = {
        "request_key": "req-1",
        "context": context,
        "previous_owner": "host-a:123:ab",
        "verb": "mute-all",
        "user_id": ALICE,
        "raw_text": "mute-all room-a room-b room-c",
        "verdicts": verdicts,
        "channel_id": GENERAL,
        **fields,
    }
    return TakeoverReport(**values)


MIXED = (
    verdict("room-a", Outcome.IN_PLACE, found=MUTE),
    verdict("room-b", Outcome.NOT_APPLIED, found={"IsAudioDisabled": False}),
    verdict("room-c", Outcome.UNKNOWN, error_code=100001, error_info="internal error"),
)


async def post_parent(slack: FakeSlack, client: AsyncWebClient) -> tuple[str, str]:
    head = f"<@{ALICE}> ran `/room mute-all` on 3 rooms: `room-a`, `room-b`, `room-c`"
    reply = await client.chat_postMessage(channel=GENERAL, text=f"{head}\n⏳ 1/3 done")
    return head, str(reply["ts"])


async def test_the_report_goes_in_the_thread_and_rewrites_the_parent(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    head, ts = await post_parent(slack, client)
    context = {"adapter": "slack", "channel": GENERAL, "user": ALICE, "parent_ts": ts}
    context |= {"thread_ts": ts, "head": head, "response_url": slack.response_url("r1")}
    await SlackRecovery(client).deliver(report(context, *MIXED))

    [message] = slack.thread(GENERAL, ts)
    text = message["text"]
    assert text.startswith(
        "⚠️ The roombot replica carrying out this request stopped before it finished. Another "
        "replica read each room back: 1/3 rooms in place, 1 not applied, 1 unknown."
    )
    assert "❌ `room-b` — audio muted — not applied: the room has audio unmuted" in text
    assert "· RequestId `Id-read-room-b`" in text
    assert "✅ `room-a` — audio muted — the change is in place · RequestId `Id-read-room-a`" in text
    assert "⚠️ `room-c` — audio muted — unknown, it could not be read back (error 100001" in text
    # Not applied and unknown come first, so a long list never hides them.
    assert text.index("room-b") < text.index("room-c") < text.index("`room-a`")
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    [button] = actions["elements"]
    assert (button["action_id"], button["value"]) == (blocks.ACTION_RETRY, "req-1")
    assert button["text"]["text"] == "Retry 2 not done"

    [parent] = [m for m in slack.messages(GENERAL) if m["ts"] == ts]
    assert parent["text"] == (
        f"{head}\n⚠️ interrupted, then read back: 1/3 rooms in place, 1 not applied, 1 unknown "
        "(see the thread)"
    )
    assert slack.response_posts == []


async def test_a_restarted_single_process_says_so_and_all_in_place_offers_nothing(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    head, ts = await post_parent(slack, client)
    context = {"adapter": "slack", "channel": GENERAL, "user": ALICE, "parent_ts": ts}
    context |= {"thread_ts": ts, "head": head}
    done = verdict("room-a", Outcome.OK, read_back=False, request_id="Id-call-1")
    await SlackRecovery(client, restarted=True).deliver(
        report(context, verdict("room-b", Outcome.IN_PLACE, found=MUTE), done)
    )
    [message] = slack.thread(GENERAL, ts)
    assert message["text"].startswith(
        "⚠️ roombot stopped before it finished. After restarting, it read each room back: "
        "2/2 rooms in place."
    )
    assert (
        "✅ `room-a` — audio muted — done before it stopped · RequestId `Id-call-1`"
        in (message["text"])
    )
    assert not [b for b in message["blocks"] if b["type"] == "actions"]
    [parent] = [m for m in slack.messages(GENERAL) if m["ts"] == ts]
    assert parent["text"].endswith(
        "✅ interrupted, then read back: 2/2 rooms in place (see the thread)"
    )


async def test_a_request_stopped_before_its_parent_is_reported_in_the_channel_with_its_head(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    head = f"<@{ALICE}> ran `/room mute-all` on 1 room: `room-a`"
    context = {"adapter": "slack", "channel": GENERAL, "user": ALICE, "head": head}
    await SlackRecovery(client).deliver(report(context))
    [message] = slack.messages(GENERAL)
    assert message["thread_ts"] is None
    assert message["text"] == (
        f"{head}\n⚠️ The roombot replica carrying out this request stopped before changing "
        "anything: nothing was changed. Run the command again if it is still needed."
    )


async def test_a_refused_channel_falls_back_to_the_response_url(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.private_channel(GENERAL)
    head = f"<@{ALICE}> ran `/room mute-all` on 3 rooms"
    context: dict[str, Any] = {"adapter": "slack", "channel": GENERAL, "user": ALICE}
    context |= {"head": head, "fallback": True, "response_url": slack.response_url("r1")}
    await SlackRecovery(client).deliver(report(context, *MIXED))
    [(key, body)] = slack.response_posts
    assert key == "r1"
    assert body["response_type"] == "in_channel"
    assert body["text"].startswith(head + "\n⚠️ The roombot replica")
    assert "not applied: the room has audio unmuted" in body["text"]
    assert slack.calls_to("chat.postMessage") == []  # the parent was refused: not tried again


async def test_without_a_response_url_it_tells_the_requester_privately_or_raises(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    context = {"adapter": "slack", "channel": GENERAL, "user": ALICE, "thread_ts": "1.000001"}
    context |= {"head": "head"}
    slack.fail("chat.postMessage", "is_archived")
    await SlackRecovery(client).deliver(report(context, *MIXED))
    [ephemeral] = slack.ephemerals(GENERAL, ALICE)
    assert "room-b" in ephemeral["text"]

    slack.private_channel(GENERAL)
    with pytest.raises(TakeoverUndelivered):
        await SlackRecovery(client).deliver(report(context, *MIXED))


async def test_rows_without_a_lease_are_reported_in_their_channel(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    await SlackRecovery(client).deliver(report({}, *MIXED))
    [message] = slack.messages(GENERAL)
    assert message["thread_ts"] is None
    assert message["text"].startswith(
        f"<@{ALICE}> ran `/room mute-all room-a room-b room-c`\n⚠️ The roombot replica"
    )


async def test_nowhere_to_report_is_logged_not_raised(
    slack: FakeSlack, client: AsyncWebClient, caplog: pytest.LogCaptureFixture
) -> None:
    await SlackRecovery(client).deliver(report({}, *MIXED, channel_id=None))
    assert slack.calls == []
    assert "nowhere in Slack to report it" in caplog.text
    assert "Id-read-room-b" in caplog.text  # the verdicts are still in the log


def test_the_lease_context_says_where_the_request_is_reported() -> None:
    command = parse_command("mute-all room-a --reason drill")
    actor = Actor(user_id=ALICE, source=Source.MENTION, channel_id=GENERAL)
    plan = Plan(command=command, actor=actor, calls=(), raw_text="mute-all room-a")
    reporter = ThreadReporter(
        client=AsyncWebClient(token=TOKEN),
        channel=GENERAL,
        user_id=ALICE,
        root_ts="1700000000.000100",
        parent_ts="1700000000.000200",
    )
    assert lease_context(reporter, plan) == {
        "v": 1,
        "adapter": "slack",
        "kind": "request",
        "channel": GENERAL,
        "user": ALICE,
        "parent_ts": "1700000000.000200",
        "thread_ts": "1700000000.000100",
        "response_url": None,
        "fallback": False,
        "head": blocks.parent_head(command, actor, RunKind.REQUEST),
    }
    assert lease_context(reporter, plan)["head"] == (
        f"<@{ALICE}> ran `/room mute-all` on 1 room: `room-a`\nReason: drill"
    )


def test_member_verdicts_say_what_was_found() -> None:
    kicked = report(
        {},
        verdict(
            "room-a", Outcome.NOT_APPLIED, wanted={"Member_Account": "bob"}, found={"in_room": True}
        ),
        verdict(
            "room-a", Outcome.IN_PLACE, wanted={"Member_Account": "al"}, found={"in_room": False}
        ),
        verb="kick",
    )
    text = "\n".join(m.text for m in blocks.takeover_messages(kicked, restarted=False))
    assert "read each account back: 1/2 accounts in place, 1 not applied." in text
    assert "❌ `room-a` — `bob` kicked — not applied: `bob` is still in the room" in text
    assert "✅ `room-a` — `al` kicked — the change is in place" in text

    ban = {"Member_Account": "eve", "Duration": 3600}
    banned = report(
        {}, verdict("room-a", Outcome.NOT_APPLIED, wanted=ban, found={"banned": False}), verb="ban"
    )
    text = blocks.takeover_messages(banned, restarted=False)[0].text
    assert "❌ `room-a` — `eve` banned for 1h — not applied: `eve` is not banned" in text

    unban = report(
        {},
        verdict(
            "room-a", Outcome.NOT_APPLIED, wanted={"Member_Account": "eve"}, found={"banned": True}
        ),
        verb="undo",
    )
    text = blocks.takeover_messages(unban, restarted=False)[0].text
    assert "❌ `room-a` — `eve` unbanned — not applied: `eve` is still banned" in text
    assert "Retry" not in str(blocks.takeover_messages(unban, restarted=False)[0].blocks)

    destroyed = report(
        {},
        verdict("room-a", Outcome.NOT_APPLIED, wanted={}, found={"exists": True}),
        verb="destroy",
    )
    text = blocks.takeover_messages(destroyed, restarted=False)[0].text
    assert "❌ `room-a` — room destroyed — not applied: the room still exists" in text


def test_a_long_report_is_split_within_block_kit_limits() -> None:
    many = tuple(verdict(f"room-{i:04d}", Outcome.NOT_APPLIED, found={}) for i in range(2000))
    messages = blocks.takeover_messages(report({}, *many), restarted=False)
    assert len(messages) > 1
    assert all(len(m.blocks) <= blocks.MAX_BLOCKS for m in messages)
    assert all(len(m.text) <= blocks.MAX_TEXT_CHARS for m in messages)
    shown = json.dumps([m.blocks for m in messages])
    assert all(f"room-{i:04d}" in shown for i in range(2000))
    assert messages[-1].blocks[-1]["type"] == "actions"  # Retry at the very end
