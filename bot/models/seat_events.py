"""What happened to a room's seats between two seat lists, as `Mic.CallbackAfterSeatInfoChanged`
reports them (`bot.callbacks.seat_changes` works them out): plain data the alerts, the audit
trail's history and the metrics share.

Two kinds of event. *Traffic* is people taking, leaving and switching seats themselves: counted,
never stored per event, never posted. Everything else is a seat change someone made: a seat
locked or unlocked, audio or video forbidden or allowed for whoever sits there, a speaker taken
off a seat (by a lock, or by someone else), someone put on or moved between seats by someone
else. Only a lock and a removal are alerted (`SeatEvent.alerted`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class SeatEventKind(StrEnum):
    """What happened on one seat."""

    LOCKED = "locked"
    UNLOCKED = "unlocked"
    AUDIO_FORBIDDEN = "audio_forbidden"
    AUDIO_ALLOWED = "audio_allowed"
    VIDEO_FORBIDDEN = "video_forbidden"
    VIDEO_ALLOWED = "video_allowed"
    REMOVED = "removed"  # a speaker taken off the seat: by a lock, or by someone else
    PUT = "put"  # someone else put a member on the seat
    MOVED = "moved"  # someone else moved a member here from `from_index`
    TOOK = "took"  # traffic: a member took the seat
    LEFT = "left"  # traffic: a member left the seat
    SWITCHED = "switched"  # traffic: a member moved here from `from_index` themselves


#: The kinds that are people's own comings and goings.
TRAFFIC: Final = frozenset({SeatEventKind.TOOK, SeatEventKind.LEFT, SeatEventKind.SWITCHED})
#: The kinds posted to the alert channel when someone else did them.
ALERTED: Final = frozenset({SeatEventKind.LOCKED, SeatEventKind.REMOVED})


@dataclass(frozen=True)
class SeatEvent:
    """One thing that happened on seat `index`; `account` is the member it happened to (for
    the flags of a seat, whoever sits there), `from_index` the seat a move came from."""

    kind: SeatEventKind
    index: int
    account: str | None = None
    from_index: int | None = None

    @property
    def traffic(self) -> bool:
        """True for people taking, leaving or switching seats themselves."""
        return self.kind in TRAFFIC

    @property
    def alerted(self) -> bool:
        """True for a lock or a removal: what is posted when someone else did it."""
        return self.kind in ALERTED
