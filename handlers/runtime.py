"""Slack-side state shared by the handlers of one process."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from handlers.delivery import BackgroundTasks, UpdateBudget


class RecentIds:
    """Ids seen in the last `ttl_s` seconds (bounded), for de-duplicating Slack's event retries."""

    def __init__(
        self,
        ttl_s: float = 600.0,
        max_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._ttl = ttl_s
        self._max = max_size
        self._clock = clock

    def first_time(self, key: str) -> bool:
        """Record `key`; True the first time it is seen within the TTL, False for a repeat."""
        now = self._clock()
        while self._seen:
            _oldest, at = next(iter(self._seen.items()))
            if now - at <= self._ttl and len(self._seen) < self._max:
                break
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


@dataclass
class SlackRuntime:
    """Per-process helpers for the Slack handlers."""

    tasks: BackgroundTasks = field(default_factory=BackgroundTasks)
    update_budget: UpdateBudget = field(default_factory=UpdateBudget)
    events: RecentIds = field(default_factory=RecentIds)
