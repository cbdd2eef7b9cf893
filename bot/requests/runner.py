"""Carrying out a `Plan`'s calls: read before write, audit before and after, calls concurrently,
fenced by the request's lease.

A plan is a list of calls: `update_room_info` patches, member calls (kick / ban / unban, up to
20 accounts each), `destroy_room`, or seat calls (`lock_seat` per seat, `kick_user_off_seat` per
account). Its targets are what the audit trail and the results count: a room, or one account of
a member call. For each plan the runner

1. reads the current values of the fields about to change (room patches only: requests of up to
   `READ_BEFORE_MAX_ROOMS` rooms, and every undo), so no-ops are reported honestly and Undo knows
   what to restore; an undo skips a room someone changed since (a conflict), and does not even
   read a room the plan already knows was changed outside roombot (`Plan.conflicts`). Seat
   changes read each room's seat list once, so that every `lock_seat` carries all three flags
   as read and the audit trail the previous ones (`bot.seats`; the seat hook below);
2. writes one `pending` audit row per target before any change, with the values read before,
   in the request's `begin` transaction (once the adapter's parent message is posted, so the
   record knows its thread). The audit trail is the promise: a write that fails is retried
   for `AUDIT_RETRY_S`; if it still fails nothing is called and every target is reported
   "not attempted" (unless the operator allowed unaudited changes, in which case each outcome
   is logged in one structured line instead);
3. sends the calls (at most `MAX_CONCURRENT_CALLS` in flight; the client's rate budget paces
   them), then completes every row in the request's `complete` transaction. A configuration or
   credentials error (`CONFIGURATION_CODES`) withdraws every call still waiting for its turn:
   they would fail the same way, so they are reported "not attempted" once, after the one that
   failed. A member call refused with 100005 (an account is not a member: Room Engine then
   changes nothing) is retried account by account, so each account gets its own answer.

Fencing: before each Room Engine call and each progress report the request's lease is checked
(`HeldLease.check`), and both audit writes are fenced by the store. Once another replica has
taken the request over, nothing more is sent, shown or written: the calls still waiting are
withdrawn and the run comes back `lost`, to be reported by no one here (the replica that took
it over reports it).

Progress is reported through a callback, at most every `progress_interval` seconds; `pause`
lets an adapter put more urgent work (Slack acks) before each call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from bot import metrics
from bot.aio import gather_all
from bot.audit import AuditError, LeaseLost, NewEntry, NewRequest
from bot.failures import describe_failure
from bot.logs import log_context
from bot.models import (
    Call,
    LockSeatCall,
    MemberApi,
    MemberCall,
    RoomPatch,
    SeatChange,
    SeatKickCall,
)
from bot.outcomes import (
    Failure,
    FailureKind,
    Plan,
    Progress,
    ProgressCallback,
    RoomResult,
    RunKind,
    RunResult,
)
from bot.requests import results as runs
from bot.requests.calls import CallSender, withdrawn
from bot.requests.leases import HeldLease
from bot.requests.plans import revert_request
from bot.requests.recorder import AuditRecorder, entry, targets_of
from bot.seats import previous_of
from bot.tencent.client import RoomEngineClient
from bot.tencent.errors import CONFIGURATION_CODES

log = logging.getLogger(__name__)

#: Calls of one request in flight at once; the client's rate budget paces the actual calls.
MAX_CONCURRENT_CALLS: Final = 64
#: Requests for more rooms than this skip read-before-write (it doubles the API calls), so they
#: get no Undo; the result says so.
READ_BEFORE_MAX_ROOMS: Final = 20
#: How long a failing audit write is retried before the request is refused (seconds, spread
#: over a few attempts).
AUDIT_RETRY_S: Final = 1.5
_AUDIT_PAUSES: Final = (0.1, 0.4, 1.0)
#: The verb a member API carries out (the `verb` label of `roombot_member_actions_total`).
_MEMBER_VERBS: Final = {MemberApi.KICK: "kick", MemberApi.BAN: "ban", MemberApi.UNBAN: "unban"}


def reads_before(plan: Plan) -> bool:
    """True when a run of `plan` reads its rooms before changing them (step 1 above)."""
    patches = sum(1 for c in plan.calls if isinstance(c, RoomPatch))
    return patches == len(plan.calls) and (
        patches <= READ_BEFORE_MAX_ROOMS or plan.expected is not None
    )


def calls_first(plan: Plan) -> dict[str, int]:
    """How many Room Engine calls of each API (by command) a run of `plan` makes, reads before
    included (a seat change reads its room's seat list once): what its claim reserves budget
    slots for (the budget is per API)."""
    wanted: Counter[str] = Counter(str(call.api) for call in plan.calls)
    if reads_before(plan):
        wanted["get_room_info"] += len(plan.calls)
    seat_rooms = {c.room_id for c in plan.calls if isinstance(c, SeatChange)}
    if seat_rooms:
        wanted["get_seat_list"] += len(seat_rooms)
    return dict(wanted)


class _Withdrawal:
    """Once a call proves roombot's configuration wrong, or the request is lost to another
    replica, every call still queued is withdrawn.

    The client asks it after a call's turn has come (its rate-budget slot) and right before
    sending: that is where the lease is checked one last time (`HeldLease.guard`), so a replica
    paused while it waited for the budget sends nothing once it wakes past its lease."""

    def __init__(self, held: HeldLease | None = None) -> None:
        self.reason: str | None = None
        #: Set when the request was taken over by another replica: nothing more is written.
        self.lost: str | None = None
        self._held = held

    def __call__(self) -> str | None:
        if self._held is not None and self.lost is None:
            try:
                self._held.guard()
            except LeaseLost as exc:
                self.lose(exc)
        return self.reason

    def note(self, failure: Failure | None) -> None:
        """Withdraw what is still queued if `failure` is a configuration or credentials error."""
        if failure is not None and failure.code in CONFIGURATION_CODES and self.reason is None:
            self.reason = (
                "Tencent refused roombot's configuration for an earlier call "
                f"(error {failure.code}, above)"
            )

    def lose(self, exc: LeaseLost) -> None:
        """The request is another replica's now: withdraw everything still queued."""
        self.lost = str(exc)
        self.reason = self.reason or "this replica lost the request to another one"


class Runner:
    """Runs plans against Room Engine through `client`, recording each target in `audit`.

    `allow_unaudited` (ROOMBOT_ALLOW_UNAUDITED) lets a request go ahead when its audit rows
    cannot be written; `sleep` paces the audit retries and `monotonic` measures them and the
    progress interval (tests pass fakes); `wall` (Unix seconds) dates a time-boxed change's
    revert.
    """

    def __init__(
        self,
        client: RoomEngineClient,
        audit: AuditRecorder,
        *,
        allow_unaudited: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._wall = wall
        self._calls = CallSender(client)
        self._audit = audit
        self._allow_unaudited = allow_unaudited
        self._sleep = sleep
        self._monotonic = monotonic

    async def run(
        self,
        plan: Plan,
        *,
        held: HeldLease | None = None,
        address: Callable[[], Mapping[str, Any]] | None = None,
        progress: ProgressCallback | None = None,
        progress_interval: float = 0.0,
        pause: Callable[[], Awaitable[None]] | None = None,
        unaudited: str | None = None,
        ready: asyncio.Future[Any] | None = None,
    ) -> RunResult:
        """Carry out `plan` and return every target's outcome, in the order they were named.

        `held` is the request's lease (None: the request has no record, so no audit rows: no
        audit store, or unaudited changes allowed while it is down, `unaudited` then saying
        why the record could not be written). `address`, when given, is the adapter's latest
        reply address, recorded with the rows; `ready`, when given, is awaited before the rows
        are written (the adapter's first message is out, so the address recorded with them
        says where it is: a survivor then reports in its thread). `progress` is called at
        most every `progress_interval` seconds (its failures are logged, never raised);
        `pause`, if given, is awaited before each Room Engine call. Every line logged meanwhile
        carries the request key; the request and each member action are counted in
        `bot.metrics`.
        """
        with log_context(request_key=plan.request_key):
            run = await self._run(
                plan, held, address, progress, progress_interval, pause, unaudited, ready
            )
        if not run.lost:
            metrics.count_request(
                plan.actor.source.value,
                plan.kind.value
                if plan.kind in (RunKind.UNDO, RunKind.REVERT)
                else plan.command.verb,
                runs.request_outcome(run),
            )
        return run

    async def _run(
        self,
        plan: Plan,
        held: HeldLease | None,
        address: Callable[[], Mapping[str, Any]] | None,
        progress: ProgressCallback | None,
        progress_interval: float,
        pause: Callable[[], Awaitable[None]] | None,
        unaudited: str | None,
        ready: asyncio.Future[Any] | None,
    ) -> RunResult:
        started = time.monotonic()
        request_key = plan.request_key
        calls = plan.calls
        targets = [t for index, call in enumerate(calls) for t in targets_of(call, index)]
        patches = [c for c in calls if isinstance(c, RoomPatch)]
        expected = plan.expected
        room_info_only = len(patches) == len(calls)
        read_before = reads_before(plan)
        abort = _Withdrawal(held)

        async def turn() -> None:
            """Before each Room Engine call: let urgent work go first, and make sure the
            request is still this replica's (else withdraw it)."""
            if pause is not None:
                await pause()
            if held is not None and abort.lost is None:
                try:
                    await held.check()
                except LeaseLost as exc:
                    abort.lose(exc)

        previous: dict[str, dict[str, Any] | None] = {}
        # Rooms an undo already knows were changed since (a callback said so) need no read.
        conflicts: dict[str, Failure] = dict(plan.conflicts or {})
        if read_before:
            to_read = [p for p in patches if p.room_id not in conflicts]
            previous, found = await self._read_previous(to_read, expected, turn, abort)
            conflicts.update(found)
        # -- seat hook (bot.seats): each seat change resolved against its room's seat list.
        seat_failures: dict[int, Failure] = {}
        if any(isinstance(call, SeatChange) for call in calls):
            calls, seat_failures = await self._calls.resolve_seats(calls, turn, abort)
        # -- end of the seat hook
        if abort.lost is not None:
            return runs.lost(plan, abort.lost, targets=targets, started=started)

        verb = plan.kind.value if plan.kind in (RunKind.UNDO, RunKind.REVERT) else None
        rows = [
            entry(
                plan.actor,
                plan.command,
                plan.raw_text,
                room_id=t.room_id,
                patch=t.changes,
                previous=_previous(calls[t.call], previous),
                undo_of=_undo_of(calls[t.call]) or (plan.undo_of or {}).get((t.room_id, t.account)),
                request_key=request_key,
                verb=verb,
                reason=_reason_sent(calls[t.call]),
            )
            for t in targets
        ]
        if ready is not None:
            # The begin records where the request is reported: with the parent's thread, so a
            # replica that stops mid-way is reported there (a failed start does not stop this).
            await asyncio.wait({ready})
        try:
            row_ids, audit_error, timer = await self._begin(held, rows, address, plan)
        except LeaseLost as exc:
            return runs.lost(plan, str(exc), targets=targets, started=started)
        if audit_error is not None and not self._allow_unaudited:
            return runs.refused(plan, audit_error, targets=targets, started=started)
        audit_error = audit_error or unaudited

        total = len(targets)
        done = failed = 0
        last_progress = self._monotonic()
        gate = asyncio.Semaphore(MAX_CONCURRENT_CALLS)
        # Each call's targets, by position in `targets` (their rows are in the same order).
        by_call: dict[int, list[int]] = {}
        for position, target in enumerate(targets):
            by_call.setdefault(target.call, []).append(position)

        async def report(finished: list[RoomResult]) -> None:
            nonlocal done, failed, last_progress
            done += len(finished)
            failed += sum(1 for result in finished if not result.ok)
            if progress is None or done == total or abort.lost is not None:
                return
            now = self._monotonic()
            if now - last_progress < progress_interval:
                return
            last_progress = now
            if held is not None:
                # Progress is shown outside too: never for a request another replica has.
                try:
                    await held.check()
                except LeaseLost as exc:
                    abort.lose(exc)
                    return
            try:
                await progress(Progress(done=done, failed=failed, total=total))
            except LeaseLost as exc:  # the display is fenced too: nothing more goes out
                abort.lose(exc)
            except Exception:  # a progress display must never break the request itself
                log.exception("progress callback failed")

        async def one(index: int, call: Call) -> list[RoomResult]:
            positions = by_call.get(index, [])
            if isinstance(call, RoomPatch) and call.room_id in conflicts:
                results = [
                    RoomResult(call.room_id, call.changes(), failure=conflicts[call.room_id])
                ]
            elif index in seat_failures:  # seat hook: not sent (see bot.seats)
                failure = seat_failures[index]
                results = [
                    RoomResult(
                        targets[p].room_id,
                        targets[p].changes,
                        failure=failure,
                        request_id=failure.request_id,
                    )
                    for p in positions
                ]
            else:
                async with gate:
                    await turn()
                    # Withdrawn already: not even queued for the rate budget.
                    results = (
                        withdrawn(call, abort.reason)
                        if abort.reason is not None
                        else await self._calls.send(call, abort)
                    )
                if isinstance(call, RoomPatch | LockSeatCall):
                    results = [replace(results[0], previous=_previous(call, previous))]
            for result in results:
                abort.note(result.failure)
            finished = [
                replace(result, row_id=row_ids[position])
                for position, result in zip(positions, results, strict=True)
            ]
            await report(finished)
            if isinstance(call, MemberCall):
                for result in finished:
                    metrics.count_member_action(
                        _MEMBER_VERBS[call.api], runs.target_outcome(result).value
                    )
            return finished

        per_call = await gather_all(*(one(i, c) for i, c in enumerate(calls)))
        results = [r for chunk in per_call for r in chunk]
        if abort.lost is not None:
            return runs.lost(plan, abort.lost, targets=targets, started=started, results=results)
        try:
            audit_error = await self._complete(held, results, plan, address) or audit_error
        except LeaseLost as exc:
            return runs.lost(plan, str(exc), targets=targets, started=started, results=results)
        run = RunResult(
            command=plan.command,
            actor=plan.actor,
            request_key=request_key,
            results=results,
            elapsed_s=time.monotonic() - started,
            kind=plan.kind,
            read_before=read_before or not room_info_only,
            audit_error=audit_error,
            notes=plan.notes,
            reverts_at=None if timer is None else timer.run_after,
            revert_key=None if timer is None else timer.request_key,
        )
        if audit_error is not None:
            runs.log_unaudited(run)
        else:
            runs.log_finished(run)
        return run

    # -- calls ------------------------------------------------------------------------------------

    async def _read_previous(
        self,
        patches: Sequence[RoomPatch],
        expected: Mapping[str, dict[str, Any]] | None,
        turn: Callable[[], Awaitable[None]],
        abort: _Withdrawal,
    ) -> tuple[dict[str, dict[str, Any] | None], dict[str, Failure]]:
        """Read each room's current values of the fields about to change.

        With `expected` (undo), a room whose current values differ from what we set is a conflict:
        someone changed it since, and undo must not clobber that. A read refused for roombot's
        configuration fails its room (the write would fail the same way) and withdraws the rest.
        """
        previous: dict[str, dict[str, Any] | None] = {}
        conflicts: dict[str, Failure] = {}
        gate = asyncio.Semaphore(MAX_CONCURRENT_CALLS)

        async def one(patch: RoomPatch) -> None:
            fields = list(patch.changes())
            try:
                async with gate:
                    await turn()
                    snapshot = await self._client.get_room_info(patch.room_id, abort=abort)
            except Exception as exc:
                previous[patch.room_id] = None
                failure = describe_failure(exc, room_id=patch.room_id)
                if failure.code in CONFIGURATION_CODES:
                    abort.note(failure)
                    conflicts[patch.room_id] = failure
                elif expected is not None:
                    conflicts[patch.room_id] = failure
                return
            current = snapshot.room.api_values(fields)
            previous[patch.room_id] = current
            want = (expected or {}).get(patch.room_id)
            if want is not None and current != want:
                conflicts[patch.room_id] = Failure(
                    kind=FailureKind.CONFLICT,
                    message="changed since: " + _differences(want, current),
                    hint="not undone, so someone else's change is not overwritten",
                    request_id=snapshot.request_id,
                )

        await gather_all(*(one(p) for p in patches))
        return previous, conflicts

    # -- the audit trail --------------------------------------------------------------------------

    async def _retried(self, attempt: Callable[[], Awaitable[str | None]]) -> str | None:
        """Run `attempt` (it returns the problem, or None once written) and retry it after each
        of `_AUDIT_PAUSES` while less than `AUDIT_RETRY_S` has passed since the first try: a
        store that fails fast gets its few retries, one that hangs (a pool waiting out its
        connection timeout) is not waited on again, so a refusal stays prompt. `LeaseLost` is
        never retried: it propagates."""
        started = self._monotonic()
        problem = await attempt()
        for pause in _AUDIT_PAUSES:
            if problem is None or self._monotonic() - started >= AUDIT_RETRY_S:
                break
            await self._sleep(pause)
            problem = await attempt()
        return problem

    async def _begin(
        self,
        held: HeldLease | None,
        rows: Sequence[NewEntry],
        address: Callable[[], Mapping[str, Any]] | None,
        plan: Plan,
    ) -> tuple[list[int | None], str | None, NewRequest | None]:
        """Write the pending rows (retried, see `_retried`): the request's `begin` transaction
        when it is on record, else plain rows (or none, without a store). A time-boxed change
        (`--for`) records its revert in the same transaction, due `timebox_s` from now and
        reported where the change is: returned (None when there is none)."""
        row_ids: list[int | None] = [None] * len(rows)
        store = self._audit.store
        if store is None or held is None:
            return row_ids, None, None
        timebox = plan.command.timebox_s if plan.kind is RunKind.REQUEST else None
        timer: NewRequest | None = None

        async def attempt() -> str | None:
            nonlocal row_ids, timer
            reply = None if address is None else dict(address())
            if timebox is not None:
                due = self._wall() + timebox
                timer = revert_request(plan, dict(reply or {}), due)
            try:
                ids = await store.begin_request(held.lease, rows, reply, timer=timer)
            except AuditError as exc:
                timer = None
                return self._audit.failed("begin", exc)
            row_ids = list(ids)
            return None

        problem = await self._retried(attempt)
        return row_ids, problem, timer

    async def _complete(
        self,
        held: HeldLease | None,
        results: Sequence[RoomResult],
        plan: Plan,
        address: Callable[[], Mapping[str, Any]] | None,
    ) -> str | None:
        """Record every target's outcome and mark the request done, in one transaction
        (retried); the problem, if any."""
        store = self._audit.store
        completions = [
            (result.row_id, runs.completion(result))
            for result in results
            if result.row_id is not None
        ]
        if store is None or held is None or not completions:
            return None

        async def attempt() -> str | None:
            try:
                await store.complete_request(
                    held.lease, completions, None if address is None else address()
                )
            except AuditError as exc:
                return self._audit.failed("complete", exc)
            return None

        problem = await self._retried(attempt)
        if problem is not None:
            # The rows stay pending; the truth is here instead, one line per row a log search
            # finds.
            for result in results:
                log.error(
                    "AUDIT ROW NOT COMPLETED %s",
                    json.dumps(
                        {
                            "request_key": plan.request_key,
                            "row_id": result.row_id,
                            "user": plan.actor.user_id,
                            "verb": plan.command.verb,
                            "room": result.room_id,
                            "account": result.account,
                            "outcome": runs.target_outcome(result).value,
                            "request_id": result.request_id,
                        }
                    ),
                )
        return problem

    @staticmethod
    def lost(plan: Plan, why: str) -> RunResult:
        """The run of a request this replica lost to another before it could report it."""
        return runs.lost(plan, why)

    @staticmethod
    def not_run(plan: Plan, why: str) -> RunResult:
        """The run of a request that calls nothing, for `why` (a plain sentence)."""
        return runs.not_run(plan, why)

    @staticmethod
    def refused(plan: Plan, problem: str) -> RunResult:
        """The run of a request refused because its audit record could not be written."""
        return runs.refused(plan, problem)


def _reason_sent(call: Call) -> str | None:
    # A member call carries the Reason Room Engine records (the default names the requester);
    # kick-seat its Data.
    if isinstance(call, SeatKickCall):
        return call.data
    return call.reason if isinstance(call, MemberCall) else None


def _previous(call: Call, rooms: Mapping[str, dict[str, Any] | None]) -> dict[str, Any] | None:
    """What a target's audit row records as its values before the call: a room's fields read
    first, or a seat's index and three flags (as read by the seat hook)."""
    if isinstance(call, LockSeatCall):
        return previous_of(call)
    if isinstance(call, RoomPatch):
        return rooms.get(call.room_id)
    return None


def _undo_of(call: Call) -> int | None:
    """The audit row a seat undo reverts (it travels with the seat, as a room may have several)."""
    change = call.change if isinstance(call, LockSeatCall) else call
    return change.undo_of if isinstance(change, SeatChange) else None


def _differences(want: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{name} is now {current.get(name)!r} (roombot set {value!r})"
        for name, value in want.items()
        if current.get(name) != value
    )
