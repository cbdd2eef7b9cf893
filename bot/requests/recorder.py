"""The audit trail as the service and the runner see it: rows built from requests, and writes that
report failure instead of raising.

`AuditRecorder` wraps the store so that a broken audit trail is logged loudly and returned as a
one-line problem, never raised into the request. `entry()` / `entries()` build the rows of a
request from who asked (`Actor`) and what (`Command`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot import metrics
from bot.audit import AuditError, AuditStore, NewEntry, Outcome
from bot.commands import Command, clip_for_audit
from bot.models import Call, DestroyCall, LockSeatCall, RoomPatch, SeatChange, SeatKickCall
from bot.outcomes import Actor

log = logging.getLogger(__name__)


def new_request_key() -> str:
    """A fresh key that groups the audit rows of one request (and that buttons carry)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Target:
    """One audit row and one result: a room, one account of a member call (kick/ban/unban,
    kick-seat), or one seat.

    `changes` is what the row's `patch` column records: the room's new values,
    `Member_Account` (and a ban's `Duration`), or a seat's `Index` and the flags set; empty for
    `destroy_room`.
    """

    call: int  # index of the call in its plan
    room_id: str
    account: str | None
    changes: dict[str, Any]


def targets_of(call: Call, index: int = 0) -> list[Target]:
    """The targets one call covers: its room, its seat, or each of its accounts."""
    if isinstance(call, RoomPatch):
        return [Target(index, call.room_id, None, call.changes())]
    if isinstance(call, DestroyCall):
        return [Target(index, call.room_id, None, {})]
    if isinstance(call, SeatChange | LockSeatCall):
        change = call if isinstance(call, SeatChange) else call.change
        return [Target(index, change.room_id, None, change.target())]
    if isinstance(call, SeatKickCall):
        return [Target(index, call.room_id, call.account, {"Member_Account": call.account})]
    extra = {"Duration": call.duration_s} if call.duration_s is not None else {}
    return [
        Target(index, call.room_id, account, {"Member_Account": account, **extra})
        for account in call.accounts
    ]


def entry(
    actor: Actor,
    command: Command | None,
    raw_text: str,
    *,
    room_id: str | None = None,
    patch: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
    outcome: Outcome = Outcome.PENDING,
    detail: str | None = None,
    undo_of: int | None = None,
    request_key: str | None = None,
    verb: str | None = None,
    reason: str | None = None,
) -> NewEntry:
    """One audit row of `actor`'s request (a fresh request key unless one is given).

    `verb` and `reason` default to the command's; an undo records "undo", and a member call
    the `Reason` it really sent. The text is clipped (`clip_for_audit`): whoever may type may not
    fill the audit trail.
    """
    return NewEntry(
        request_key=request_key or new_request_key(),
        source=actor.source.value,
        user_id=actor.user_id,
        verb=verb or (command.verb if command else None),
        raw_text=clip_for_audit(raw_text),
        room_id=room_id,
        team_id=actor.team_id,
        channel_id=actor.channel_id,
        reason=reason or (command.reason if command else None),
        patch=patch,
        previous=previous,
        outcome=outcome,
        detail=detail,
        undo_of=undo_of,
    )


def entries(
    actor: Actor,
    command: Command,
    raw_text: str,
    *,
    outcome: Outcome,
    detail: str | None = None,
) -> list[NewEntry]:
    """The finished rows of a request that calls nothing (denied, dry run, cancelled): one per
    target it names (a room, or an account of a member verb), or one row for a read or a
    command without rooms, sharing one request key."""
    key = new_request_key()
    targets = [
        t
        for index, call in enumerate(command.calls(actor.user_id))
        for t in targets_of(call, index)
    ]
    if not targets:
        rooms: Sequence[str | None] = command.rooms or [None]
        return [
            entry(
                actor,
                command,
                raw_text,
                room_id=room,
                outcome=outcome,
                detail=detail,
                request_key=key,
            )
            for room in rooms
        ]
    return [
        entry(
            actor,
            command,
            raw_text,
            room_id=t.room_id,
            patch=t.changes or None,
            outcome=outcome,
            detail=detail,
            request_key=key,
        )
        for t in targets
    ]


class AuditRecorder:
    """The audit store seen from the service: failures are logged loudly and returned as one-line
    problems, never raised, so a broken audit trail never makes a Room Engine request fail.

    `store` is None when no audit trail is configured; then every write is a no-op.
    """

    def __init__(self, store: AuditStore | None) -> None:
        self.store = store

    async def begin(self, rows: Sequence[NewEntry]) -> tuple[list[int | None], str | None]:
        """Write pending rows; their ids (None each when not written) and the problem, if any."""
        if self.store is None:
            return [None] * len(rows), None
        try:
            return list(await self.store.begin(rows)), None
        except AuditError as exc:
            return [None] * len(rows), self.failed("begin", exc)

    async def record(self, rows: Sequence[NewEntry]) -> str | None:
        """Write finished rows; the problem, if any."""
        if self.store is None or not rows:
            return None
        try:
            await self.store.record(rows)
        except AuditError as exc:
            return self.failed("record", exc)
        return None

    async def complete(self, row_id: int | None, **fields: Any) -> str | None:
        """Complete a pending row (`AuditStore.complete`'s fields); the problem, if any."""
        if self.store is None or row_id is None:
            return None
        try:
            await self.store.complete(row_id, **fields)
        except AuditError as exc:
            return self.failed("complete", exc)
        return None

    @staticmethod
    def failed(step: str, exc: AuditError) -> str:
        """Log (and count) an audit failure loudly; return it as a one-line problem."""
        metrics.count_audit_failure(step)
        log.error("AUDIT TRAIL NOT WRITTEN (%s): %s", step, exc)
        return str(exc) or type(exc).__name__
