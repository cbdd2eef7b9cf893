"""Carrying out a `Plan`: read before write, audit before and after, calls concurrently.

A plan is a list of calls: `update_room_info` patches, member calls (kick / ban / unban, up to
20 accounts each), `destroy_room`, or seat calls (`lock_seat` per seat, `kick_user_off_seat` per
account). Its targets are what the audit trail and the results count:
a room, or one account of a member call. For each plan the runner

1. reads the current values of the fields about to change (room patches only: requests of up to
   `READ_BEFORE_MAX_ROOMS` rooms, and every undo), so no-ops are reported honestly and Undo knows
   what to restore; an undo skips a room someone changed since (a conflict), and does not even
   read a room the plan already knows was changed outside roombot (`Plan.conflicts`). Seat
   changes read each room's seat list once, so that every `lock_seat` carries all three flags
   as read and the audit trail the previous ones (`bot.seats`; the seat hook below);
2. writes one `pending` audit row per target before any call. The audit trail is the promise:
   a write that fails is retried for `AUDIT_RETRY_S`; if it still fails nothing is called and
   every target is reported "not attempted" (unless the operator allowed unaudited changes, in
   which case each outcome is logged in one structured line instead);
3. sends the calls (at most `MAX_CONCURRENT_CALLS` in flight; the client's rate budget paces
   them) and completes each target's row with its outcome. A configuration or credentials error
   (`CONFIGURATION_CODES`) withdraws every call still waiting for its turn: they would fail the
   same way, so they are reported "not attempted" once, after the one that failed. A member call
   refused with 100005 (an account is not a member: Room Engine then changes nothing) is retried
   account by account, so each account gets its own answer.

Every run is leased (`bot.leases`): the runner holds the request's lease, with the context the
adapter passes (where to report if this replica stops), from before its first call until every
row is completed. An adapter that holds the lease longer (the Slack adapter: from before its
parent message is posted until the outcome is delivered) holds it around the run, and the last
release drops it. A lease that cannot be written is an audit failure like a row that cannot be.
A run that is cancelled (the process is stopping) keeps its lease: it expires, and a survivor
reads the rooms back and reports (`bot.takeover`).

Progress is reported through a callback; `yield_to` lets an adapter put more urgent work (Slack
acks) first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from bot import metrics
from bot.audit import AuditError, Outcome
from bot.failures import describe_failure
from bot.leases import LeaseKeeper
from bot.logs import log_context
from bot.models import (
    Call,
    DestroyCall,
    LockSeatCall,
    MemberApi,
    MemberCall,
    RoomPatch,
    SeatChange,
    SeatKickCall,
    SeatList,
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
from bot.recorder import AuditRecorder, Target, entry, targets_of
from bot.seats import previous_of, resolve_all, unread_seats
from bot.tencent.client import ApiResult, RoomEngineClient
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
#: Room Engine's "not a room member": a member call that names one changes nothing at all.
NOT_A_MEMBER: Final = 100005
#: The verb a member API carries out (the `verb` label of `roombot_member_actions_total`).
_MEMBER_VERBS: Final = {MemberApi.KICK: "kick", MemberApi.BAN: "ban", MemberApi.UNBAN: "unban"}


async def _no_pause() -> None:
    return None


class _Withdrawal:
    """Once a call proves roombot's configuration wrong, every call still queued is withdrawn."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self) -> str | None:
        return self.reason

    def note(self, failure: Failure | None) -> None:
        """Withdraw what is still queued if `failure` is a configuration or credentials error."""
        if failure is not None and failure.code in CONFIGURATION_CODES and self.reason is None:
            self.reason = (
                "Tencent refused roombot's configuration for an earlier call "
                f"(error {failure.code}, above)"
            )


class Runner:
    """Runs plans against Room Engine through `client`, recording each target in `audit` and
    holding each request's lease in `leases` (None: no audit store, so no leases).

    `allow_unaudited` (ROOMBOT_ALLOW_UNAUDITED) lets a request go ahead when its audit rows
    cannot be written; `sleep` paces the audit retries (tests pass a fake one).
    """

    def __init__(
        self,
        client: RoomEngineClient,
        audit: AuditRecorder,
        *,
        leases: LeaseKeeper | None = None,
        allow_unaudited: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._audit = audit
        self._leases = leases
        self._allow_unaudited = allow_unaudited
        self._sleep = sleep
        self._monotonic = monotonic

    async def run(
        self,
        plan: Plan,
        *,
        progress: ProgressCallback | None = None,
        yield_to: Callable[[], Awaitable[None]] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Carry out `plan` and return every target's outcome, in the order they were named.

        `progress` is called after each target (its failures are logged, never raised);
        `yield_to`, if given, is awaited before each Room Engine call. `context` is stored
        with the request's lease: what a survivor needs to report in the request's original
        place if this process stops (opaque here; JSON-ready). When the request is already
        held, None keeps the holder's context. Every line logged meanwhile carries the request
        key; the request and each member action are counted in `bot.metrics`.
        """
        with log_context(request_key=plan.request_key):
            run = await self._leased(plan, progress, yield_to, context)
        metrics.count_request(
            plan.actor.source.value,
            "undo" if plan.kind is RunKind.UNDO else plan.command.verb,
            _request_outcome(run),
        )
        return run

    async def _leased(
        self,
        plan: Plan,
        progress: ProgressCallback | None,
        yield_to: Callable[[], Awaitable[None]] | None,
        context: Mapping[str, Any] | None,
    ) -> RunResult:
        """`_run` under the request's lease (see the module docstring)."""
        started = time.monotonic()
        leases = self._leases
        if leases is None:
            return await self._run(plan, progress, yield_to, started)
        problem = await self._hold(leases, plan.request_key, context)
        if problem is not None and not self._allow_unaudited:
            targets = [t for i, call in enumerate(plan.calls) for t in targets_of(call, i)]
            return self._refused(plan, plan.request_key, targets, problem, started)
        if problem is not None:
            return await self._run(plan, progress, yield_to, started)
        try:
            run = await self._run(plan, progress, yield_to, started)
        except Exception:
            await leases.release(plan.request_key)
            raise
        # A cancelled run (the process is stopping) keeps its lease for a survivor to report.
        await leases.release(plan.request_key)
        return run

    async def _run(
        self,
        plan: Plan,
        progress: ProgressCallback | None,
        yield_to: Callable[[], Awaitable[None]] | None,
        started: float,
    ) -> RunResult:
        pause = yield_to or _no_pause
        request_key = plan.request_key
        calls = plan.calls
        targets = [t for index, call in enumerate(calls) for t in targets_of(call, index)]
        patches = [c for c in calls if isinstance(c, RoomPatch)]
        expected = plan.expected
        room_info_only = len(patches) == len(calls)
        read_before = room_info_only and (
            len(patches) <= READ_BEFORE_MAX_ROOMS or expected is not None
        )
        previous: dict[str, dict[str, Any] | None] = {}
        # Rooms an undo already knows were changed since (a callback said so) need no read.
        conflicts: dict[str, Failure] = dict(plan.conflicts or {})
        abort = _Withdrawal()
        if read_before:
            to_read = [p for p in patches if p.room_id not in conflicts]
            previous, found = await self._read_previous(to_read, expected, pause, abort)
            conflicts.update(found)
        # -- seat hook (bot.seats): each seat change resolved against its room's seat list.
        seat_failures: dict[int, Failure] = {}
        if any(isinstance(call, SeatChange) for call in calls):
            calls, seat_failures = await self._resolve_seats(calls, pause, abort)
        # -- end of the seat hook

        verb = "undo" if plan.kind is RunKind.UNDO else None
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
        row_ids, audit_error = await self._begin(rows)
        if audit_error is not None and not self._allow_unaudited:
            return self._refused(plan, request_key, targets, audit_error, started)

        total = len(targets)
        done = failed = 0
        gate = asyncio.Semaphore(MAX_CONCURRENT_CALLS)

        async def report(result: RoomResult) -> None:
            nonlocal done, failed, audit_error
            audit_error = await self._complete(result, plan, request_key) or audit_error
            done += 1
            failed += 0 if result.ok else 1
            if progress is not None:
                try:
                    await progress(Progress(done=done, failed=failed, total=total))
                except Exception:  # a progress display must never break the request itself
                    log.exception("progress callback failed")

        async def one(index: int, call: Call) -> list[RoomResult]:
            mine = [(i, t) for i, t in enumerate(targets) if t.call == index]
            if isinstance(call, RoomPatch) and call.room_id in conflicts:
                results = [
                    RoomResult(call.room_id, call.changes(), failure=conflicts[call.room_id])
                ]
            elif index in seat_failures:  # seat hook: not sent (see bot.seats)
                failure = seat_failures[index]
                results = [
                    RoomResult(t.room_id, t.changes, failure=failure, request_id=failure.request_id)
                    for _, t in mine
                ]
            else:
                async with gate:
                    await pause()
                    results = await self._send(call, abort)
                if isinstance(call, RoomPatch | LockSeatCall):
                    results = [replace(results[0], previous=_previous(call, previous))]
            for result in results:
                abort.note(result.failure)
            finished = [
                replace(result, row_id=row_ids[i])
                for (i, _), result in zip(mine, results, strict=True)
            ]
            for result in finished:
                await report(result)
                if isinstance(call, MemberCall):
                    metrics.count_member_action(
                        _MEMBER_VERBS[call.api], _target_outcome(result).value
                    )
            return finished

        per_call = await asyncio.gather(*(one(i, c) for i, c in enumerate(calls)))
        results = [r for chunk in per_call for r in chunk]
        run = RunResult(
            command=plan.command,
            actor=plan.actor,
            request_key=request_key,
            results=results,
            elapsed_s=time.monotonic() - started,
            kind=plan.kind,
            read_before=read_before or not room_info_only,
            audit_error=audit_error,
        )
        if audit_error is not None:
            _log_unaudited(run)
        else:
            _log_finished(run)
        return run

    # -- calls ------------------------------------------------------------------------------------

    async def _send(self, call: Call, abort: Callable[[], str | None]) -> list[RoomResult]:
        """Make one call; one result per target (a member call refused with 100005 is retried
        account by account, so the members among them are still acted on)."""
        started = time.monotonic()
        try:
            outcome = await self._invoke(call, abort)
        except Exception as exc:
            failure = describe_failure(exc, room_id=call.room_id)
            if (
                isinstance(call, MemberCall)
                and len(call.accounts) > 1
                and failure.code == NOT_A_MEMBER
            ):
                singles = [call.model_copy(update={"accounts": (a,)}) for a in call.accounts]
                return [r for single in singles for r in await self._send(single, abort)]
            elapsed = time.monotonic() - started
            return [
                RoomResult(
                    t.room_id,
                    t.changes,
                    failure=failure,
                    request_id=failure.request_id,
                    elapsed_s=elapsed,
                    account=t.account,
                )
                for t in targets_of(call)
            ]
        elapsed = time.monotonic() - started
        return [
            RoomResult(
                t.room_id,
                t.changes,
                request_id=outcome.request_id,
                attempts=outcome.attempts,
                elapsed_s=elapsed,
                account=t.account,
            )
            for t in targets_of(call)
        ]

    async def _invoke(self, call: Call, abort: Callable[[], str | None]) -> ApiResult:
        client = self._client
        if isinstance(call, RoomPatch):
            return await client.update_room_info(call, abort=abort)
        if isinstance(call, DestroyCall):
            return await client.destroy_room(call.room_id, abort=abort)
        if call.api is MemberApi.KICK:
            assert call.reason is not None
            return await client.kick_user_out(call.room_id, call.accounts, call.reason, abort=abort)
        if call.api is MemberApi.BAN:
            assert call.reason is not None
            assert call.duration_s is not None
            return await client.ban_room_member(
                call.room_id, call.accounts, call.reason, call.duration_s, abort=abort
            )
        if isinstance(call, MemberCall):
            return await client.unban_room_member(call.room_id, call.accounts, abort=abort)
        if isinstance(call, LockSeatCall):
            flags = call.flags
            return await client.lock_seat(
                call.room_id,
                call.index,
                forbid_taken=flags["ForbidTaken"],
                forbid_video=flags["ForbidVideo"],
                forbid_audio=flags["ForbidAudio"],
                abort=abort,
            )
        if isinstance(call, SeatKickCall):
            return await client.kick_user_off_seat(
                call.room_id, call.account, call.data, abort=abort
            )
        # A SeatChange is never sent: the seat hook resolves it into a LockSeatCall first.
        raise TypeError(f"{call.api} for seat {call.index} was not resolved before sending")

    async def _resolve_seats(
        self,
        calls: tuple[Call, ...],
        pause: Callable[[], Awaitable[None]],
        abort: _Withdrawal,
    ) -> tuple[tuple[Call, ...], dict[int, Failure]]:
        """The seat hook: read each room's seat list once (concurrently), then resolve every
        seat change against it (`bot.seats.resolve`). Returns the calls with each resolvable
        `SeatChange` replaced by its `LockSeatCall`, and the failure of each that is not (by
        index): a seat the room lacks, a ban on an empty seat, an undo's conflict, or a seat
        list that could not be read."""
        rooms = dict.fromkeys(call.room_id for call in calls if isinstance(call, SeatChange))
        lists: dict[str, SeatList | Failure] = {}

        async def read(room_id: str) -> None:
            try:
                await pause()
                lists[room_id] = await self._client.get_seat_list(room_id, abort=abort)
            except Exception as exc:
                failure = describe_failure(exc, room_id=room_id)
                abort.note(failure)
                lists[room_id] = unread_seats(failure)

        await asyncio.gather(*(read(room_id) for room_id in rooms))
        return resolve_all(calls, lists)

    async def _read_previous(
        self,
        patches: Sequence[RoomPatch],
        expected: Mapping[str, dict[str, Any]] | None,
        pause: Callable[[], Awaitable[None]],
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
                    await pause()
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

        await asyncio.gather(*(one(p) for p in patches))
        return previous, conflicts

    # -- the audit trail --------------------------------------------------------------------------

    async def _retried(self, attempt: Callable[[], Awaitable[str | None]]) -> str | None:
        """Run `attempt` (it returns the problem, or None once written) and retry it after each
        of `_AUDIT_PAUSES` while less than `AUDIT_RETRY_S` has passed since the first try: a
        store that fails fast gets its few retries, one that hangs (a pool waiting out its
        connection timeout) is not waited on again, so a refusal stays prompt."""
        started = self._monotonic()
        problem = await attempt()
        for pause in _AUDIT_PAUSES:
            if problem is None or self._monotonic() - started >= AUDIT_RETRY_S:
                break
            await self._sleep(pause)
            problem = await attempt()
        return problem

    async def _hold(
        self, leases: LeaseKeeper, request_key: str, context: Mapping[str, Any] | None
    ) -> str | None:
        """Hold the request's lease (retried, see `_retried`); the problem, if it could not
        be written."""

        async def attempt() -> str | None:
            try:
                await leases.take(request_key, context)
            except AuditError as exc:
                return self._audit.failed("lease", exc)
            return None

        return await self._retried(attempt)

    async def _begin(self, rows: Sequence[Any]) -> tuple[list[int | None], str | None]:
        """Write the pending rows (retried, see `_retried`)."""
        row_ids: list[int | None] = []

        async def attempt() -> str | None:
            nonlocal row_ids
            row_ids, problem = await self._audit.begin(rows)
            return problem

        problem = await self._retried(attempt)
        return row_ids, problem

    async def _complete(self, result: RoomResult, plan: Plan, request_key: str) -> str | None:
        failure = result.failure
        outcome = _target_outcome(result)
        fields: dict[str, Any] = {
            "outcome": outcome,
            "tencent_request_id": result.request_id,
            "error_code": failure.code if failure else None,
            "error_info": (failure.message if failure else None),
            "latency_ms": round(result.elapsed_s * 1000, 3),
            "previous": result.previous,
            "detail": failure.kind.value
            if failure and failure.kind in (FailureKind.CONFLICT, FailureKind.NOT_ATTEMPTED)
            else None,
        }
        row_id = result.row_id

        async def attempt() -> str | None:
            return await self._audit.complete(row_id, **fields)

        problem = await self._retried(attempt)
        if problem is not None:
            # The row stays pending; the truth is here instead, in one line a log search finds.
            log.error(
                "AUDIT ROW NOT COMPLETED %s",
                json.dumps(
                    {
                        "request_key": request_key,
                        "row_id": result.row_id,
                        "user": plan.actor.user_id,
                        "verb": plan.command.verb,
                        "room": result.room_id,
                        "account": result.account,
                        "outcome": outcome.value,
                        "request_id": result.request_id,
                    }
                ),
            )
        return problem

    def _refused(
        self,
        plan: Plan,
        request_key: str,
        targets: Sequence[Target],
        problem: str,
        started: float,
    ) -> RunResult:
        why = f"the audit trail could not be written ({problem}), so nothing was sent"
        failure = Failure(
            kind=FailureKind.NOT_ATTEMPTED,
            message=why,
            hint="fix the audit database (roombot check), then run the command again",
        )
        log.error(
            "request refused, the audit trail cannot be written: user=%s verb=%s targets=%d",
            plan.actor.user_id,
            plan.command.verb,
            len(targets),
        )
        return RunResult(
            command=plan.command,
            actor=plan.actor,
            request_key=request_key,
            results=[
                RoomResult(t.room_id, t.changes, failure=failure, account=t.account)
                for t in targets
            ],
            elapsed_s=time.monotonic() - started,
            kind=plan.kind,
            read_before=False,
            audit_error=problem,
            refused="the audit trail could not be written, so nothing was changed",
        )


def _target_outcome(result: RoomResult) -> Outcome:
    """How one target ended, as its audit row records it."""
    failure = result.failure
    if failure is None:
        return Outcome.NOOP if result.noop else Outcome.OK
    if failure.kind is FailureKind.NOT_ATTEMPTED:
        return Outcome.NOT_ATTEMPTED
    return Outcome.FAILED


def _request_outcome(run: RunResult) -> str:
    """The `outcome` label of a run: ok, partial, failed, or refused (nothing sent)."""
    if run.refused:
        return "refused"
    succeeded = sum(1 for result in run.results if result.ok)
    if succeeded == len(run.results):
        return "ok"
    return "partial" if succeeded else "failed"


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


def _log_unaudited(run: RunResult) -> None:
    """With the audit trail down (and unaudited changes allowed), the outcome of every target in
    one structured line: the only record there will be."""
    log.error(
        "UNAUDITED REQUEST %s",
        json.dumps(
            {
                "request_key": run.request_key,
                "user": run.actor.user_id,
                "channel": run.actor.channel_id,
                "verb": run.command.verb,
                "targets": [
                    {
                        "room": r.room_id,
                        "account": r.account,
                        "ok": r.ok,
                        "error_code": r.failure.code if r.failure else None,
                        "request_id": r.request_id,
                    }
                    for r in run.results
                ],
            },
            ensure_ascii=False,
        ),
    )


def _log_finished(run: RunResult) -> None:
    """Every request's outcome in one structured line, whatever later happens to its Slack
    messages: the RequestIds are never only in Slack and the audit trail."""
    log.info(
        "request finished %s",
        json.dumps(
            {
                "request_key": run.request_key,
                "user": run.actor.user_id,
                "verb": run.command.verb,
                "kind": run.kind.value,
                "ok": len(run.succeeded),
                "failed": len(run.failed),
                "targets": [
                    [r.room_id, r.account, "ok" if r.ok else "failed", r.request_id]
                    for r in run.results
                ],
            },
            ensure_ascii=False,
        ),
    )


def _differences(want: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{name} is now {current.get(name)!r} (roombot set {value!r})"
        for name, value in want.items()
        if current.get(name) != value
    )
