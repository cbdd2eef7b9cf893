"""Time-boxed changes (`--for DURATION`, DESIGN §2.11): their reverts, and what people do with
the timers.

A change run with `--for` records its revert in the transaction that writes its rows
(`bot.requests.runner`): a `revert` request, scheduled at the end of the time box, reported in
the change's own thread, carrying the change as asked. When it falls due a replica's loop takes
it (once, whichever replica: `bot.requests.loop`) and `Timers.build_revert` makes its plan, an
undo with Undo's conflict check, field by field, from the change's audit rows (the values it
set and the values read before it):

* a field someone set again through roombot since (a later mute, even to the same value) is
  left alone: the later change supersedes the timer for that field, so an expiring mute never
  lifts a permanent mute made after it;
* a field that no longer holds the value roombot set (changed in the console, by the app's
  backend: a Room Engine callback or the read now says so) is left alone too;
* every other field goes back to the value read before the change; the runner reads the room
  once more before the write and leaves it alone if it moved meanwhile.

The report says which fields were left alone and why (by whom, where known), with
RequestIds, and that the revert ran late when no replica was running at its time.

Revert now, Extend and Keep act on the timer only while it is still scheduled
(`AuditStore.take_waiting` / `settle_waiting`): of a click and the loop, or two clicks on two
replicas, exactly one acts.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from bot import metrics
from bot.audit import (
    AuditEntry,
    AuditError,
    AuditStore,
    NewEntry,
    Outcome,
    RequestRecord,
    RequestState,
    TakenRequest,
)
from bot.callbacks import outside_conflicts
from bot.commands import Command, format_duration
from bot.failures import describe_failure
from bot.followups import Authorize
from bot.models import (
    SEAT_FLAGS,
    SEAT_INDEX,
    Call,
    RoomPatch,
    SeatChange,
    is_seat_target,
    restorable,
)
from bot.outcomes import (
    Actor,
    Failure,
    FailureKind,
    PendingTimer,
    Plan,
    Rejected,
    RunKind,
    RunResult,
    TimersView,
)
from bot.requests.due import NothingToRun
from bot.requests.plans import (
    PlanUnreadable,
    plan_from_json,
    revert_dedupe_key,
    reverted_key,
)
from bot.tencent.client import RoomEngineClient
from bot.wording import CORE, describe_setting
from bot.wording.timers import (
    changed_since_why,
    late_note,
    left_alone_note,
    superseded_why,
    utc_time,
)

log = logging.getLogger(__name__)

#: A revert that runs this long after its time says it is late (the loop looks every 2 s).
LATE_AFTER_S: Final = 60.0
#: How far Extend pushes a timer back.
EXTEND_S: Final = 1800
#: The outcomes of a change's row that put its values in place (what a revert sets back).
_IN_PLACE: Final = frozenset({Outcome.OK, Outcome.IN_PLACE})
#: The outcomes of a later row that set a field through roombot (a no-op too: it was meant).
_SET_AGAIN: Final = frozenset({Outcome.OK, Outcome.NOOP, Outcome.IN_PLACE})
#: Rows read per room when a revert is due (those since the change).
_TRAIL_LIMIT: Final = 1000
_SCHEDULED: Final = (RequestState.SCHEDULED,)
#: How many time-boxed changes back a revert looks for the value to go back to.
_CHAIN_LIMIT: Final = 5
#: ... and how far back in time (the longest time box allowed).
_CHAIN_LOOKBACK_S: Final = 365 * 86_400


#: A pending revert, as `timers` lists it.
Timer = PendingTimer
#: Rooms a revert reads at once when it is due (the client's rate budget paces the calls).
_ROOMS_AT_ONCE: Final = 16


@dataclass(frozen=True)
class _RoomRevert:
    """One room of a revert: its call, the change's row, and what must still hold, what is
    left alone (the whole room: `conflict`; some fields: `notes`)."""

    call: RoomPatch
    row_id: int
    expected: dict[str, Any] = field(default_factory=dict)
    conflict: Failure | None = None
    notes: list[str] = field(default_factory=list)


class Timers:
    """Builds due reverts and lists, extends, keeps or runs pending ones (see the module
    docstring). `wall` is Unix time (tests pass a fake clock)."""

    def __init__(
        self,
        store: AuditStore,
        client: RoomEngineClient,
        authorize: Authorize,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._client = client
        self._authorize = authorize
        self._wall = wall

    # -- the revert, when it is due ---------------------------------------------------------------

    async def build_revert(self, record: RequestRecord) -> Plan:
        """The plan of the revert `record` (due now): see the module docstring. Raises
        `NothingToRun` when the change set nothing that could be set back."""
        original = reverted_key(record.dedupe_key)
        if original is None:
            raise NothingToRun("not the revert of a time-boxed change")
        scheduled = plan_from_json(record.plan, record.request_key)
        rows = await self._store.rows_for_request(original)
        seat_rows = [r for r in rows if _in_place(r) and is_seat_target(r.patch or {})]
        # A no-op too: a change made while an earlier time-boxed one was on may take over its
        # end (`_inherited`).
        room_rows = [
            r
            for r in rows
            if (
                _in_place(r) or (r.outcome is Outcome.NOOP and r.room_id and r.patch and r.previous)
            )
            and not is_seat_target(r.patch or {})
        ]
        keys = {original, record.request_key}
        gate = asyncio.Semaphore(_ROOMS_AT_ONCE)

        async def room(row: AuditEntry) -> _RoomRevert | None:
            async with gate:
                return await self._room_revert(row, keys)

        async def seat(row: AuditEntry) -> tuple[SeatChange | None, list[str]]:
            async with gate:
                notes: list[str] = []
                return await self._seat_revert(row, keys, notes), notes

        rooms_done = await asyncio.gather(*(room(r) for r in room_rows))
        seats_done = await asyncio.gather(*(seat(r) for r in seat_rows))
        notes: list[str] = []
        calls: list[Call] = []
        expected: dict[str, dict[str, Any]] = {}
        conflicts: dict[str, Failure] = {}
        undo_of: dict[tuple[str, str | None], int] = {}
        for done in rooms_done:
            if done is None:
                continue
            calls.append(done.call)
            undo_of[(done.call.room_id, None)] = done.row_id
            if done.conflict is not None:
                conflicts[done.call.room_id] = done.conflict
            if done.expected:
                expected[done.call.room_id] = done.expected
            notes += done.notes
        for change, seat_notes in seats_done:
            notes += seat_notes
            if change is not None:
                calls.append(change)
        if not calls:
            raise NothingToRun("the time-boxed change set nothing that can be set back")
        late = self._late(record)
        if late is not None:
            notes.insert(0, late)
        command = scheduled.command
        span = format_duration(command.duration_s) if command.duration_s else "a time"
        return Plan(
            command=Command(
                verb=command.verb,
                rooms=tuple(dict.fromkeys(c.room_id for c in calls)),
                changes=dict(command.changes),
                seats=command.seats,
                reason=f"end of --for {span} set by {scheduled.actor.user_id}",
            ),
            actor=scheduled.actor,
            calls=tuple(calls),
            raw_text=record.raw_text,
            kind=RunKind.REVERT,
            undo_of=undo_of or None,
            expected=expected or None,
            conflicts=conflicts or None,
            request_key=record.request_key,
            notes=tuple(notes),
        )

    async def _room_revert(self, row: AuditEntry, keys: set[str]) -> _RoomRevert | None:
        """One room of a revert: the fields to set back, those left alone and why (a later
        change through roombot, a callback, the read now), from one read of the room's trail
        and one read of the room."""
        room = row.room_id or ""
        trail = await self._trail(row)
        fields = await self._changed_fields(row, trail, keys)
        if not fields:
            return None
        later = [r for r in trail if r.id > row.id]
        kept: dict[str, str] = {}  # field -> why it is left alone
        for name, (user, verb, key) in _set_again(later, row, fields, keys).items():
            kept[name] = superseded_why(user, verb, key)
        outside = outside_conflicts(later, after_row=row.id, fields=fields)
        current, failure = await self._read(room, list(fields))
        every = RoomPatch.of(room, {k: v[1] for k, v in fields.items()})
        if failure is not None:
            return _RoomRevert(every, row.id, conflict=failure)
        for name, (set_value, _) in fields.items():
            if name not in kept and current.get(name) != set_value:
                who = next((f"by `{o.user_id}` outside roombot" for o in reversed(outside)), None)
                kept[name] = changed_since_why(who)
        back = {k: v[1] for k, v in fields.items() if k not in kept}
        if not back:
            conflict = Failure(
                kind=FailureKind.CONFLICT,
                message="left alone: "
                + "; ".join(
                    f"{describe_setting(CORE, k, current.get(k))}, {why}" for k, why in kept.items()
                ),
                hint="not reverted, so the later change stays",
            )
            return _RoomRevert(every, row.id, conflict=conflict)
        return _RoomRevert(
            RoomPatch.of(room, back),
            row.id,
            expected={k: fields[k][0] for k in back},
            notes=[left_alone_note(room, k, current.get(k), why) for k, why in kept.items()],
        )

    async def _changed_fields(
        self, row: AuditEntry, trail: list[AuditEntry], keys: set[str]
    ) -> dict[str, tuple[Any, Any]]:
        """Field -> (the value roombot set, the value to go back to) for the fields `row`'s
        change can set back: those it changed, and those it set while an earlier time-boxed
        change of the same field was on (then the revert goes back to what that one found)."""
        patch, previous = row.patch or {}, restorable(row.previous or {})
        fields: dict[str, tuple[Any, Any]] = {}
        for name in patch:
            if name not in previous:
                continue
            before = await self._inherited(row, name, previous[name], trail, keys)
            if before != patch[name]:
                fields[name] = (patch[name], before)
        return fields

    async def _inherited(
        self, row: AuditEntry, name: str, before: Any, trail: list[AuditEntry], keys: set[str]
    ) -> Any:
        """The value field `name` goes back to when `row`'s time box ends. Normally the value
        read before `row`'s change; but when that value was set by an earlier time-boxed change
        whose timer was still on (`row`'s change superseded it: it will not revert that
        field), the value that change found, and so on back. A time box made longer by running
        the change again with a longer `--for` ends as the first one would have."""
        seen = set(keys)
        for _ in range(_CHAIN_LIMIT):
            candidates = [
                r
                for r in trail
                if r.id < row.id
                and r.request_key not in seen
                and r.source != "tencent"
                and r.outcome in _SET_AGAIN
                and name in (r.patch or {})
            ]
            if not candidates:
                return before
            last = max(candidates, key=lambda r: r.id)
            if (last.patch or {}).get(name) != before or name not in (last.previous or {}):
                return before
            try:
                timer = await self._store.request_by_dedupe_key(revert_dedupe_key(last.request_key))
            except AuditError:
                return before
            if timer is None or timer.run_after is None or timer.run_after <= row.created_at:
                return before  # not time-boxed, or its time was up before `row`'s change
            if timer.state is RequestState.CANCELLED and timer.updated_at <= row.created_at:
                return before  # kept before `row`'s change: that value was meant to stay
            seen.add(last.request_key)
            before, row = (last.previous or {})[name], last
        return before

    async def _trail(self, row: AuditEntry) -> list[AuditEntry]:
        """The room's rows around `row`'s change: up to a time box back (for `_inherited`)
        and everything since (who set the fields again)."""
        try:
            return await self._store.query(
                room=row.room_id, since=row.created_at - _CHAIN_LOOKBACK_S, limit=_TRAIL_LIMIT
            )
        except AuditError as exc:
            # The read before the write still catches a changed value; a same-value change
            # through roombot cannot be told from the trail now: refuse rather than guess.
            raise NothingToRun(f"the audit trail could not be read ({exc})") from exc

    async def _read(self, room: str, fields: list[str]) -> tuple[dict[str, Any], Failure | None]:
        try:
            snapshot = await self._client.get_room_info(room)
        except Exception as exc:
            return {}, describe_failure(exc, room_id=room)
        return snapshot.room.api_values(fields), None

    async def _seat_revert(
        self, row: AuditEntry, keys: set[str], notes: list[str]
    ) -> SeatChange | None:
        """A seat's flags set back (those not set again since); the runner's read of the seat
        list checks they still hold what roombot set, as Undo's does."""
        patch, previous = row.patch or {}, row.previous or {}
        flags = {
            name: (bool(patch[name]), bool(previous[name]))
            for name in patch
            if name in SEAT_FLAGS and name in previous and previous[name] != patch[name]
        }
        if not flags:
            return None
        later = [
            r
            for r in await self._trail(row)
            if r.id > row.id and (r.patch or {}).get(SEAT_INDEX) == patch[SEAT_INDEX]
        ]
        room = row.room_id or ""
        for name, (user, verb, key) in _set_again(later, row, flags, keys).items():
            flags.pop(name)
            notes.append(
                f"`{room}` seat {patch[SEAT_INDEX]}: {name} left alone — "
                + superseded_why(user, verb, key)
            )
        if not flags:
            return None
        return SeatChange(
            room_id=room,
            index=int(patch[SEAT_INDEX]),
            changes={name: before for name, (_, before) in flags.items()},
            expected={name: set_value for name, (set_value, _) in flags.items()},
            undo_of=row.id,
        )

    def _late(self, record: RequestRecord) -> str | None:
        due = record.run_after
        now = self._wall()
        if due is not None:
            metrics.observe_revert_lateness(now - due)
        if due is None or now - due < LATE_AFTER_S:
            return None
        return late_note(due, now)

    # -- what people see and do ----------------------------------------------------------------

    async def view(self, rooms: tuple[str, ...] = ()) -> TimersView:
        """`timers [ROOM...]`: `pending`, each saying when a later change through roombot set
        every field again (its revert will set nothing back), or why the store could not say."""
        try:
            timers = [
                replace(timer, superseded_by=await self._superseded_by(timer))
                for timer in await self.pending(rooms)
            ]
        except AuditError as exc:
            return TimersView(rooms=rooms, problem=f"the audit store could not be read ({exc})")
        return TimersView(rooms=rooms, timers=tuple(timers))

    async def _superseded_by(self, timer: Timer) -> tuple[str, str] | None:
        """Who set every field of `timer`'s change again through roombot since (the newest), or
        None while any field is still to go back. Reads the change's rows and each room's
        trail, no Room Engine call: what the revert will read of the rooms may leave more alone."""
        keys = {timer.reverts, timer.request_key}
        rows = [r for r in await self._store.rows_for_request(timer.reverts) if _in_place(r)]
        if not rows:
            return None
        who: list[tuple[str, str]] = []
        for row in rows:
            fields = {name: None for name in row.patch or {} if name in (row.previous or {})}
            if not fields:
                continue
            later = await self._store.query(
                room=row.room_id, since=row.created_at, limit=_TRAIL_LIMIT
            )
            again = _set_again(later, row, fields, keys)
            if set(again) != set(fields):
                return None
            who += [(user, verb or "") for user, verb, _ in again.values()]
        return who[-1] if who else None

    async def pending(self, rooms: tuple[str, ...] = ()) -> list[Timer]:
        """The timers still to run, soonest first (those touching `rooms`, when given)."""
        found: list[Timer] = []
        for record in await self._store.pending_timers():
            timer = _timer_of(record)
            if timer is None:
                continue
            if rooms and not set(rooms) & set(timer.command.rooms):
                continue
            found.append(timer)
        return found

    async def keep(self, revert_key: str, actor: Actor) -> Timer | Rejected:
        """Keep the change: the timer is dropped (cancelled) while it is still pending."""
        return await self._settle(revert_key, actor, state=RequestState.CANCELLED, extend=False)

    async def extend(self, revert_key: str, actor: Actor, by_s: int = EXTEND_S) -> Timer | Rejected:
        """Push the timer back by `by_s` (from its due time, or from now if that is later)."""
        return await self._settle(revert_key, actor, state=None, extend=True, by_s=by_s)

    async def take_now(self, revert_key: str, actor: Actor) -> TakenRequest | Rejected:
        """Revert now: take the timer (exactly one of the clicks and the loop gets it), to be
        carried out at once (`DueRequests.carry_out_due`)."""
        checked = await self._check(revert_key, actor)
        if isinstance(checked, Rejected):
            return checked
        try:
            taken = await self._store.take_waiting(revert_key, from_states=_SCHEDULED)
        except AuditError as exc:
            return Rejected(message=f"could not take the timer: {exc}")
        if taken is None:
            return Rejected(message="this timer has already run, or was kept or taken by someone")
        metrics.count_timer_action("revert_now")
        await self._audit(checked, actor, "revert-now")
        return taken

    async def _settle(
        self,
        revert_key: str,
        actor: Actor,
        *,
        state: RequestState | None,
        extend: bool,
        by_s: int = EXTEND_S,
    ) -> Timer | Rejected:
        checked = await self._check(revert_key, actor)
        if isinstance(checked, Rejected):
            return checked
        run_after = None
        if extend:
            run_after = max(checked.due, self._wall()) + by_s
        try:
            settled = await self._store.settle_waiting(
                revert_key, from_states=_SCHEDULED, state=state, run_after=run_after
            )
        except AuditError as exc:
            return Rejected(message=f"could not change the timer: {exc}")
        timer = None if settled is None else _timer_of(settled)
        if timer is None:
            return Rejected(message="this timer has already run, or was kept or taken by someone")
        action = "extend" if extend else "keep"
        metrics.count_timer_action(action)
        await self._audit(timer, actor, action)
        return timer

    async def _audit(self, timer: Timer, actor: Actor, action: str) -> None:
        """One audit row per room for a Keep, an Extend or a Revert now: who clicked, when, and
        what became of the timer (the revert itself is audited as its own request)."""
        detail = {
            "keep": f"kept: {timer.reverts} will not be reverted",
            "extend": f"extended: {timer.reverts} now reverts at {utc_time(timer.due)}",
        }.get(action, f"reverted now: {timer.reverts} (its revert is request {timer.request_key})")
        key = uuid.uuid4().hex
        rows = [
            NewEntry(
                request_key=key,
                source=actor.source.value,
                user_id=actor.user_id,
                verb=f"{action}-timer",
                raw_text=f"{action} timer {timer.request_key}",
                room_id=room,
                team_id=actor.team_id,
                channel_id=actor.channel_id,
                outcome=Outcome.OK,
                detail=detail,
            )
            for room in timer.command.rooms
        ]
        try:
            await self._store.record(rows)
        except AuditError as exc:
            log.warning("could not audit the %s of timer %s: %s", action, timer.request_key, exc)

    async def _check(self, revert_key: str, actor: Actor) -> Timer | Rejected:
        """The timer, when `actor` may run its change's verb (the same permission as the
        change itself) and it is still pending; else why not."""
        try:
            record = await self._store.get_request(revert_key)
        except AuditError as exc:
            return Rejected(message=f"could not read the timer: {exc}")
        timer = None if record is None else _timer_of(record)
        if timer is None or record is None:
            return Rejected(message="that timer is unknown")
        decision = await self._authorize(timer.command.verb, actor)
        if not decision.allowed:
            return Rejected.by_policy(decision)
        if record.state is not RequestState.SCHEDULED or record.owner is not None:
            return Rejected(message="this timer has already run, or was kept or taken by someone")
        return timer


def count_revert(run: RunResult) -> None:
    """Count a finished revert by outcome: every field set back, some left alone, none."""
    if run.kind is not RunKind.REVERT:
        return
    if run.lost is not None:
        return
    if not run.succeeded:
        outcome = "left_alone" if all(_conflict(r.failure) for r in run.results) else "failed"
    elif run.failed or (run.notes and any("left alone" in n for n in run.notes)):
        outcome = "partial"
    else:
        outcome = "reverted"
    metrics.count_revert(outcome)


def _conflict(failure: Failure | None) -> bool:
    return failure is not None and failure.kind is FailureKind.CONFLICT


def _timer_of(record: RequestRecord) -> Timer | None:
    original = reverted_key(record.dedupe_key)
    if original is None or record.run_after is None:
        return None
    try:
        plan = plan_from_json(record.plan, record.request_key)
    except PlanUnreadable:
        return None
    return Timer(
        request_key=record.request_key,
        reverts=original,
        command=plan.command,
        user_id=record.user_id,
        due=record.run_after,
        channel_id=record.channel_id,
    )


def _in_place(row: AuditEntry) -> bool:
    return bool(row.outcome in _IN_PLACE and row.room_id and row.patch and row.previous)


def _set_again(
    later: list[AuditEntry], row: AuditEntry, fields: dict[str, Any], keys: set[str]
) -> dict[str, tuple[str, str | None, str]]:
    """The fields of `fields` that a later request through roombot set again (whatever the
    value) after `row`: field -> (who, verb, request key) of the newest such request."""
    found: dict[str, tuple[str, str | None, str]] = {}
    for later_row in sorted(later, key=lambda r: r.id):
        if later_row.id <= row.id or later_row.request_key in keys:
            continue
        if later_row.source == "tencent" or later_row.outcome not in _SET_AGAIN:
            continue
        for name in fields:
            if name in (later_row.patch or {}):
                found[name] = (later_row.user_id, later_row.verb, later_row.request_key)
    return found
