"""`SlackRenderer`: the Slack adapter's `bot.presenter.Renderer`, every answer as a `Message`
built by `handlers.blocks` (and `handlers.card_blocks` for `show`'s room cards)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from bot import seat_wording, wording
from bot.outcomes import (
    BannedView,
    DryRun,
    HelpReply,
    HistoryView,
    MembersView,
    NeedsConfirmation,
    Rejected,
    RoomView,
    SeatsView,
    TimersView,
)
from bot.timeline import TimelineView
from bot.wording.timers import timers_lines
from handlers.blocks import (
    SLACK,
    Message,
    confirmation_message,
    dry_run_message,
    help_message,
    history_message,
    listing_message,
    rejected_text,
    unexpected_error_text,
)
from handlers.card_blocks import show_message
from handlers.timeline_file import timeline_message


class SlackRenderer:
    """The Slack adapter's `Renderer`: every answer as a `Message` (text + blocks)."""

    def rejected(self, rejected: Rejected) -> Message:
        """A refusal, parse error or stale click."""
        return Message(text=rejected_text(rejected))

    def help(self, reply: HelpReply) -> Message:
        """Help listing what the caller may run."""
        return help_message(reply.text)

    def dry_run(self, dry: DryRun) -> Message:
        """What a `--dry-run` would send."""
        return dry_run_message(dry)

    def confirmation(self, needs: NeedsConfirmation) -> Message:
        """The Confirm / Cancel prompt."""
        return confirmation_message(needs)

    def show(self, views: Sequence[RoomView]) -> Message:
        """`show`'s answer."""
        return show_message(views)

    def history(self, view: HistoryView) -> Message:
        """`history`'s answer."""
        return history_message(view)

    def timeline(self, view: TimelineView) -> Message:
        """`timeline`'s answer: the summary, with the whole timeline as a file to upload."""
        return timeline_message(view)

    def members(self, view: MembersView) -> Message:
        """`members`' answer."""
        return listing_message(wording.members_lines(SLACK, view))

    def banned(self, view: BannedView) -> Message:
        """`banned`' answer."""
        return listing_message(wording.banned_lines(SLACK, view, time.time()))

    def seats(self, view: SeatsView) -> Message:
        """`seats`' answer."""
        return listing_message(seat_wording.seats_lines(SLACK, view))

    def timers(self, view: TimersView) -> Message:
        """`timers`' answer."""
        return listing_message(timers_lines(SLACK, view, time.time()))

    def unexpected_error(self, correlation_id: str) -> Message:
        """roombot itself failed: the id to report."""
        return Message(text=unexpected_error_text(correlation_id))
