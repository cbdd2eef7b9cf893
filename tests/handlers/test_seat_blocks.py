"""Seats in Slack: the `seats` listing and a seat verb's dry run, within Block Kit's limits."""

from __future__ import annotations

from bot.commands import parse_command
from bot.models import Seat, SeatList
from bot.outcomes import DryRun, SeatsView
from bot.seat_wording import dry_run_note
from handlers.blocks import MAX_BLOCKS, dry_run_message
from handlers.renderer import SlackRenderer


def test_the_seats_listing_in_slack() -> None:
    seats = tuple(Seat(i, f"speaker-{i}" if i % 2 else None) for i in range(16))
    message = SlackRenderer().seats(SeatsView("town-hall", SeatList("town-hall", seats, "Id-1")))
    assert message.text.startswith("16 seats in `town-hall` (8 taken):")
    assert "1 · `speaker-1`" in message.text
    assert "`Id-1`" in message.text
    assert message.blocks is not None
    assert 1 <= len(message.blocks) <= MAX_BLOCKS


def test_a_lock_seat_dry_run_counts_seats_and_says_where_the_other_flags_come_from() -> None:
    command = parse_command("lock-seat town-hall 2 3 --dry-run")
    bodies = tuple(call.body() for call in command.calls("U0ALICE01"))
    message = dry_run_message(DryRun(command, bodies, note=dry_run_note(command)))
    assert "on 2 seats: nothing was sent" in message.text
    assert message.blocks is not None
    note = message.blocks[-1]
    assert note["type"] == "context"
    assert "seat list read just before the call" in note["elements"][0]["text"]
    assert "`lock_seat`" in note["elements"][0]["text"]
