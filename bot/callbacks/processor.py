"""`CallbackProcessor`: deliveries → de-duplication, the echo rule, audit rows and the
`OutsideChange`s to alert; `MemberCounts` for member callbacks; seat callbacks against the seats
last seen (`SeatNews`); `Alert.RequestOverLimit` → the budget halved and a `RateWarning`. See
`bot.callbacks`."""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from bot import metrics
from bot.audit import AuditEntry, AuditError, AuditStore, NewEntry, Outcome, Source
from bot.budget import RateBudgetUnavailable, RateLimits
from bot.callbacks.knowledge import (
    OUTSIDE_CREATE,
    OUTSIDE_DESTROY,
    OUTSIDE_SEATS,
    OUTSIDE_UPDATE,
    REST_PLATFORM,
    Knowledge,
    difference,
    echo_candidates,
    fold_trail,
    may_have_applied,
)
from bot.callbacks.requests import UNKNOWN_OPERATOR, CallbackEvent, Delivery
from bot.callbacks.seat_changes import (
    SEATS_KEY,
    SeatMemory,
    explained,
    involved,
    seat_events,
    seats_value,
)
from bot.callbacks.traffic import TrafficTally
from bot.models import CallbackCommand, Seat, SeatEvent
from bot.models.apis import COMMANDS
from bot.outcomes import ChangeKind, OutsideChange, RateWarning

log = logging.getLogger(__name__)

#: How long after roombot writes a request's row a callback may still be that request's echo.
ECHO_WINDOW_S: Final = 30.0
#: How many of a room's newest rows `fold_trail` reads to learn what roombot knew of it.
TRAIL_ROWS: Final = 100
#: Rooms whose last echoed state one process keeps (see `CallbackProcessor`).
ECHOES_KEPT: Final = 10_000


class Handling(StrEnum):
    """What became of one delivery (also the `outcome` label of the callbacks metric)."""

    COUNTED = "counted"  # a member callback, or seats' sit/leave traffic: counted, never posted
    DUPLICATE = "duplicate"  # a repeated delivery of an event already handled
    ECHO = "echo"  # roombot's own change, echoed back
    UNCHANGED = "unchanged"  # recorded; nothing roombot knew changed, so no alert
    RECORDED = "recorded"  # a creation: recorded, no alert
    OUTSIDE = "outside"  # recorded, and to be alerted
    UNRECORDED = "unrecorded"  # the audit store failed: alerted unchecked, not recorded
    OVER_LIMIT = "over_limit"  # Alert.RequestOverLimit: the API's budget halved


@dataclass(frozen=True)
class Handled:
    """The result of one delivery: what became of it, the change to alert (if any), its audit
    row, the row of roombot's request it echoed, and the rate warning to alert (if any)."""

    handling: Handling
    change: OutsideChange | None = None
    row_id: int | None = None
    echo_of: int | None = None
    warning: RateWarning | None = None


@dataclass(frozen=True)
class SeatNews:
    """A seat callback that reported more than sit/leave traffic: the seat changes (`events`,
    traffic left out) between the seats last seen (`before`) and now (`after`). What remains
    to do needs the audit trail (`CallbackProcessor.handle_seats`)."""

    delivery: Delivery
    events: tuple[SeatEvent, ...]
    before: Mapping[int, Seat]
    after: Mapping[int, Seat]


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
    clock, so windows compare like with like); `limits` is the rate budget that
    `Alert.RequestOverLimit` halves (None: it is only counted and logged). Room-level deliveries
    are meant to be handled one at a time, in arrival order (the adapter's queue does that), and
    seat callbacks noted (`note_seats`) in arrival order.
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        admin_id: str,
        clock: Callable[[], float] = time.time,
        echo_window_s: float = ECHO_WINDOW_S,
        members: MemberCounts | None = None,
        seats: SeatMemory | None = None,
        limits: RateLimits | None = None,
    ) -> None:
        self._store = store
        self._admin_id = admin_id
        self._clock = clock
        self._window_s = echo_window_s
        self._limits = limits
        self.members = members if members is not None else MemberCounts()
        #: Member enter/leave callbacks counted for the timeline until `flush_traffic`.
        self.traffic = TrafficTally()
        #: The seats each room's last seat callback reported (see `bot.callbacks.seat_changes`).
        self.seats = seats if seats is not None else SeatMemory()
        # room → (row id, state): what the newest echo this process saw reported of the room.
        # Echoes are not recorded, yet they report every field; this keeps alerts about the
        # next change precise (a replica that did not see the echo just knows less).
        self._echoed: OrderedDict[str, tuple[int, Mapping[str, Any]]] = OrderedDict()

    def count(self, delivery: Delivery) -> Handled:
        """A member callback: note the member count; nothing is stored or posted."""
        event = delivery.event
        if event.room_level or event.command in _NOT_COUNTED:
            raise ValueError("count() takes member callbacks; use handle()")
        at = event.event_ms / 1000 if event.event_ms is not None else self._clock()
        if event.member_count is not None:
            self.members.note(event.room_id, event.member_count, at)
        self.traffic.add(event.command, event.room_id, at)
        metrics.count_callback(event.command.value, Handling.COUNTED.value)
        return Handled(Handling.COUNTED)

    async def flush_traffic(self) -> int:
        """Write the member traffic counted so far (one row per room, hour and kind)."""
        return await self.traffic.flush(self._store)

    async def handle(self, delivery: Delivery) -> Handled:
        """Any callback. Room-level ones are de-duplicated, matched against roombot's own
        requests, recorded and returned as an `OutsideChange` to alert when they are one.

        A failing audit store is logged and reported as `UNRECORDED`, with the change to alert
        marked as unchecked; it never raises `AuditError`.
        """
        event = delivery.event
        if event.command is CallbackCommand.SEAT_INFO_CHANGED:
            news = self.note_seats(delivery)
            return Handled(Handling.COUNTED) if news is None else await self.handle_seats(news)
        if event.command is CallbackCommand.REQUEST_OVER_LIMIT:
            return await self.over_limit(delivery)
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

    # -- seats ----------------------------------------------------------------------------------

    def note_seats(self, delivery: Delivery) -> SeatNews | None:
        """A seat callback, against the seats last seen of its room (no I/O): None when it
        reported only sit/leave traffic, or when the room's seats were not known before (it is
        then the baseline); both are only counted. Otherwise the news for `handle_seats`."""
        event = delivery.event
        if event.command is not CallbackCommand.SEAT_INFO_CHANGED:
            raise ValueError("note_seats() takes seat callbacks")
        before, after = self.seats.update(event.room_id, event.seat_list)
        operator = None if event.operator == UNKNOWN_OPERATOR else event.operator
        events = (
            [e for e in seat_events(before, after, operator) if not e.traffic]
            if before is not None
            else []
        )
        if not events:
            metrics.count_callback(event.command.value, Handling.COUNTED.value)
            return None
        return SeatNews(delivery, tuple(events), before or {}, after)

    async def handle_seats(self, news: SeatNews) -> Handled:
        """Seat changes: those roombot's own recent requests made are its echo; the others are
        recorded in the room's history (source `tencent`, verb `outside-seats`) and, when a
        seat was locked or a speaker removed, returned as an `OutsideChange` to alert.

        A failing audit store is logged and reported as `UNRECORDED`, with a lock or removal
        to alert marked as unchecked; it never raises `AuditError`."""
        event = news.delivery.event
        try:
            handled = await self._handle_seats(news)
        except AuditError as exc:
            log.error(
                "seat callback for room %s not recorded, the audit store failed: %s",
                event.room_id,
                exc,
            )
            change = None
            if any(e.alerted for e in news.events):
                note = (
                    "the audit trail could not be read or written, so this was neither "
                    "recorded nor checked against roombot's own requests"
                )
                change = self._change(news.delivery, ChangeKind.SEATS, seats=news.events, note=note)
            handled = Handled(Handling.UNRECORDED, change=change)
        metrics.count_callback(event.command.value, handled.handling.value)
        return handled

    async def _handle_seats(self, news: SeatNews) -> Handled:
        delivery = news.delivery
        own = await self._own_seat_requests(delivery)
        left = tuple(e for e in news.events if not any(explained(e, row) for row in own))
        if not left:
            by = next(row.id for row in own if any(explained(e, row) for e in news.events))
            return Handled(Handling.ECHO, echo_of=by)
        indexes = involved(left)
        row_id = await self._record(
            delivery,
            OUTSIDE_SEATS,
            {SEATS_KEY: seats_value(news.after, indexes)},
            {SEATS_KEY: seats_value(news.before, indexes)},
            True,
            request_key="tencent-" + uuid.uuid4().hex,
        )
        if not any(e.alerted for e in left):
            return Handled(Handling.RECORDED, row_id=row_id)
        change = self._change(delivery, ChangeKind.SEATS, seats=left, row_id=row_id)
        return Handled(Handling.OUTSIDE, change=change, row_id=row_id)

    async def _own_seat_requests(self, delivery: Delivery) -> list[AuditEntry]:
        """roombot's own rows for the callback's room that may have made its seat changes:
        written within the echo window, their call possibly in effect; none unless the
        callback's operator is roombot's administrator (or not given: Tencent's newer seat
        callbacks drop it) and its platform the REST API (or not given)."""
        event = delivery.event
        if event.operator not in (self._admin_id, UNKNOWN_OPERATOR):
            return []
        if delivery.platform and delivery.platform != REST_PLATFORM:
            return []
        rows = await self._store.room_trail(event.room_id, limit=TRAIL_ROWS)
        now = self._clock()
        return [
            row
            for row in rows
            if row.source != Source.TENCENT
            and now - row.created_at <= self._window_s
            and may_have_applied(row)
        ]

    # -- Alert.RequestOverLimit -------------------------------------------------------------------

    async def over_limit(self, delivery: Delivery) -> Handled:
        """Tencent warned that an API passed 80% of its limit: halve roombot's own budget for
        it (every replica, for a minute from now) and return a `RateWarning` to alert the first
        time (not while it is already halved). An API roombot does not call is only counted
        and logged. Never raises: a budget that cannot be halved is logged and alerted."""
        event = delivery.event
        alarm = event.over_limit
        if alarm is None:
            raise ValueError("over_limit() takes Alert.RequestOverLimit")
        metrics.count_over_limit(alarm.api)
        metrics.count_callback(event.command.value, Handling.OVER_LIMIT.value)
        at = self._clock()
        if alarm.api not in COMMANDS or self._limits is None:
            log.warning(
                "Tencent warns that %s/%s ran at %s calls/s (limit %s); roombot %s",
                alarm.service or "?",
                alarm.api,
                alarm.observed,
                alarm.limit,
                "does not call it" if alarm.api not in COMMANDS else "has no budget to slow",
            )
            return Handled(Handling.OVER_LIMIT)
        fields: dict[str, Any] = {
            "api": alarm.api,
            "at": at,
            "service": alarm.service,
            "observed": alarm.observed,
            "limit": alarm.limit,
        }
        try:
            halving = await self._limits.halve(alarm.api)
        except RateBudgetUnavailable as exc:
            log.error("could not halve the rate budget of %s: %s", alarm.api, exc)
            note = f"roombot could not slow down: {exc}"
            return Handled(Handling.OVER_LIMIT, warning=RateWarning(**fields, note=note))
        log.warning(
            "Tencent warns that %s ran at %s calls/s (limit %s): roombot's budget for it is %g "
            "calls/s for %.0f s%s",
            alarm.api,
            alarm.observed,
            alarm.limit,
            halving.limit,
            halving.until_s,
            "" if halving.started else " (already halved: extended)",
        )
        if not halving.started:
            return Handled(Handling.OVER_LIMIT)
        warning = RateWarning(**fields, budget=halving.limit, until_s=halving.until_s)
        return Handled(Handling.OVER_LIMIT, warning=warning)

    # -- rooms ------------------------------------------------------------------------------------

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
        *,
        request_key: str | None = None,
    ) -> int:
        event = delivery.event
        row = NewEntry(
            request_key=request_key or delivery.key.replace("callback:", "tencent-", 1),
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


# Callbacks `count()` does not take: seats (`note_seats`) and rate warnings (`over_limit`).
_NOT_COUNTED: Final = frozenset(
    {CallbackCommand.SEAT_INFO_CHANGED, CallbackCommand.REQUEST_OVER_LIMIT}
)


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
