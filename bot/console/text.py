"""The console's own rendering: the core's outcomes as plain terminal text.

No markup of any kind: room IDs and RequestIds appear as they are, literals inside sentences in
single quotes, users by ID. It says what Slack says (the vocabulary is `bot.wording`'s), minus
what only makes sense in Slack (buttons, threads, "only you can confirm").
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Final

from bot import seat_wording, wording
from bot.commands import Command
from bot.outcomes import (
    Actor,
    BannedView,
    DryRun,
    HelpReply,
    HistoryView,
    MembersView,
    NeedsConfirmation,
    Rejected,
    RoomView,
    RunKind,
    RunResult,
    SeatsView,
    TimersView,
)
from bot.timeline import TimelineView
from bot.wording import FAIL_MARK, WARN_MARK, Style
from bot.wording.timers import room_timers_line, timebox_notes, timers_lines


def _same(text: str) -> str:
    return text


#: How the terminal says things: as they are, literals in sentences in single quotes.
PLAIN: Final = Style(
    literal=_same,
    text=_same,
    user=_same,
    channel=_same,
    you=lambda user_id: f"You ({user_id})",
    strong=_same,
    quote=lambda text: f"'{text}'",
)


def prose(text: str) -> str:
    """A core sentence (help, a hint) with its backticked literals in quotes."""
    return "\n".join(PLAIN.prose(line) for line in text.splitlines())


def request_lines(command: Command, actor: Actor, kind: RunKind = RunKind.REQUEST) -> list[str]:
    """Who ran what on which rooms, and why: printed before a write runs."""
    lines = [wording.request_head(PLAIN, command, actor, kind)]
    if command.reason and kind is RunKind.REQUEST:
        lines.append(f"  Reason: {command.reason}")
    return lines


def result_lines(run: RunResult) -> list[str]:
    """Every target's outcome (failures first, so none is lost above a long list; targets
    withdrawn before their call in one line), the notes, and the final status last."""
    lines = [f"  └ {line}" for line in wording.outcome_lines(PLAIN, run)]
    notes = [
        wording.read_before_note(run),
        wording.not_undoable_note(run),
        wording.audit_failed_note(PLAIN, run),
    ]
    lines += [f"  {note}" for note in notes if note is not None]
    lines += [f"  {note}" for note in timebox_notes(PLAIN, run, time.time())]
    lines.append(wording.final_status(run))
    return lines


class TextRenderer:
    """The console's `Renderer`: every answer as plain text."""

    def rejected(self, rejected: Rejected) -> str:
        """A refusal, parse error or stale prompt."""
        denial = rejected.denial
        if denial is not None:
            text = f"{FAIL_MARK} {wording.denial_sentence(PLAIN, denial)}"
            if denial.guardrail_channels:
                # The console's "there" is an option.
                text += f" In the console: --channel {denial.guardrail_channels[0]}."
        else:
            text = f"{FAIL_MARK} {PLAIN.prose(rejected.message)}"
        if rejected.usage:
            text += f"\nUsage: {rejected.usage}"
        return text

    def help(self, reply: HelpReply) -> str:
        """Help listing what the caller may run."""
        return prose(reply.text)

    def dry_run(self, dry: DryRun) -> str:
        """What a `--dry-run` would send: the exact bodies, one a line."""
        targets = seat_wording.dry_run_targets(dry.command, len(dry.bodies))
        head = (
            f"Dry run of /room {dry.command.verb} on {targets}: "
            "nothing was sent. Each request body would be:"
        )
        lines = [head, *(f"  {json.dumps(b, ensure_ascii=False)}" for b in dry.bodies)]
        if dry.note:
            lines.append(prose(dry.note))
        return "\n".join(lines)

    def confirmation(self, needs: NeedsConfirmation) -> str:
        """What a high-impact request would do, before the console asks for yes."""
        command = needs.command
        count = len(command.rooms)
        lines = [
            f"{WARN_MARK} Please confirm: /room {command.verb} on {count} room"
            f"{'s' if count != 1 else ''} ({PLAIN.prose(needs.reason)}).",
            f"Rooms: {wording.rooms_phrase(PLAIN, command.rooms, limit=20)}",
            f"Change: {wording.command_change(PLAIN, command)}",
        ]
        if command.reason:
            lines.append(f"Reason: {command.reason}")
        return "\n".join(lines)

    def show(self, views: Sequence[RoomView]) -> str:
        """`show`: each room's settings (seats, when read, and its time-boxed changes still to
        revert), a blank line between rooms."""
        now = time.time()
        return "\n\n".join(
            "\n".join(
                [
                    *wording.room_view_lines(PLAIN, v),
                    *filter(
                        None,
                        [
                            seat_wording.room_seats_line(PLAIN, v),
                            room_timers_line(PLAIN, v.timers, now),
                        ],
                    ),
                ]
            )
            for v in views
        )

    def history(self, view: HistoryView) -> str:
        """`history`: the newest audit entries of a room, one a line."""
        if view.problem is not None:
            return f"{FAIL_MARK} No history for {view.room_id}: {view.problem}"
        if not view.entries:
            return f"No audit entries for {view.room_id} yet."
        head = wording.history_head(PLAIN, view.room_id, len(view.entries))
        return "\n".join(
            [
                head,
                *(
                    f"  {wording.history_line(PLAIN, e, view.approvals.get(e.request_key))}"
                    for e in view.entries
                ),
            ]
        )

    def timeline(self, view: TimelineView) -> str:
        """`timeline`: the whole timeline, the same text the Slack file holds."""
        if view.timeline is None:
            return f"{FAIL_MARK} No timeline: {view.problem}"
        return view.timeline.markdown().rstrip("\n")

    def members(self, view: MembersView) -> str:
        """`members`: who is in the room, one a line."""
        head, *rest = wording.members_lines(PLAIN, view)
        return "\n".join([head, *(f"  {line}" for line in rest)])

    def banned(self, view: BannedView) -> str:
        """`banned`: who is banned, until when, one a line."""
        head, *rest = wording.banned_lines(PLAIN, view, time.time())
        return "\n".join([head, *(f"  {line}" for line in rest)])

    def seats(self, view: SeatsView) -> str:
        """`seats`: who sits on each seat, one a line."""
        head, *rest = seat_wording.seats_lines(PLAIN, view)
        return "\n".join([head, *(f"  {line}" for line in rest)])

    def timers(self, view: TimersView) -> str:
        """`timers`: the time-boxed changes still to revert, one a line, with their end."""
        head, *rest = timers_lines(PLAIN, view, time.time())
        return "\n".join([head, *(f"  {line}" for line in rest)])

    def unexpected_error(self, correlation_id: str) -> str:
        """roombot itself failed: the id to report (it is in the log too)."""
        return (
            f"{FAIL_MARK} Something went wrong inside roombot (error id {correlation_id}); "
            "report the id to the roombot maintainers; 'roombot audit' shows what was recorded."
        )
