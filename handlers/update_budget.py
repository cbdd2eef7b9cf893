"""A process-wide allowance for progress edits of parent messages (`chat.update` is Tier 3)."""

from __future__ import annotations

import time
from typing import Any


class UpdateBudget:
    """A process-wide allowance for progress edits, below chat.update's ~50/minute (Tier 3).

    Progress edits are optional: when the budget is spent they are skipped, never queued.
    Final status edits always go through (Slack's retry handler absorbs a rare 429).
    """

    def __init__(self, per_minute: int = 40, clock: Any = time.monotonic) -> None:
        self._capacity = float(per_minute)
        self._tokens = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._last = clock()

    def try_take(self) -> bool:
        """Take one edit from the budget if there is one."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
