"""Member traffic for the timeline (DESIGN §2.14): members entering and leaving rooms, summed.

Member callbacks come by the hundred a second on a busy app, so one audit row each would swamp
the trail; the timeline wants them "summed per room and hour, never listed". `TrafficTally`
counts them in memory per room, hour and kind (`member-enter`, `member-leave`) and `flush`
writes one row per room, hour and kind with its count (`patch`: `{"count": n, "hour": start}`)
in one store write. The adapter flushes a while after the first count it has not written
(`FLUSH_S`) and when it stops, so a row holds at most a minute or so of one room's traffic.
Several rows of one room and hour (flushes, replicas) add up in the timeline.

Counts wait in memory until written: a replica that dies loses its last minute of traffic
counts, never a change (those are recorded one by one). A flush the store refuses is kept and
tried again with the next one, up to `MAX_KEYS` room-hours (beyond that the oldest are dropped
and the loss logged).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from typing import Final

from bot.audit import AuditError, AuditStore, NewEntry, Outcome, Source
from bot.models import CallbackCommand

log = logging.getLogger(__name__)

#: How long a count waits before it is written.
FLUSH_S: Final = 60.0
#: The most room-hour-kinds kept unwritten (what a long store outage may hold in memory).
MAX_KEYS: Final = 50_000
#: The rows' verbs, by callback (the timeline's `TRAFFIC_VERBS` include them).
TRAFFIC_VERB: Final = {
    CallbackCommand.MEMBER_ENTER: "member-enter",
    CallbackCommand.MEMBER_LEAVE: "member-leave",
}
#: Who the rows name: the members are many, and callbacks name them, not who let them in.
TRAFFIC_USER: Final = "(members)"


class TrafficTally:
    """Member enter/leave callbacks counted per room, hour and kind until `flush` writes them."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._counts: Counter[tuple[str, float, str]] = Counter()
        self._max = max_keys

    def add(self, command: CallbackCommand, room_id: str, at: float) -> bool:
        """Count one callback of `command` in `room_id` at `at` (Unix seconds); False when it is
        no member traffic (nothing counted)."""
        verb = TRAFFIC_VERB.get(command)
        if verb is None or not room_id:
            return False
        key = (room_id, at - at % 3600, verb)
        if key not in self._counts and len(self._counts) >= self._max:
            dropped = min(self._counts, key=lambda k: k[1])
            log.warning(
                "member traffic of %s at %s dropped unwritten (%d room-hours waiting)",
                dropped[0],
                dropped[1],
                len(self._counts),
            )
            del self._counts[dropped]
        self._counts[key] += 1
        return True

    @property
    def waiting(self) -> int:
        """How many room-hour-kinds are counted and not yet written."""
        return len(self._counts)

    async def flush(self, store: AuditStore) -> int:
        """Write what was counted, one row per room, hour and kind, in one store write; return
        how many rows. When the store refuses, the counts are kept for the next flush."""
        if not self._counts:
            return 0
        counts, self._counts = self._counts, Counter()
        rows = [
            NewEntry(
                request_key=f"traffic-{uuid.uuid4().hex}",
                source=Source.TENCENT.value,
                user_id=TRAFFIC_USER,
                verb=verb,
                raw_text=f"{count} {verb} callback(s)",
                room_id=room_id,
                patch={"count": count, "hour": hour},
                outcome=Outcome.OK,
            )
            for (room_id, hour, verb), count in sorted(counts.items())
        ]
        try:
            await store.record(rows)
        except AuditError as exc:
            log.warning("member traffic not written yet (%d rows): %s", len(rows), exc)
            counts.update(self._counts)
            self._counts = counts
            return 0
        return len(rows)
