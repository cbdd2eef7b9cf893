"""Block Kit for two-person approval (DESIGN §2.12): the request an approver sees (exactly what
would run, who may approve, when it expires, Approve / Deny), the same message in its final
state (approved by whom, denied by whom and why, withdrawn, expired), and the Deny modal that
asks for an optional reason."""

from __future__ import annotations

import json
import time
from typing import Any, Final

from bot import wording
from bot.audit import RequestRecord
from bot.audit.records import ApprovalDecision
from bot.commands import format_duration
from bot.outcomes import ApprovalPending, Plan, RunKind
from bot.wording import FAIL_MARK, OK_MARK
from handlers.blocks import MAX_TEXT_CHARS, SLACK, Message, code, escape, user

ACTION_APPROVE: Final = "roombot_approve"
ACTION_DENY: Final = "roombot_deny"
#: The Deny modal's callback id; its `private_metadata` is the request key.
DENY_VIEW: Final = "roombot_deny_reason"
DENY_BLOCK: Final = "roombot_deny_reason_block"
DENY_INPUT: Final = "roombot_deny_reason_input"
WAIT_MARK: Final = "🔐"
EXPIRED_MARK: Final = "⌛"


def _when(moment: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(moment))


def _approver(approver_id: str) -> str:
    if approver_id.startswith("S"):
        return f"<!subteam^{approver_id}>"
    return user(approver_id)


def _what(plan: Plan) -> list[str]:
    """Exactly what would run: the command, rooms, fields and values, accounts, time box,
    reason."""
    command = plan.command
    undo = " (an undo)" if plan.kind is RunKind.UNDO else ""
    lines = [
        f"{WAIT_MARK} {user(plan.actor.user_id)} asks to run "
        f"{code('/room ' + plan.raw_text)}{undo}",
        f"Rooms: {wording.rooms_phrase(SLACK, command.rooms, limit=50)}",
        f"Change: {wording.command_change(SLACK, command)}",
    ]
    if command.changes:
        sent = json.dumps(dict(command.changes), ensure_ascii=False, sort_keys=True)
        lines.append(f"Fields and values: {code(sent)}")
    if command.timebox_s is not None:
        span = format_duration(command.timebox_s)
        lines.append(f"For: {span} (it reverts by itself {span} after it runs, once approved)")
    if command.reason:
        lines.append(f"Reason: {escape(command.reason)}")
    return lines


def request_message(pending: ApprovalPending, *, link: str | None = None) -> Message:
    """The request awaiting approval, with Approve and Deny (and, in the approvals channel,
    `link` back to its thread)."""
    plan = pending.plan
    lines = _what(plan)
    lines.append(f"Needs approval: {SLACK.prose(pending.why)}")
    approvers = ", ".join(_approver(a) for a in pending.approvers)
    lines.append(f"Who may approve: {approvers} (not the requester)")
    minutes = max(1, round((pending.expires_at - time.time()) / 60))
    lines.append(f"Expires at {_when(pending.expires_at)} (in {minutes} min) if nobody approves")
    if link:
        lines.append(f"Thread: {link}")
    text = "\n".join(lines)
    value = pending.request_key
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
        {
            "type": "actions",
            "block_id": "roombot_approval_actions",
            "elements": [
                _button("Approve", ACTION_APPROVE, value, "primary"),
                _button("Deny", ACTION_DENY, value, "danger"),
            ],
        },
    ]
    return Message(text=text[:MAX_TEXT_CHARS], blocks=blocks)


def decision_line(record: RequestRecord) -> str:
    """The request's final state, one line."""
    at = f" at {_when(record.decided_at)}" if record.decided_at else ""
    by = user(record.decided_by) if record.decided_by else "someone"
    if record.decision == ApprovalDecision.APPROVED:
        return f"{OK_MARK} Approved by {by}{at}: it runs once, the outcome follows in the thread."
    if record.decision == ApprovalDecision.DENIED:
        why = f": {escape(record.decision_note)}" if record.decision_note else ""
        return f"{FAIL_MARK} Denied by {by}{at}{why}. Nothing was run."
    if record.decision == ApprovalDecision.WITHDRAWN:
        return f"{FAIL_MARK} Withdrawn by the requester{at}. Nothing was run."
    return f"{EXPIRED_MARK} Expired{at}: nobody approved it. Nothing was run; ask again if needed."


def decided_message(plan: Plan, record: RequestRecord, *, link: str | None = None) -> Message:
    """The request in its final state: no buttons, the decision instead."""
    lines = _what(plan)
    if link:
        lines.append(f"Thread: {link}")
    lines.append(decision_line(record))
    text = "\n".join(lines)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]
    return Message(text=text[:MAX_TEXT_CHARS], blocks=blocks)


def deny_modal(request_key: str) -> dict[str, Any]:
    """The Deny modal: an optional reason, the request key in `private_metadata`."""
    return {
        "type": "modal",
        "callback_id": DENY_VIEW,
        "private_metadata": request_key,
        "title": {"type": "plain_text", "text": "Deny the request"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Back"},
        "blocks": [
            {
                "type": "input",
                "block_id": DENY_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Why (shown in the thread)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": DENY_INPUT,
                    "max_length": 300,
                },
            }
        ],
    }


def permalink(channel: str, ts: str) -> str:
    """A link to a message (Slack redirects it into the workspace)."""
    return f"<https://slack.com/archives/{channel}/p{ts.replace('.', '')}|the request's thread>"


def _button(text: str, action_id: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
        "style": style,
    }
