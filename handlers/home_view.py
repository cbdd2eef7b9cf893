"""The App Home tab as Block Kit: what the user may do, their last requests, the rooms they
touched lately with a Show button. Pure functions of `bot.outcomes.Access` and `Activity`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from bot import wording
from bot.audit import Outcome
from bot.outcomes import Access, Activity, ApprovalPending, RequestSummary
from bot.wording import FAIL_MARK, OK_MARK, WARN_MARK, WORKING_MARK
from bot.wording.timers import home_timer_line
from handlers import blocks
from handlers.approval_blocks import request_message
from handlers.blocks import MAX_HEADER_CHARS, MAX_VIEW_BLOCKS, SLACK, code, context, section

#: The Show button next to a room the user touched lately (its value is the room ID).
ACTION_HOME_SHOW: Final = "roombot_home_show"

_DONE: Final = frozenset({Outcome.OK, Outcome.NOOP, Outcome.IN_PLACE})
_FAILED: Final = frozenset({Outcome.FAILED, Outcome.NOT_APPLIED, Outcome.NOT_ATTEMPTED})


def _verbs(verbs: tuple[str, ...]) -> str:
    return ", ".join(code(verb) for verb in verbs)


def access_lines(access: Access) -> list[str]:
    """What the user may run, everywhere and only in some channels; or how to get access."""
    if access.nothing:
        return [
            "*What you may do*",
            "You may not run any roombot command yet. To get access, ask whoever runs roombot "
            f"to add your user ID {code(access.user_id)} to `ROOMBOT_ALLOWED_USERS`, or to a "
            "role in its policy file (`ROOMBOT_POLICY_FILE`). `/room help` explains the "
            "commands.",
        ]
    lines = ["*What you may do*"]
    if access.everywhere:
        lines.append(f"In every channel: {_verbs(access.everywhere)}")
    for channel, verbs in access.only_in:
        lines.append(f"Only in <#{channel}>: {_verbs(verbs)}")
    return lines


def outcome_phrase(outcomes: Mapping[Outcome, int]) -> str:
    """How a request ended, from its rows' outcomes: "✅ done", "⚠️ 1/3 failed", "⛔ denied"…"""
    total = sum(outcomes.values())
    done = sum(n for o, n in outcomes.items() if o in _DONE)
    failed = sum(n for o, n in outcomes.items() if o in _FAILED)
    if outcomes.get(Outcome.DENIED):
        return "⛔ denied"
    if outcomes.get(Outcome.INVALID):
        return f"{FAIL_MARK} invalid"
    if outcomes.get(Outcome.CANCELLED):
        return "cancelled, nothing changed"
    if outcomes.get(Outcome.DRY_RUN):
        return "dry run, nothing sent"
    if outcomes.get(Outcome.PENDING):
        return f"{WORKING_MARK} in progress"
    if outcomes.get(Outcome.UNKNOWN):
        return f"{WARN_MARK} outcome unknown: check the rooms"
    if failed and done:
        return f"{WARN_MARK} partly done: {failed}/{total} failed"
    if failed:
        return f"{FAIL_MARK} failed"
    return f"{OK_MARK} done"


def _when(created_at: float) -> str:
    # Slack shows the date in the reader's own time zone; the fallback is UTC.
    fallback = datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(created_at)}^{{date_short_pretty}} {{time}}|{fallback}>"


#: How much of a request that did not parse the Home tab quotes.
_TYPED_CHARS: Final = 60


def request_line(request: RequestSummary) -> str:
    """One past request: its outcome, command, rooms and when."""
    if request.verb:
        command = code("/room " + request.verb)
    else:  # it did not parse: quote the start of what was typed
        typed = " ".join(request.text.split())
        typed = typed if len(typed) <= _TYPED_CHARS else typed[: _TYPED_CHARS - 1] + "…"
        command = code("/room " + typed)
    rooms = f" on {wording.rooms_phrase(SLACK, request.rooms, limit=3)}" if request.rooms else ""
    return f"{outcome_phrase(request.outcomes)} · {command}{rooms} · {_when(request.created_at)}"


def home_view(
    access: Access, activity: Activity, awaiting: Sequence[ApprovalPending] = ()
) -> dict[str, Any]:
    """The Home tab for one user (≤ `MAX_VIEW_BLOCKS` blocks); `awaiting`: the requests they
    may approve, each with Approve / Deny, first."""
    view_blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "roombot"[:MAX_HEADER_CHARS]}},
    ]
    if awaiting:
        view_blocks.append(section(f"*Awaiting your approval ({len(awaiting)})*"))
        for index, pending in enumerate(awaiting):
            for block in request_message(pending).blocks:
                view_blocks.append(
                    {**block, "block_id": f"roombot_home_approval_{index}_{block['type']}"}
                )
        view_blocks.append({"type": "divider"})
    view_blocks += [section(chunk) for chunk in blocks.chunk_lines(access_lines(access))]
    if not access.nothing:
        view_blocks.append(
            context(
                "Type `/room` with nothing after it in a channel to open the command form, "
                "or `/room help` for the command language."
            )
        )
    view_blocks.append({"type": "divider"})
    lines = [request_line(r) for r in activity.requests]
    title = f"*Your last {len(lines)} requests*" if len(lines) > 1 else "*Your last request*"
    if not lines:
        view_blocks.append(section("*Your requests*\nNone yet."))
    else:
        view_blocks += [section(chunk) for chunk in blocks.chunk_lines([title, *lines])]
    if activity.problem is not None:
        view_blocks.append(
            context(
                f"{WARN_MARK} Could not read the audit trail: {blocks.escape(activity.problem)}"
            )
        )
    if activity.timers:
        now = time.time()
        view_blocks.append({"type": "divider"})
        timer_lines = [home_timer_line(SLACK, t, now) for t in activity.timers]
        title = "*Your time-boxed changes* (reverted by roombot when their time is up)"
        view_blocks += [section(chunk) for chunk in blocks.chunk_lines([title, *timer_lines])]
    view_blocks.append({"type": "divider"})
    view_blocks.append(
        section("*Rooms you touched lately*" + ("" if activity.rooms else "\nNone yet."))
    )
    may_show = "show" in access.everywhere
    for index, room in enumerate(activity.rooms):
        block = section(code(room))
        block["block_id"] = f"roombot_home_room_{index}"
        if may_show:
            block["accessory"] = blocks.button("Show", ACTION_HOME_SHOW, room)
        view_blocks.append(block)
    if activity.rooms and not may_show:
        view_blocks.append(context("You may not run `show` outside a channel, so no Show button."))
    return {"type": "home", "blocks": view_blocks[:MAX_VIEW_BLOCKS]}
