"""Two-person approval end to end (DESIGN §2.12), through roombot's real HTTP endpoint with signed
requests, the fake Slack and the Room Engine emulator: the ack says approval is pending; the
thread shows what would run, who may approve and when it expires, with Approve and Deny; a copy
goes to the approvals channel; approve runs it once (a replayed click runs nothing again); deny
with a reason; self-approval refused; both messages end in the final state."""

from __future__ import annotations

import io
import sqlite3
from typing import Any

import pytest

from bot.audit import RequestState
from bot.audit.records import ApprovalDecision
from bot.audit.report import export_to
from handlers import approval_blocks as ab
from tests.e2e.stack import ALICE, GENERAL, Stack, button, running_stack

pytestmark = pytest.mark.slow

BOB = "U0BOB0001"
ERIN = "U0ERIN001"
APPROVALS = "C0APPROVALS"

POLICY = f"""
[roles.mods]
verbs = ["mute-all", "unmute-all", "show", "history"]
users = ["{ALICE}", "{BOB}", "{ERIN}"]

[approval]
verbs = ["mute-all"]
approvers = ["{BOB}", "{ERIN}", "{ALICE}"]
channel = "{APPROVALS}"
expire = "20m"
"""


async def _asked(stack: Stack, text: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Send `/room text` as ALICE; the request message, its approvals-channel copy and the
    request key its Approve button carries."""
    reply, _ = await stack.slash(text)
    assert reply.status == 200
    assert "Approval pending" in reply.json()["text"]
    await stack.settle()
    [request] = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
    [copy] = stack.slack.messages(APPROVALS)
    approve = button(request, ab.ACTION_APPROVE)
    assert approve is not None
    assert button(request, ab.ACTION_DENY) is not None
    assert button(copy, ab.ACTION_APPROVE) is not None
    return request, copy, str(approve["value"])


async def _click(
    stack: Stack, action: str, key: str, message: dict[str, Any], user: str, channel: str = GENERAL
) -> str:
    _reply, response_key = await stack.click(
        action, key, user_id=user, channel_id=channel, message_ts=message["ts"], message=message
    )
    return response_key


async def test_a_request_needing_approval_waits_then_runs_once_when_approved(
    tmp_path: Any,
) -> None:
    async with running_stack(tmp_path, policy_toml=POLICY, allowed_users=()) as stack:
        request, copy, key = await _asked(stack, "mute-all room-test room-2 --reason 'raid'")
        text = request["text"]
        assert f"<@{ALICE}> asks to run `/room mute-all room-test room-2" in text
        assert "Rooms: `room-test`, `room-2`" in text
        assert 'Fields and values: `{"IsAudioDisabled": true}`' in text
        assert "Reason: raid" in text
        assert f"Who may approve: <@{ALICE}>, <@{BOB}>, <@{ERIN}>" in text
        assert "Expires at " in text
        assert "(in 20 min)" in text
        assert "Thread: <https://slack.com/archives/C0GENERAL1/p" in copy["text"]
        assert stack.tencent_calls() == []  # nothing ran

        # The requester cannot approve it.
        mine = await _click(stack, ab.ACTION_APPROVE, key, request, ALICE)
        await stack.settle()
        [refusal] = stack.response_posts(mine)
        assert "you asked for this request" in refusal["text"]
        assert stack.tencent_calls() == []

        first = await _click(stack, ab.ACTION_APPROVE, key, copy, BOB, APPROVALS)
        await stack.settle()
        assert len(stack.tencent_calls()) == 2
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is True
        assert stack.response_posts(first) == []  # the approver is not told off
        # A replayed click (the same payload again) and a second approver run nothing.
        await _click(stack, ab.ACTION_APPROVE, key, copy, BOB, APPROVALS)
        late = await _click(stack, ab.ACTION_APPROVE, key, request, ERIN)
        await stack.settle()
        assert len(stack.tencent_calls()) == 2
        [already] = stack.response_posts(late)
        assert "already approved" in already["text"]

        # The run is reported in the request's thread; both messages say who approved.
        thread = stack.slack.thread(GENERAL, request["ts"])
        assert thread, stack.slack.summary()
        assert any("room-test" in m["text"] for m in thread)
        for message in (
            stack.slack.messages(GENERAL)[0],
            stack.slack.messages(APPROVALS)[0],
        ):
            assert f"Approved by <@{BOB}>" in message["text"]
            assert button(message, ab.ACTION_APPROVE) is None
        store = stack.bot.audit
        assert store is not None
        record = await store.get_request(key)
        assert record is not None
        assert (record.state, record.decision, record.decided_by, record.user_id) == (
            RequestState.REPORTED,
            ApprovalDecision.APPROVED,
            BOB,
            ALICE,
        )

        # `history` and `roombot audit` say who asked and who approved, with the times.
        _reply, history_key = await stack.slash("history room-test")
        await stack.settle()
        [history] = stack.response_posts(history_key)
        assert f"asked by {ALICE} at " in history["text"]
        assert f"approved by {BOB} at " in history["text"]
        printed = io.StringIO()
        await export_to(printed, stack.audit_path, "table")
        table = printed.getvalue()
        assert "approval" in table.splitlines()[0]
        assert f"approved by {BOB}" in table


async def test_deny_with_a_reason_through_the_modal(tmp_path: Any) -> None:
    async with running_stack(tmp_path, policy_toml=POLICY, allowed_users=()) as stack:
        request, _copy, key = await _asked(stack, "mute-all room-test")
        trigger = stack.slack.issue_trigger_id()
        await stack.click(
            ab.ACTION_DENY,
            key,
            user_id=ERIN,
            message_ts=request["ts"],
            message=request,
            trigger_id=trigger,
        )
        await stack.settle()
        modal = stack.slack.latest_view()
        assert modal["callback_id"] == ab.DENY_VIEW
        reply = await stack.submit(
            modal,
            {ab.DENY_BLOCK: "keynote"},
            user=ERIN,
        )
        assert reply.status == 200
        await stack.settle()
        assert stack.tencent_calls() == []
        for message in (stack.slack.messages(GENERAL)[0], stack.slack.messages(APPROVALS)[0]):
            assert f"Denied by <@{ERIN}>" in message["text"]
            assert ": keynote. Nothing was run." in message["text"]
        approve_after = await _click(stack, ab.ACTION_APPROVE, key, request, BOB)
        await stack.settle()
        [refusal] = stack.response_posts(approve_after)
        assert "denied" in refusal["text"]
        assert stack.tencent_calls() == []
        # The denial is in the room's history, with who denied it and why.
        _reply, history_key = await stack.slash("history room-test")
        await stack.settle()
        [history] = stack.response_posts(history_key)
        assert f"denied by {ERIN} at " in history["text"]
        assert ": keynote" in history["text"]


async def test_the_app_home_lists_requests_awaiting_the_viewers_approval_with_the_buttons(
    tmp_path: Any,
) -> None:
    async with running_stack(tmp_path, policy_toml=POLICY, allowed_users=()) as stack:
        request, _copy, key = await _asked(stack, "mute-all room-test")
        await stack.home_opened(BOB)
        await stack.settle()
        home = stack.slack.home_view(BOB)
        assert home is not None
        text = "\n".join(
            b["text"]["text"] for b in home["blocks"] if b["type"] == "section" and "text" in b
        )
        assert "*Awaiting your approval (1)*" in text
        assert f"<@{ALICE}> asks to run `/room mute-all room-test`" in text
        approve = next(
            e
            for b in home["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == ab.ACTION_APPROVE
        )
        assert approve["value"] == key
        # The requester's own Home does not offer it to them.
        await stack.home_opened(ALICE)
        await stack.settle()
        alice_home = stack.slack.home_view(ALICE)
        assert alice_home is not None
        assert "Awaiting your approval" not in str(alice_home["blocks"])
        # Approve from the Home tab (no channel there): judged in the request's channel, run once.
        await stack.in_view(home, ab.ACTION_APPROVE, value=key, user=BOB)
        await stack.settle()
        assert len(stack.tencent_calls()) == 1
        assert f"Approved by <@{BOB}>" in stack.slack.messages(GENERAL)[0]["text"]
        assert request["ts"] == stack.slack.messages(GENERAL)[0]["ts"]
        # The Home tab it was approved from is drawn again, without it.
        redrawn = stack.slack.home_view(BOB)
        assert redrawn is not None
        assert "Awaiting your approval" not in str(redrawn["blocks"])


async def test_an_expired_request_is_told_in_the_thread_and_the_approvals_channel(
    tmp_path: Any,
) -> None:
    async with running_stack(tmp_path, policy_toml=POLICY, allowed_users=()) as stack:
        request, copy, key = await _asked(stack, "mute-all room-test")
        # Its 20 minutes are over (the clock is not moved: its expiry is).
        with sqlite3.connect(stack.audit_path) as db:
            db.execute("UPDATE requests SET expires_at = 1 WHERE request_key = ?", (key,))
        loop = stack.bot.loop
        assert loop is not None
        loop.wake()
        await stack.slack.wait_for(
            lambda: "Expired at" in stack.slack.messages(GENERAL)[0]["text"], timeout=10
        )
        await stack.slack.wait_for(
            lambda: "Expired at" in stack.slack.messages(APPROVALS)[0]["text"], timeout=10
        )
        assert button(stack.slack.messages(GENERAL)[0], ab.ACTION_APPROVE) is None
        late = await _click(stack, ab.ACTION_APPROVE, key, copy, BOB, APPROVALS)
        await stack.settle()
        [refusal] = stack.response_posts(late)
        assert "expired" in refusal["text"]
        assert stack.tencent_calls() == []
        assert request["ts"] == stack.slack.messages(GENERAL)[0]["ts"]
