"""The approval request as Slack shows it: exactly what would run, a time box included."""

from __future__ import annotations

import time
from dataclasses import replace

from bot.outcomes import Actor, ApprovalPending, Source
from handlers.approval_blocks import request_message
from tests.bot.corekit import plan_for

ALICE = Actor(user_id="U0ALICE01", source=Source.SLASH, team_id="T1", channel_id="C0GENERAL1")


def _pending(text: str) -> ApprovalPending:
    plan = replace(plan_for(text, ALICE), request_key="asked")
    return ApprovalPending(
        plan=plan,
        why="`mute-all` needs a second person's approval",
        approvers=("U0BOB0001",),
        expires_at=time.time() + 900,
    )


def test_a_time_box_is_shown_with_when_it_starts() -> None:
    text = request_message(_pending("mute-all room-1 --for 30m")).text
    assert "For: 30m" in text
    assert "reverts by itself 30m after it runs, once approved" in text


def test_without_a_time_box_no_such_line() -> None:
    assert "For:" not in request_message(_pending("mute-all room-1")).text
