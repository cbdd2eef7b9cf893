"""`SlackDelivery`, the Slack adapter's `Delivery` (against the fake Web API): its reply address,
which any replica rebuilds it from; a request's parent, progress and outcome in its thread; and
a takeover report: in the request's thread with every room's verdict and Retry for what is not
done, the parent's status rewritten; in the channel, saying the thread is unknown, when the
stopped replica never recorded it; by the response_url, then privately, when the channel
refuses; a version 1 address (a lease context, with its `head`) still understood."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import Outcome
from bot.commands import parse_command
from bot.outcomes import Actor, Plan, RoomResult, RunResult, Source
from bot.requests.delivery import Deliveries, LoggedDelivery
from bot.requests.takeover import RoomVerdict, TakeoverReport
from handlers import blocks
from handlers.runtime import SlackRuntime
from handlers.slack_delivery import (
    THREAD_UNKNOWN,
    SlackDelivery,
    TakeoverUndelivered,
    slack_deliveries,
)
from testkit import FakeSlack

TOKEN = "xoxb-recovery-test"
ALICE = "U0ALICE01"
GENERAL = "C0GENERAL1"
MUTE = {"IsAudioDisabled": True}
PLAN = Plan(
    command=parse_command("mute-all room-a room-b room-c --reason drill"),
    actor=Actor(user_id=ALICE, source=Source.SLASH, team_id="T1", channel_id=GENERAL),
    calls=(),
    raw_text="mute-all room-a room-b room-c --reason drill",
    request_key="req-1",
)
HEAD = blocks.parent_head(PLAN.command, PLAN.actor, PLAN.kind)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def client(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as session:
        yield AsyncWebClient(token=TOKEN, base_url=slack.api_url, session=session)


def at(client: AsyncWebClient, address: dict[str, Any], *, restarted: bool = False) -> Any:
    """The delivery a replica rebuilds from a recorded reply address."""
    deliveries = slack_deliveries(Deliveries(), client, SlackRuntime(), restarted=restarted)
    return deliveries.for_address(address)


def address(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "v": 2,
        "adapter": "slack",
        "channel": GENERAL,
        "user": ALICE,
        "parent_ts": None,
        "thread_ts": None,
        "response_url": None,
        "fallback": False,
    }
    values.update(fields)
    return values


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
        "plan": PLAN,
        **fields,
    }
    return TakeoverReport(**values)


MIXED = (
    verdict("room-a", Outcome.IN_PLACE, found=MUTE),
    verdict("room-b", Outcome.NOT_APPLIED, found={"IsAudioDisabled": False}),
    verdict("room-c", Outcome.UNKNOWN, error_code=100001, error_info="internal error"),
)


async def post_parent(client: AsyncWebClient, head: str = HEAD) -> str:
    reply = await client.chat_postMessage(channel=GENERAL, text=f"{head}\n⏳ 1/3 done")
    return str(reply["ts"])


# -- the address, and a request's own life ---------------------------------------------------------


async def test_the_address_says_where_the_request_is_reported_and_grows_with_its_parent(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    delivery = SlackDelivery.for_request(
        client,
        SlackRuntime(),
        channel=GENERAL,
        user_id=ALICE,
        response_url=slack.response_url("r1"),
    )
    assert delivery.address() == address(response_url=slack.response_url("r1"))
    await delivery.start(PLAN)
    [parent] = slack.messages(GENERAL)
    assert parent["text"].startswith(HEAD)
    assert delivery.address() == address(
        parent_ts=parent["ts"], thread_ts=parent["ts"], response_url=slack.response_url("r1")
    )
    # Any replica rebuilds the same delivery from it.
    again = at(client, delivery.address())
    assert isinstance(again, SlackDelivery)
    assert again.address() == delivery.address()


async def test_a_mentions_thread_stays_the_thread_and_a_refused_parent_is_recorded(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    mention = SlackDelivery.for_request(
        client, SlackRuntime(), channel=GENERAL, user_id=ALICE, root_ts="1700000000.000100"
    )
    await mention.start(PLAN)
    [parent] = slack.messages(GENERAL)
    assert parent["thread_ts"] == "1700000000.000100"
    recorded = mention.address()
    assert (recorded["parent_ts"], recorded["thread_ts"]) == (parent["ts"], "1700000000.000100")
    rebuilt = at(client, recorded)
    assert rebuilt.address() == recorded

    slack.private_channel(GENERAL)
    refused = SlackDelivery.for_request(client, SlackRuntime(), channel=GENERAL, user_id=ALICE)
    await refused.start(PLAN)
    assert refused.address()["fallback"] is True
    assert refused.address()["parent_ts"] is None


async def test_the_outcome_goes_in_the_thread_and_the_parent_gets_its_final_status(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    delivery = SlackDelivery.for_request(client, SlackRuntime(), channel=GENERAL, user_id=ALICE)
    await delivery.start(PLAN)
    [parent] = slack.messages(GENERAL)
    run = RunResult(
        command=PLAN.command,
        actor=PLAN.actor,
        request_key="req-1",
        results=[RoomResult("room-a", MUTE, request_id="Id-call-a")],
    )
    await delivery.finish(run)
    [result] = slack.thread(GENERAL, parent["ts"])
    assert "room-a" in result["text"]
    assert "Id-call-a" in result["text"]
    [parent] = [m for m in slack.messages(GENERAL) if m["ts"] == parent["ts"]]
    assert "working" not in parent["text"]
    assert parent["text"].startswith(HEAD)


async def test_an_unexpected_error_is_told_privately_with_its_id(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    delivery = SlackDelivery.for_request(client, SlackRuntime(), channel=GENERAL, user_id=ALICE)
    await delivery.unexpected("c0ffee12")
    [told] = slack.ephemerals(GENERAL, ALICE)
    assert "c0ffee12" in told["text"]


# -- takeover reports ---------------------------------------------------------------------------


async def test_the_report_goes_in_the_thread_and_rewrites_the_parent(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    ts = await post_parent(client)
    context = address(parent_ts=ts, thread_ts=ts, response_url=slack.response_url("r1"))
    await at(client, context).takeover(report(context, *MIXED))

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
    assert THREAD_UNKNOWN not in text
    # Not applied and unknown come first, so a long list never hides them.
    assert text.index("room-b") < text.index("room-c") < text.index("`room-a`")
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    [button] = actions["elements"]
    assert (button["action_id"], button["value"]) == (blocks.ACTION_RETRY, "req-1")
    assert button["text"]["text"] == "Retry 2 not done"

    [parent] = [m for m in slack.messages(GENERAL) if m["ts"] == ts]
    assert parent["text"] == (
        f"{HEAD}\n⚠️ interrupted, then read back: 1/3 rooms in place, 1 not applied, 1 unknown "
        "(see the thread)"
    )
    assert slack.response_posts == []


async def test_a_restarted_single_process_says_so_and_all_in_place_offers_nothing(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    ts = await post_parent(client)
    context = address(parent_ts=ts, thread_ts=ts)
    done = verdict("room-a", Outcome.OK, read_back=False, request_id="Id-call-1")
    await at(client, context, restarted=True).takeover(
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


async def test_an_unknown_thread_is_said_plainly_in_the_channel_with_the_requests_head(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    # The replica stopped between posting the parent and recording where: never a second
    # parent, never silence, and the channel is told which request this is.
    ts = await post_parent(client)
    context = address()
    await at(client, context).takeover(report(context, *MIXED))
    messages = slack.messages(GENERAL)
    assert len(messages) == 2  # the parent, and the report beside it (not in a thread)
    message = messages[-1]
    assert message["thread_ts"] is None
    assert message["text"].startswith(f"{HEAD}\n{THREAD_UNKNOWN}\n⚠️ The roombot replica")
    assert "not applied: the room has audio unmuted" in message["text"]
    [parent] = [m for m in messages if m["ts"] == ts]
    assert parent["text"].endswith("⏳ 1/3 done")  # unknown, so left alone


async def test_a_request_stopped_before_changing_anything_says_nothing_was_changed(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    context = address()
    await at(client, context).takeover(report(context))
    [message] = slack.messages(GENERAL)
    assert message["thread_ts"] is None
    assert message["text"] == (
        f"{HEAD}\n{THREAD_UNKNOWN}\n⚠️ The roombot replica carrying out this request stopped "
        "before changing anything: nothing was changed. Run the command again if it is still "
        "needed."
    )


async def test_a_request_stopped_while_received_says_nothing_was_sent_room_by_room(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    # Its replica stopped while reading rooms: the survivor wrote its rows from the plan, each
    # not attempted, and read nothing back (nothing was sent).
    ts = await post_parent(client)
    context = address(parent_ts=ts, thread_ts=ts)
    not_sent = [
        verdict(room, Outcome.NOT_ATTEMPTED, request_id=None) for room in ("room-a", "room-b")
    ]
    await at(client, context).takeover(report(context, *not_sent, nothing_sent=True))
    [message] = slack.thread(GENERAL, ts)
    text = message["text"]
    assert text.startswith(
        "⚠️ The roombot replica carrying out this request stopped before changing anything: "
        "nothing was changed."
    )
    assert "read back" not in text  # nothing was read
    assert "❌ `room-a` — audio muted — not attempted" in text
    assert "❌ `room-b` — audio muted — not attempted" in text
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    assert actions["elements"][0]["text"]["text"] == "Retry 2 not done"
    [parent] = [m for m in slack.messages(GENERAL) if m["ts"] == ts]
    assert parent["text"] == (
        f"{HEAD}\n❌ not done: roombot stopped before changing anything (see the thread)"
    )


async def test_a_refused_channel_falls_back_to_the_response_url(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.private_channel(GENERAL)
    context = address(fallback=True, response_url=slack.response_url("r1"))
    await at(client, context).takeover(report(context, *MIXED))
    [(key, body)] = slack.response_posts
    assert key == "r1"
    assert body["response_type"] == "in_channel"
    assert body["text"].startswith(HEAD + "\n⚠️ The roombot replica")
    assert "not applied: the room has audio unmuted" in body["text"]
    assert slack.calls_to("chat.postMessage") == []  # the parent was refused: not tried again


async def test_without_a_response_url_it_tells_the_requester_privately_or_raises(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    context = address(thread_ts="1.000001", parent_ts="1.000001")
    slack.fail("chat.postMessage", "is_archived")
    await at(client, context).takeover(report(context, *MIXED))
    [ephemeral] = slack.ephemerals(GENERAL, ALICE)
    assert "room-b" in ephemeral["text"]
    assert ephemeral["text"].startswith(HEAD)

    slack.private_channel(GENERAL)
    with pytest.raises(TakeoverUndelivered):
        await at(client, context).takeover(report(context, *MIXED))


async def test_a_version_1_address_still_works_with_its_head(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    # A lease context recorded by roombot before request records (migrated into the record):
    # no plan on record, the parent's text in "head".
    head = f"<@{ALICE}> ran `/room mute-all` on 3 rooms: `room-a`, `room-b`, `room-c`"
    ts = await post_parent(client, head)
    context = {
        "v": 1,
        "adapter": "slack",
        "kind": "request",
        "channel": GENERAL,
        "user": ALICE,
        "parent_ts": ts,
        "thread_ts": ts,
        "response_url": None,
        "fallback": False,
        "head": head,
    }
    await at(client, context).takeover(report(context, *MIXED, plan=None))
    [message] = slack.thread(GENERAL, ts)
    assert message["text"].startswith("⚠️ The roombot replica")
    [parent] = [m for m in slack.messages(GENERAL) if m["ts"] == ts]
    assert parent["text"].startswith(f"{head}\n⚠️ interrupted, then read back")


async def test_the_head_comes_from_the_plan_when_the_record_has_one(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    stale = "an old head that the plan supersedes"
    context = {**address(), "v": 1, "head": stale}
    await at(client, context).takeover(report(context, *MIXED))
    [message] = slack.messages(GENERAL)
    assert message["text"].startswith(f"{HEAD}\n{THREAD_UNKNOWN}")
    assert stale not in message["text"]
    assert HEAD.endswith("Reason: drill")


async def test_rows_without_an_address_are_reported_in_their_channel(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    await at(client, {}).takeover(report({}, *MIXED, plan=None))
    [message] = slack.messages(GENERAL)
    assert message["thread_ts"] is None
    assert message["text"].startswith(
        f"<@{ALICE}> ran `/room mute-all room-a room-b room-c`\n{THREAD_UNKNOWN}\n⚠️"
    )


async def test_nowhere_to_report_is_logged_not_raised(
    slack: FakeSlack, client: AsyncWebClient, caplog: pytest.LogCaptureFixture
) -> None:
    await at(client, {}).takeover(report({}, *MIXED, channel_id=None))
    assert slack.calls == []
    assert "nowhere in Slack to report it" in caplog.text
    assert "Id-read-room-b" in caplog.text  # the verdicts are still in the log


def test_only_slack_addresses_and_those_of_no_adapter_are_slacks(
    client: AsyncWebClient,
) -> None:
    deliveries = slack_deliveries(Deliveries(), client, SlackRuntime(), restarted=False)
    assert isinstance(deliveries.for_address(address()), SlackDelivery)
    assert isinstance(deliveries.for_address({}), SlackDelivery)
    assert isinstance(deliveries.for_address({"adapter": "console"}), LoggedDelivery)
    assert set(deliveries.adapters) == {"slack", "unknown", "console", "log"}


# -- how verdicts read ----------------------------------------------------------------------------


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
