"""Carrying out a `Plan`: read before write, audit before and after, rooms concurrently.

For each plan the runner

1. reads the current values of the fields about to change (requests of up to
   `READ_BEFORE_MAX_ROOMS` rooms, and every undo), so no-ops are reported honestly and Undo knows
   what to restore; an undo skips a room someone changed since (a conflict);
2. writes one `pending` audit row per room before any call;
3. sends each room's patch (at most `MAX_CONCURRENT_ROOMS` in flight; the client's rate budget
   paces the actual calls) and completes its audit row with the outcome.

The Room Engine client and the audit store are its only collaborators; progress is reported
through a callback, and `yield_to` lets an adapter put more urgent work (Slack acks) first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from bot.audit import Outcome
from bot.failures import describe_failure
from bot.models import RoomPatch
from bot.outcomes import (
    Failure,
    FailureKind,
    Plan,
    Progress,
    ProgressCallback,
    RoomResult,
    RunResult,
)
from bot.recorder import AuditRecorder, entry, new_request_key
from bot.tencent.client import RoomEngineClient

log = logging.getLogger(__name__)

#: Rooms of one request in flight at once; the client's rate budget paces the actual calls.
MAX_CONCURRENT_ROOMS: Final = 64
#: Requests for more rooms than this skip read-before-write (it doubles the API calls), so they
#: get no Undo; the result says so.
READ_BEFORE_MAX_ROOMS: Final = 20


async def _no_pause() -> None:
    return None


class Runner:
    """Runs plans against Room Engine through `client`, recording each room in `audit`."""

    def __init__(self, client: RoomEngineClient, audit: AuditRecorder) -> None:
        self._client = client
        self._audit = audit

    async def run(
        self,
        plan: Plan,
        *,
        progress: ProgressCallback | None = None,
        yield_to: Callable[[], Awaitable[None]] | None = None,
    ) -> RunResult:
        """Carry out `plan` and return every room's outcome, in the order the rooms were named.

        `progress` is called after each room (its failures are logged, never raised); `yield_to`,
        if given, is awaited before each Room Engine call.
        """
        started = time.monotonic()
        pause = yield_to or _no_pause
        request_key = new_request_key()
        patches = plan.patches
        expected = plan.expected
        read_before = len(patches) <= READ_BEFORE_MAX_ROOMS or expected is not None
        previous: dict[str, dict[str, Any] | None] = {}
        conflicts: dict[str, Failure] = {}
        if read_before:
            previous, conflicts = await self._read_previous(patches, expected, pause)

        rows = [
            entry(
                plan.actor,
                plan.command,
                plan.raw_text,
                room_id=p.room_id,
                patch=p.changes(),
                previous=previous.get(p.room_id),
                undo_of=(plan.undo_of or {}).get(p.room_id),
                request_key=request_key,
            )
            for p in patches
        ]
        row_ids, audit_error = await self._audit.begin(rows)

        total = len(patches)
        done = failed = 0
        gate = asyncio.Semaphore(MAX_CONCURRENT_ROOMS)

        async def one(index: int) -> RoomResult:
            nonlocal done, failed, audit_error
            patch = patches[index]
            if patch.room_id in conflicts:
                result = RoomResult(
                    room_id=patch.room_id, changes=patch.changes(), failure=conflicts[patch.room_id]
                )
            else:
                async with gate:
                    await pause()
                    result = await self._update(patch)
                result = replace(result, previous=previous.get(patch.room_id))
            result = replace(result, row_id=row_ids[index])
            audit_error = await self._complete(result) or audit_error
            done += 1
            failed += 0 if result.ok else 1
            if progress is not None:
                try:
                    await progress(Progress(done=done, failed=failed, total=total))
                except Exception:  # a progress display must never break the request itself
                    log.exception("progress callback failed")
            return result

        results = await asyncio.gather(*(one(i) for i in range(total)))
        return RunResult(
            command=plan.command,
            actor=plan.actor,
            request_key=request_key,
            results=list(results),
            elapsed_s=time.monotonic() - started,
            kind=plan.kind,
            read_before=read_before,
            audit_error=audit_error,
        )

    async def _read_previous(
        self,
        patches: Sequence[RoomPatch],
        expected: Mapping[str, dict[str, Any]] | None,
        pause: Callable[[], Awaitable[None]],
    ) -> tuple[dict[str, dict[str, Any] | None], dict[str, Failure]]:
        """Read each room's current values of the fields about to change.

        With `expected` (undo), a room whose current values differ from what we set is a conflict:
        someone changed it since, and undo must not clobber that.
        """
        previous: dict[str, dict[str, Any] | None] = {}
        conflicts: dict[str, Failure] = {}
        gate = asyncio.Semaphore(MAX_CONCURRENT_ROOMS)

        async def one(patch: RoomPatch) -> None:
            fields = list(patch.changes())
            try:
                async with gate:
                    await pause()
                    snapshot = await self._client.get_room_info(patch.room_id)
            except Exception as exc:
                previous[patch.room_id] = None
                if expected is not None:
                    conflicts[patch.room_id] = describe_failure(exc, room_id=patch.room_id)
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

    async def _update(self, patch: RoomPatch) -> RoomResult:
        started = time.monotonic()
        try:
            outcome = await self._client.update_room_info(patch)
        except Exception as exc:
            failure = describe_failure(exc, room_id=patch.room_id)
            return RoomResult(
                room_id=patch.room_id,
                changes=patch.changes(),
                failure=failure,
                request_id=failure.request_id,
                elapsed_s=time.monotonic() - started,
            )
        return RoomResult(
            room_id=patch.room_id,
            changes=patch.changes(),
            request_id=outcome.request_id,
            attempts=outcome.attempts,
            elapsed_s=time.monotonic() - started,
        )

    async def _complete(self, result: RoomResult) -> str | None:
        failure = result.failure
        if failure is None:
            outcome = Outcome.NOOP if result.noop else Outcome.OK
        else:
            outcome = Outcome.FAILED
        return await self._audit.complete(
            result.row_id,
            outcome=outcome,
            tencent_request_id=result.request_id,
            error_code=failure.code if failure else None,
            error_info=(failure.message if failure else None),
            latency_ms=round(result.elapsed_s * 1000, 3),
            previous=result.previous,
            detail=failure.kind.value if failure and failure.kind is FailureKind.CONFLICT else None,
        )


def _differences(want: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{name} is now {current.get(name)!r} (roombot set {value!r})"
        for name, value in want.items()
        if current.get(name) != value
    )
