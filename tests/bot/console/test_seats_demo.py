"""The console's seat demo against the embedded emulator: `seats town-hall` shows the speakers,
`kick-seat` takes one off, and `undo` of a `lock-seat` restores the seat."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.console.test_session import _console

#: Each test runs `roombot console` as a real process.
pytestmark = pytest.mark.slow

SPEAKERS = ["  0 · host-1", "  1 · ceo", "  2 · staff-1", "  3 · staff-2 · 🚫 audio forbidden"]


def _answer(lines: list[str], command: str) -> list[str]:
    """The lines the console printed after echoing `/room COMMAND`, up to the next command."""
    start = lines.index(f"/room {command}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("/room ")), len(lines))
    return lines[start:end]


async def test_seats_kick_seat_and_undo_of_a_lock(tmp_path: Path) -> None:
    code, lines, err = await _console(
        tmp_path,
        "seats town-hall\n"
        'kick-seat town-hall staff-1 --reason "off topic"\n'
        "lock-seat town-hall 3\n"
        "seats town-hall\n"
        "undo\n"
        "seats town-hall\n",
    )
    assert code == 0, err
    first, kicked, locked, while_locked, undone, after = (
        _answer(lines, "seats town-hall"),
        _answer(lines, 'kick-seat town-hall staff-1 --reason "off topic"'),
        _answer(lines, "lock-seat town-hall 3"),
        lines[
            lines.index("/room seats town-hall", lines.index("/room lock-seat town-hall 3")) + 1 :
        ],
        _answer(lines, "undo"),
        lines[lines.index("/room undo") :],
    )
    assert first[0] == "8 seats in town-hall (4 taken, 1 locked):"
    assert first[1:5] == SPEAKERS
    assert first[8] == "  7 · empty · 🔒 locked"

    assert kicked[0] == "U0OPERATOR ran /room kick-seat on 1 room: town-hall (account staff-1)"
    assert kicked[2].startswith("  └ ✅ town-hall — staff-1 taken off the seat · RequestId Id-")
    assert kicked[-1] == "✅ done: 1/1 account taken off the seat"

    assert locked[1].startswith("  └ ✅ town-hall — seat 3: locked · RequestId Id-")
    assert "  3 · empty · 🔒 locked" in while_locked  # locking took staff-2 off the seat

    assert undone[0] == "↩️ U0OPERATOR is undoing /room lock-seat on 1 room: town-hall (seat 3)"
    assert undone[1].startswith("  └ ✅ town-hall — seat 3: unlocked · RequestId Id-")
    seats_after = _answer(after, "seats town-hall")
    assert seats_after[0] == "8 seats in town-hall (2 taken, 1 locked):"
    assert seats_after[3:5] == ["  2 · empty", "  3 · empty"]  # open again, nobody put back


async def test_kick_seat_of_someone_not_on_a_seat_says_so(tmp_path: Path) -> None:
    code, lines, _err = await _console(tmp_path, "kick-seat town-hall staff-5\n")
    assert code == 1
    text = "\n".join(lines)
    assert "❌ town-hall · staff-5 — error 100206:" in text
    assert "the account is not on a seat, so there is nobody to take off" in text
    assert "'/room seats ROOM' shows who sits where" in text


async def test_show_lists_the_seats_under_the_room(tmp_path: Path) -> None:
    code, lines, err = await _console(tmp_path, "show town-hall\n")
    assert code == 0, err
    [seats] = [line for line in lines if line.startswith("Seats (")]
    assert seats.startswith("Seats (4/8 taken, 1 locked): 0 · host-1; 1 · ceo; 2 · staff-1; ")
    assert seats.endswith("7 · empty · 🔒 locked")
