"""`CallbackProcessor`: deliveries → de-duplication, the echo rule, audit rows and the
`OutsideChange`s to alert; `MemberCounts` for member callbacks. See `bot.callbacks`."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from bot import metrics
from bot.audit import AuditError, AuditStore, NewEntry, Outcome, Source
from bot.callbacks.knowledge import (
    OUTSIDE_CREATE,
    OUTSIDE_DESTROY,
    OUTSIDE_UPDATE,
    Knowledge,
    difference,
    echo_candidates,
    fold_trail,
)
from bot.callbacks.requests import CallbackEvent, Delivery
from bot.models import CallbackCommand
from bot.outcomes import ChangeKind, OutsideChange

log = logging.getLogger(__name__)

#: How long after roombot writes a request's row a callback may still be that request's echo.
ECHO_WINDOW_S: Final = 30.0
#: How many of a room's newest rows `fold_trail` reads to learn what roombot knew of it.
TRAIL_ROWS: Final = 100
#: Rooms whose last echoed state one process keeps (see `CallbackProcessor`).
ECHOES_KEPT: Final = 10_000


class Handling(StrEnum):
    """What became of one delivery (also the `outcome` label of the callbacks metric)."""

    COUNTED = "counted"  # a member or seat callback: counted, never posted
    DUPLICATE = "duplicate"  # a repeated delivery of an event already handled
    ECHO = "echo"  # roombot's own change, echoed back
    UNCHANGED = "unchanged"  # recorded; nothing roombot knew changed, so no alert
    RECORDED = "recorded"  # a creation: recorded, no alert
    OUTSIDE = "outside"  # recorded, and to be alerted
    UNRECORDED = "unrecorded"  # the audit store failed: alerted unchecked, not recorded


@dataclass(frozen=True)
class Handled:
    """The result of one delivery: what became of it, the change to alert (if any), its audit
    row, and the row of roombot's request it echoed."""

    handling: Handling
    change: OutsideChange | None = None
    row_id: int | None = None
    echo_of: int | None = None


class MemberCounts:
    """The newest member count member callbacks reported per room (the newest `max_rooms`
    rooms), for `show` to display; reads never block."""

    def __init__(self, max_rooms: int = 10_000) -> None:
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._max = max_rooms

    def note(self, room_id: str, count: int, at: float) -> None:
        """Record `count` members in `room_id` at `at` (an older report never wins)."""
        known = self._counts.get(room_id)
        if known is not None and known[1] > at:
            return
        self._counts[room_id] = (count, at)
        self._counts.move_to_end(room_id)
        while len(self._counts) > self._max:
            self._counts.popitem(last=False)

    def get(self, room_id: str) -> tuple[int, float] | None:
        """The newest count and when it was reported (Unix seconds), or None."""
        return self._counts.get(room_id)

    def __len__(self) -> int:
        return len(self._counts)


class CallbackProcessor:
    """Turns deliveries into audit rows and `OutsideChange`s; see the module docstring.

    `admin_id` is roombot's administrator account; `clock` gives Unix seconds (the store's
    clock, so windows compare like with like). Room-level deliveries are meant to be handled
    one at a time, in arrival order (the adapter's queue does that).
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        admin_id: str,
        clock: Callable[[], float] = time.time,
        echo_window_s: float = ECHO_WINDOW_S,
        members: MemberCounts | None = None,
    ) -> None:
        self._store = store
        self._admin_id = admin_id
        self._clock = clock
        self._window_s = echo_window_s
        self.members = members if members is not None else MemberCounts()
        # room → (row id, state): what the newest echo this process saw reported of the room.
        # Echoes are not recorded, yet they report every field; this keeps alerts about the
        # next change precise (a replica that did not see the echo just knows less).
        self._echoed: OrderedDict[str, tuple[int, Mapping[str, Any]]] = OrderedDict()

    def count(self, delivery: Delivery) -> Handled:
        """A member or seat callback: note the member count; nothing is stored or posted."""
        event = delivery.event
        if event.room_level:
            raise ValueError("count() takes member and seat callbacks; use handle()")
        if event.member_count is not None:
            at = event.event_ms / 1000 if event.event_ms is not None else self._clock()
            self.members.note(event.room_id, event.member_count, at)
        metrics.count_callback(event.command.value, Handling.COUNTED.value)
        return Handled(Handling.COUNTED)

    async def handle(self, delivery: Delivery) -> Handled:
        """Any callback. Room-level ones are de-duplicated, matched against roombot's own
        requests, recorded and returned as an `OutsideChange` to alert when they are one.

        A failing audit store is logged and reported as `UNRECORDED`, with the change to alert
        marked as unchecked; it never raises `AuditError`.
        """
        event = delivery.event
        if not event.room_level:
            return self.count(delivery)
        try:
            handled = await self._handle_room(delivery)
        except AuditError as exc:
            log.error(
                "callback %s for room %s not recorded, the audit store failed: %s",
                event.command.value,
                event.room_id,
                exc,
            )
            handled = self._unrecorded(delivery)
        metrics.count_callback(event.command.value, handled.handling.value)
        return handled

    async def _handle_room(self, delivery: Delivery) -> Handled:
        event = delivery.event
        if not await self._store.claim(delivery.key):
            return Handled(Handling.DUPLICATE)
        knowledge = await self.knowledge(event.room_id)
        for request in echo_candidates(
            event, delivery.platform, knowledge, admin_id=self._admin_id
        ):
            if await self._store.claim(_echo_key(request.row_id)):
                self._remember_echo(event, request.row_id)
                return Handled(Handling.ECHO, echo_of=request.row_id)
        if event.command is CallbackCommand.CREATE_ROOM:
            row_id = await self._record(delivery, OUTSIDE_CREATE, dict(event.state), None, True)
            return Handled(Handling.RECORDED, row_id=row_id)
        if event.command is CallbackCommand.DESTROY_ROOM:
            row_id = await self._record(delivery, OUTSIDE_DESTROY, {}, dict(knowledge.state), True)
            change = self._change(delivery, ChangeKind.DESTROYED, row_id=row_id)
            return Handled(Handling.OUTSIDE, change=change, row_id=row_id)
        diff = difference(event.state, knowledge)
        patch = {**diff.changed, **diff.reported}
        row_id = await self._record(
            delivery, OUTSIDE_UPDATE, patch, diff.before or None, not diff.empty
        )
        if diff.empty:
            return Handled(Handling.UNCHANGED, row_id=row_id)
        change = self._change(
            delivery,
            ChangeKind.UPDATED,
            changed=diff.changed,
            before=diff.before,
            reported=diff.reported,
            row_id=row_id,
        )
        return Handled(Handling.OUTSIDE, change=change, row_id=row_id)

    async def knowledge(self, room_id: str) -> Knowledge:
        """What roombot knows of `room_id` now (its trail folded; see `fold_trail`)."""
        rows = list(reversed(await self._store.room_trail(room_id, limit=TRAIL_ROWS)))
        now = self._clock()
        window = self._window_s
        recent = [r.id for r in rows if r.source != Source.TENCENT and now - r.created_at <= window]
        claimed = await self._store.claimed([_echo_key(i) for i in recent])
        matched = [i for i in recent if _echo_key(i) in claimed]
        seen = self._echoed.get(room_id)
        return fold_trail(
            rows,
            matched=matched,
            now=now,
            window_s=self._window_s,
            echoed={seen[0]: seen[1]} if seen is not None else None,
        )

    def _remember_echo(self, event: CallbackEvent, row_id: int) -> None:
        if event.command is not CallbackCommand.UPDATE_ROOM_INFO:
            self._echoed.pop(event.room_id, None)
            return
        self._echoed[event.room_id] = (row_id, dict(event.state))
        self._echoed.move_to_end(event.room_id)
        while len(self._echoed) > ECHOES_KEPT:
            self._echoed.popitem(last=False)

    async def _record(
        self,
        delivery: Delivery,
        verb: str,
        patch: dict[str, Any],
        previous: dict[str, Any] | None,
        changed: bool,
    ) -> int:
        event = delivery.event
        row = NewEntry(
            request_key=delivery.key.replace("callback:", "tencent-", 1),
            source=Source.TENCENT.value,
            user_id=event.operator,
            verb=verb,
            raw_text=f"{event.command.value} (OptPlatform {delivery.platform or 'not given'})",
            room_id=event.room_id,
            patch=patch,
            previous=previous,
            outcome=Outcome.OK if changed else Outcome.NOOP,
            detail=_detail(delivery, patch, previous),
        )
        (row_id,) = await self._store.record([row])
        return row_id

    def _change(self, delivery: Delivery, kind: ChangeKind, **fields: Any) -> OutsideChange:
        event = delivery.event
        at = event.event_ms / 1000 if event.event_ms is not None else self._clock()
        return OutsideChange(
            kind=kind,
            room_id=event.room_id,
            operator=event.operator,
            platform=delivery.platform,
            at=at,
            **fields,
        )

    def _unrecorded(self, delivery: Delivery) -> Handled:
        event = delivery.event
        if event.command is CallbackCommand.CREATE_ROOM:
            return Handled(Handling.UNRECORDED)
        kind = (
            ChangeKind.DESTROYED
            if event.command is CallbackCommand.DESTROY_ROOM
            else ChangeKind.UPDATED
        )
        note = (
            "the audit trail could not be read or written, so this was neither recorded nor "
            "checked against roombot's own requests"
        )
        change = self._change(delivery, kind, reported=dict(event.state), note=note)
        return Handled(Handling.UNRECORDED, change=change)


def _echo_key(row_id: int) -> str:
    return f"echo:{row_id}"


def _detail(
    delivery: Delivery, patch: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> str:
    event = delivery.event
    parts = ["reported by a Room Engine callback"]
    if event.event_ms is not None:
        moment = datetime.fromtimestamp(event.event_ms / 1000, UTC)
        parts.append(f"EventTime {moment.isoformat(timespec='milliseconds')}")
    if delivery.client_ip:
        parts.append(f"ClientIP {delivery.client_ip}")
    if event.command is CallbackCommand.UPDATE_ROOM_INFO:
        unknown = [name for name in patch if previous is None or name not in previous]
        if not patch:
            parts.append("nothing roombot knew of changed")
        elif unknown:
            parts.append("roombot did not know before: " + ", ".join(unknown))
    return "; ".join(parts)
