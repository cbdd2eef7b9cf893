"""The core's outcomes → Slack messages (mrkdwn text + Block Kit) within Slack's limits.

Pure functions of `bot.outcomes` types; nothing here talks to Slack. Every piece of user or
Tencent text is escaped before it is put into mrkdwn, so a room name or a reason can never ping
`@channel` or inject a link. `SlackRenderer` is this adapter's `bot.presenter.Renderer`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bot import seat_wording, wording
from bot.audit import Outcome
from bot.commands import Command
from bot.config import USER_ID_RE
from bot.defaults import CONFIRMATION_TTL_TEXT
from bot.outcomes import (
    Actor,
    ChangeKind,
    DryRun,
    HistoryView,
    NeedsConfirmation,
    OutsideChange,
    RateWarning,
    Rejected,
    RoomResult,
    RoomView,
    RunKind,
    RunResult,
)
from bot.requests.takeover import TakeoverReport
from bot.wording import FAIL_MARK, WARN_MARK, WORKING_MARK, Style
from bot.wording.timers import timebox_notes

#: Slack's Block Kit limits (reference/slack-platform.md), in one place: every renderer here and in
#: `handlers.views` keeps to them, and tests/handlers check them with 500 rooms and long names.
MAX_BLOCKS: Final = 50  # a message
MAX_VIEW_BLOCKS: Final = 100  # a modal or the App Home tab
MAX_SECTION_CHARS: Final = 3000  # section and context text
MAX_TEXT_CHARS: Final = 3900  # chat.postMessage advises ≤ 4000 characters of text
MAX_HEADER_CHARS: Final = 150
MAX_ACTIONS_ELEMENTS: Final = 25  # elements of one actions block
MAX_BUTTON_TEXT_CHARS: Final = 75
MAX_VALUE_CHARS: Final = 2000  # a button's value
#: Slack allows 255 for an action_id; roombot keeps its own under 75 (issue #17).
MAX_ACTION_ID_CHARS: Final = 75
MAX_BLOCK_ID_CHARS: Final = 255
MAX_OPTIONS: Final = 100  # options of a select menu
MAX_OPTION_TEXT_CHARS: Final = 75
MAX_OPTION_VALUE_CHARS: Final = 150
MAX_CHECKBOX_OPTIONS: Final = 10
MAX_TITLE_CHARS: Final = 24  # a modal's title, submit and close buttons
MAX_LABEL_CHARS: Final = 2000  # an input block's label and hint
MAX_PLACEHOLDER_CHARS: Final = 150
MAX_INPUT_CHARS: Final = 3000  # what a plain_text_input may hold (its max_length)
MAX_PRIVATE_METADATA_CHARS: Final = 3000

#: Button action ids (the Slack handlers route on these).
ACTION_CONFIRM: Final = "roombot_confirm"
ACTION_CANCEL: Final = "roombot_cancel"
ACTION_UNDO: Final = "roombot_undo"
ACTION_RETRY: Final = "roombot_retry_failed"
#: A time-boxed change's timer buttons (their value is the revert request's key).
ACTION_REVERT_NOW: Final = "roombot_timer_revert_now"
ACTION_EXTEND: Final = "roombot_timer_extend"
ACTION_KEEP: Final = "roombot_timer_keep"
TIMER_ACTIONS: Final = (ACTION_REVERT_NOW, ACTION_EXTEND, ACTION_KEEP)
#: The Show button of an alert about a change made outside roombot (its value is the room ID).
ACTION_SHOW: Final = "roombot_show_room"
#: Most changes one alert message lists; the rest are counted.
ALERT_MAX_LISTED: Final = 20


@dataclass(frozen=True)
class Message:
    """A message to post: `text` is complete on its own (notifications, fallbacks, the console)."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    #: Files to upload with the message (`files_upload_v2`): `timeline`'s Markdown.
    files: tuple[SlackFile, ...] = ()


@dataclass(frozen=True)
class SlackFile:
    """A file to upload beside a message."""

    filename: str
    title: str
    content: str


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats specially."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """`text` as an inline code span (escaped; backticks, which would end it, are swapped)."""
    return "`" + escape(text).replace("`", "ˋ") + "`"


def user(user_id: str) -> str:
    """A Slack mention of a user ID (IDs are validated upstream: only [A-Z0-9])."""
    return f"<@{user_id}>"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _truncate(text, MAX_SECTION_CHARS)},
    }


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _truncate(text, 3000)}]}


def _you(user_id: str) -> str:
    # Both the mention (readable) and the raw ID (what an admin pastes into the policy file).
    # Only a well-formed ID is wrapped in mention markup.
    if USER_ID_RE.match(user_id):
        return f"You ({user(user_id)}, `{user_id}`)"
    return f"You ({code(user_id)})"


#: How Slack says things: mrkdwn code spans, escaped text, mentions, bold titles.
SLACK: Final = Style(
    literal=code,
    text=escape,
    user=user,
    channel=lambda channel_id: f"<#{channel_id}>",
    you=_you,
    strong=lambda text: f"*{text}*",
)


# -- slash command and mention flow ----------------------------------------------------------------


def parent_head(command: Command, actor: Actor, kind: RunKind = RunKind.REQUEST) -> str:
    """The parent message without its status line: who ran what, on which rooms, and why."""
    lines = [wording.request_head(SLACK, command, actor, kind)]
    if command.reason and kind is RunKind.REQUEST:
        lines.append(f"Reason: {escape(command.reason)}")
    return "\n".join(lines)


def parent_with_status(head: str, status: str) -> Message:
    """A parent message from its head (`parent_head`) and a status line."""
    text = f"{head}\n{status}"
    return Message(text=_truncate(text, MAX_TEXT_CHARS), blocks=[_section(text)])


def parent_message(
    command: Command, actor: Actor, status: str | None = None, kind: RunKind = RunKind.REQUEST
) -> Message:
    """The message that threads a request: who ran what, on which rooms, and why."""
    return parent_with_status(
        parent_head(command, actor, kind), status or f"{WORKING_MARK} working…"
    )


def room_line(result: RoomResult, verb: str | None = None) -> str:
    """One target's outcome in mrkdwn."""
    return wording.room_line(SLACK, result, verb)


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {
            "type": "plain_text",
            "text": _truncate(text, MAX_BUTTON_TEXT_CHARS),
            "emoji": True,
        },
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def result_actions(run: RunResult) -> dict[str, Any] | None:
    """The Undo / Retry failed buttons a finished request offers, if any."""
    if run.audit_error:
        return None  # both buttons find their request in the audit store, which failed
    buttons = []
    if run.undoable:
        buttons.append(_button("Undo", ACTION_UNDO, run.request_key))
    if run.retryable and run.kind is not RunKind.UNDO:
        retry = f"Retry {len(run.retryable)} failed"
        buttons.append(_button(retry, ACTION_RETRY, run.request_key))
    if run.revert_key is not None and run.kind is RunKind.REQUEST and run.succeeded:
        buttons += [
            _button("Revert now", ACTION_REVERT_NOW, run.revert_key),
            _button("Extend 30 min", ACTION_EXTEND, run.revert_key),
            _button("Keep", ACTION_KEEP, run.revert_key),
        ]
    if not buttons:
        return None
    return {"type": "actions", "block_id": "roombot_result_actions", "elements": buttons}


def _notes(run: RunResult) -> list[str]:
    notes = [
        wording.read_before_note(run),
        wording.not_undoable_note(run),
        wording.audit_failed_note(SLACK, run),
        *timebox_notes(SLACK, run, time.time()),
    ]
    return [note for note in notes if note is not None]


def result_lines(run: RunResult) -> list[str]:
    """Every target's line in mrkdwn (see `bot.wording.outcome_lines`)."""
    return wording.outcome_lines(SLACK, run)


def _chunk_lines(lines: Iterable[str], limit: int = MAX_SECTION_CHARS - 100) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = _truncate(line, limit)
        if current and size + len(line) + 1 > limit:
            chunks.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        chunks.append("\n".join(current))
    return chunks


#: The building blocks, for this adapter's other renderers (`handlers.form`, `handlers.home_view`,
#: `handlers.card_blocks`): a mrkdwn section and a context line cut to Slack's limit, a button,
#: lines packed into sections, text cut to a limit.
section = _section
context = _context
button = _button
chunk_lines = _chunk_lines
truncate = _truncate


def result_messages(run: RunResult) -> list[Message]:
    """The threaded outcome: a summary, every room's line, notes and buttons, split to fit
    Block Kit limits. Failed rooms come first so they are never lost below a long list."""
    summary = wording.final_status(run)
    chunks = _chunk_lines(result_lines(run))
    notes = _notes(run)
    actions = result_actions(run)
    # Room lines per message: leave room for the summary, the notes and the buttons.
    per_message = MAX_BLOCKS - 3 - len(notes)
    messages: list[Message] = []
    starts = list(range(0, max(len(chunks), 1), per_message))
    for start in starts:
        part = chunks[start : start + per_message]
        blocks = [_section(c) for c in part]
        lines = list(part)
        if start == 0:
            blocks.insert(0, _section(f"*{summary}*"))
            # Notes go right under the summary in the text, so truncation never drops them.
            lines[:0] = [summary, *notes]
        if start == starts[-1]:
            blocks += [_context(n) for n in notes]
            if actions is not None:
                blocks.append(actions)
        messages.append(Message(text=_truncate("\n".join(lines), MAX_TEXT_CHARS), blocks=blocks))
    return messages


def takeover_messages(
    report: TakeoverReport, *, restarted: bool, head: str | None = None
) -> list[Message]:
    """What a survivor posts for a request whose replica stopped: a summary, every room's
    verdict (not applied and unknown first), a note if the audit trail could not take them,
    and Retry for what is not done. `head` (the request's parent text) leads the first message
    when it is posted outside the request's thread; `restarted` as in
    `wording.takeover_summary`."""
    summary = wording.takeover_summary(report, restarted=restarted)
    order = {Outcome.NOT_APPLIED: 0, Outcome.UNKNOWN: 1, Outcome.FAILED: 2}
    verdicts = sorted(report.verdicts, key=lambda v: order.get(v.outcome, 3))
    lines = [wording.verdict_line(SLACK, v, report.verb) for v in verdicts]
    notes = []
    if report.audit_problem:
        notes.append(
            f"{WARN_MARK} The audit trail could not record every verdict "
            f"({escape(report.audit_problem)}); the lines above are what was read."
        )
    retry = wording.takeover_retry_count(report)
    offer_retry = bool(retry) and report.audit_problem is None and report.verb != "undo"
    actions = None
    if offer_retry:
        actions = {
            "type": "actions",
            "block_id": "roombot_takeover_actions",
            "elements": [_button(f"Retry {retry} not done", ACTION_RETRY, report.request_key)],
        }
    first = [head, summary] if head else [summary]
    chunks = _chunk_lines(lines)
    per_message = MAX_BLOCKS - 2 - len(first) - len(notes)
    messages: list[Message] = []
    starts = list(range(0, max(len(chunks), 1), per_message))
    for start in starts:
        part = chunks[start : start + per_message]
        blocks = [_section(c) for c in part]
        text_lines = list(part)
        if start == 0:
            blocks[:0] = [_section(line) for line in first]
            text_lines[:0] = [*first, *notes]
        if start == starts[-1]:
            blocks += [_context(n) for n in notes]
            if actions is not None:
                blocks.append(actions)
        messages.append(
            Message(text=_truncate("\n".join(text_lines), MAX_TEXT_CHARS), blocks=blocks)
        )
    return messages


def used_button_blocks(
    blocks: list[dict[str, Any]], action_id: str, note: str
) -> list[dict[str, Any]]:
    """`blocks` of a message whose button `action_id` was used: that button removed (the others
    kept) and `note` added, so it cannot be clicked again."""
    updated: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "actions":
            remaining = [e for e in block.get("elements", []) if e.get("action_id") != action_id]
            if remaining:
                updated.append({**block, "elements": remaining})
            continue
        updated.append(block)
    updated.append(_context(note))
    return updated[:MAX_BLOCKS]


def confirmation_message(
    needs: NeedsConfirmation,
    *,
    confirm_id: str = ACTION_CONFIRM,
    cancel_id: str = ACTION_CANCEL,
    value: str | None = None,
) -> Message:
    """The ephemeral prompt for a high-impact request: a summary and Confirm / Cancel.

    The buttons' action ids and value (by default the confirmation's key) can be others: a
    prompt in a room card's place (`handlers.card_blocks.card_confirmation`) carries the rooms."""
    command = needs.command
    count = len(command.rooms)
    changes = wording.command_change(SLACK, command)
    lines = [
        f"{WARN_MARK} Please confirm: {code('/room ' + command.verb)} on {count} room"
        f"{'s' if count != 1 else ''} ({SLACK.prose(needs.reason)}).",
        f"Rooms: {wording.rooms_phrase(SLACK, command.rooms, limit=20)}",
        f"Change: {changes}",
    ]
    if command.reason:
        lines.append(f"Reason: {escape(command.reason)}")
    lines.append(f"Only you can confirm; this prompt expires in {CONFIRMATION_TTL_TEXT}.")
    text = "\n".join(lines)
    value = needs.key if value is None else value
    blocks = [
        _section(text),
        {
            "type": "actions",
            "block_id": "roombot_confirm_actions",
            "elements": [
                _button("Confirm", confirm_id, value, "danger"),
                _button("Cancel", cancel_id, value),
            ],
        },
    ]
    return Message(text=_truncate(text, MAX_TEXT_CHARS), blocks=blocks)


def rejected_text(rejected: Rejected) -> str:
    """A parse error, refusal or stale click as an ephemeral reply."""
    if rejected.denial is not None:
        text = f"{FAIL_MARK} {wording.denial_sentence(SLACK, rejected.denial)}"
    else:
        text = f"{FAIL_MARK} {escape(rejected.message)}"
    if rejected.usage:
        text += f"\nUsage: {code(rejected.usage)}"
    return text


def dry_run_message(dry: DryRun) -> Message:
    """What `--dry-run` would send: the exact JSON bodies, one per room."""
    targets = seat_wording.dry_run_targets(dry.command, len(dry.bodies))
    head = (
        f"Dry run of {code('/room ' + dry.command.verb)} on {targets}: nothing was sent. "
        "Each request body would be:"
    )
    bodies = "\n".join(json.dumps(b, ensure_ascii=False) for b in dry.bodies)
    body_text = "```" + escape(bodies).replace("```", "ˋˋˋ") + "```"
    text = _truncate(f"{head}\n{body_text}", MAX_TEXT_CHARS)
    chunks = _chunk_lines(json.dumps(b, ensure_ascii=False) for b in dry.bodies)
    blocks = [_section(head)] + [
        _section("```" + escape(c).replace("```", "ˋˋˋ") + "```") for c in chunks[: MAX_BLOCKS - 2]
    ]
    if dry.note:  # what the bodies cannot show (a lock_seat's other flags)
        blocks.append(_context(SLACK.prose(dry.note)))
    return Message(text=text, blocks=blocks)


def help_message(text: str) -> Message:
    """Help text (already mrkdwn-friendly) as a message."""
    return Message(
        text=_truncate(text, MAX_TEXT_CHARS),
        blocks=[_section(c) for c in _chunk_lines(text.splitlines())][:MAX_BLOCKS],
    )


def room_view_text(view: RoomView) -> str:
    """A room as `show` renders it, compactly."""
    return "\n".join(wording.room_view_lines(SLACK, view))


def fallback_hint(reason: str | None, *, not_here: bool) -> str:
    """Told (ephemerally) to a requester whose result could not go in a thread, and why:
    `not_here` when the bot may not post in the channel, else Slack failed (`reason`)."""
    if not_here:
        return (
            "I could not post in this channel (private channel or DM I am not in), so the "
            "result came back here instead. To get threaded results with an Undo button, "
            "invite me: `/invite @roombot`."
        )
    why = "Slack is rate-limiting me" if reason == "ratelimited" else "Slack did not answer"
    return (
        f"{why} ({escape(reason or 'unknown')}), so the result came back here instead of in a "
        "thread; the rooms' outcome above is complete."
    )


def unexpected_error_text(correlation_id: str, *, work_started: bool = False) -> str:
    """What a user sees when roombot itself failed: a short id they can report, and whether
    anything may have happened (`work_started`: the request was being carried out)."""
    if work_started:
        return (
            f"{FAIL_MARK} Something went wrong inside roombot (error id `{correlation_id}`) while "
            "carrying out this request: some rooms may have changed. `/room history ROOM` shows "
            "what was done; report the id to the roombot maintainers."
        )
    return (
        f"{FAIL_MARK} Something went wrong inside roombot (error id `{correlation_id}`). "
        "Nothing further was done for this request; report the id to the roombot maintainers."
    )


def history_message(view: HistoryView) -> Message:
    """`history ROOM`: the newest audit entries for the room, one line each."""
    if view.problem is not None:
        text = f"{FAIL_MARK} No history for {code(view.room_id)}: {escape(view.problem)}"
        return Message(text=text, blocks=[_section(text)])
    if not view.entries:
        text = f"No audit entries for {code(view.room_id)} yet."
        return Message(text=text, blocks=[_section(text)])
    head = wording.history_head(SLACK, view.room_id, len(view.entries))
    lines = [
        head,
        *(wording.history_line(SLACK, e, view.approvals.get(e.request_key)) for e in view.entries),
    ]
    chunks = _chunk_lines(lines)
    return Message(
        text=_truncate("\n".join(lines), MAX_TEXT_CHARS),
        blocks=[_section(c) for c in chunks][:MAX_BLOCKS],
    )


def listing_message(lines: list[str]) -> Message:
    """A members or banned listing: the head, then the lines in sections within Block Kit's
    limits."""
    text = "\n".join(lines)
    chunks = _chunk_lines(lines)
    return Message(
        text=_truncate(text, MAX_TEXT_CHARS), blocks=[_section(c) for c in chunks][:MAX_BLOCKS]
    )


def outside_changes_message(
    changes: Sequence[OutsideChange | RateWarning], more: int = 0
) -> Message:
    """One alert for changes made outside roombot (and Tencent's rate warnings): a line per
    change (the first `ALERT_MAX_LISTED`), each with a Show button unless the room is gone,
    then how many more there were and where the full record is."""
    listed = list(changes[:ALERT_MAX_LISTED])
    more += len(changes) - len(listed)
    lines = [
        wording.rate_warning_line(SLACK, change)
        if isinstance(change, RateWarning)
        else wording.outside_change_line(SLACK, change)
        for change in listed
    ]
    blocks: list[dict[str, Any]] = []
    for change, line in zip(listed, lines, strict=True):
        block = _section(line)
        if isinstance(change, OutsideChange) and change.kind is not ChangeKind.DESTROYED:
            block["accessory"] = _button("Show", ACTION_SHOW, change.room_id)
        blocks.append(block)
    footer = "Recorded in the audit trail: `/room history ROOM`, or `roombot audit --since 1h`."
    if not any(isinstance(change, OutsideChange) for change in changes) and not more:
        footer = (
            "roombot slows down by itself; the metric `roombot_rate_budget_limit` shows each "
            "API's budget now."
        )
    if more:
        footer = f"…and {more} more change{'s' if more != 1 else ''} not listed here. " + footer
    blocks.append(_context(footer))
    # The footer is never cut off: it says how many changes the lines above leave out.
    text = _truncate("\n".join(lines), MAX_TEXT_CHARS - len(footer) - 1) + "\n" + footer
    return Message(text=text, blocks=blocks)
