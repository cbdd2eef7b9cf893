"""What the alert channel says beyond room settings: seat changes made outside roombot (also in
the room's history) and Tencent's warning that an API neared its limit."""

from __future__ import annotations

from collections.abc import Sequence

from bot.models import SeatEvent, SeatEventKind
from bot.outcomes import RateWarning
from bot.wording.style import WARN_MARK, Style

# What a seat's flag events say, after "seat N".
_SEAT_FLAGS = {
    SeatEventKind.LOCKED: "locked",
    SeatEventKind.UNLOCKED: "unlocked",
}
# What a member's ban events say, before "for X on seat N".
_USER_FLAGS = {
    SeatEventKind.AUDIO_FORBIDDEN: "audio forbidden",
    SeatEventKind.AUDIO_ALLOWED: "audio allowed",
    SeatEventKind.VIDEO_FORBIDDEN: "video forbidden",
    SeatEventKind.VIDEO_ALLOWED: "video allowed",
}


def seat_event_phrase(style: Style, event: SeatEvent) -> str:
    """One seat event: "seat 2 locked", "speaker `u1` removed from seat 3", ..."""
    seat = f"seat {event.index}"
    who = style.literal(event.account) if event.account else "whoever sat there"
    came_from = f"seat {event.from_index}" if event.from_index is not None else "another seat"
    if event.kind in _SEAT_FLAGS:
        return f"{seat} {_SEAT_FLAGS[event.kind]}"
    if event.kind in _USER_FLAGS:
        return f"{_USER_FLAGS[event.kind]} for {who} on {seat}"
    phrases = {
        SeatEventKind.REMOVED: f"speaker {who} removed from {seat}",
        SeatEventKind.PUT: f"{who} put on {seat}",
        SeatEventKind.MOVED: f"{who} moved from {came_from} to {seat}",
        SeatEventKind.TOOK: f"{who} took {seat}",
        SeatEventKind.LEFT: f"{who} left {seat}",
        SeatEventKind.SWITCHED: f"{who} switched from {came_from} to {seat}",
    }
    return phrases[event.kind]


def seat_events_phrase(style: Style, events: Sequence[SeatEvent]) -> str:
    """Several seat events, in order, in one phrase ("nothing" when there are none).

    A lock that removed its speaker says so once: "seat 2 locked (speaker `u1` removed)"."""
    locked = {e.index for e in events if e.kind is SeatEventKind.LOCKED}
    parts = []
    for event in events:
        if event.kind is SeatEventKind.REMOVED and event.index in locked:
            continue
        text = seat_event_phrase(style, event)
        if event.kind is SeatEventKind.LOCKED:
            removed = [
                e for e in events if e.kind is SeatEventKind.REMOVED and e.index == event.index
            ]
            if removed and removed[0].account:
                text += f" (speaker {style.literal(removed[0].account)} removed)"
        parts.append(text)
    return ", ".join(parts) or "nothing"


def rate_warning_line(style: Style, warning: RateWarning) -> str:
    """An alert's line for `Alert.RequestOverLimit`: the API, what Tencent saw, what roombot
    did about it."""
    api = style.literal(warning.api)
    seen = ""
    if warning.observed is not None and warning.limit is not None:
        seen = f" ({warning.observed} calls/s against a limit of {warning.limit})"
    elif warning.observed is not None:
        seen = f" ({warning.observed} calls/s)"
    line = f"{WARN_MARK} Tencent warns that this app's calls to {api} passed 80% of its limit{seen}"
    if warning.budget is not None:
        line += (
            f": roombot halved its own budget for {api} to {warning.budget:g} calls/s, on every "
            f"replica, for {round(warning.until_s or 0):d} s (the app's other callers share the "
            "limit)"
        )
    if warning.note:
        line += f" ({style.text(warning.note)})"
    return line
