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
from typing import Any

from bot.audit import AuditError, AuditStore, NewEntry, Outcome
from bot.commands import Command
from bot.outcomes import Actor

log = logging.getLogger(__name__)


def new_request_key() -> str:
    """A fresh key that groups the audit rows of one request (and that buttons carry)."""
    return uuid.uuid4().hex


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
) -> NewEntry:
    """One audit row of `actor`'s request (a fresh request key unless one is given)."""
    return NewEntry(
        request_key=request_key or new_request_key(),
        source=actor.source.value,
        user_id=actor.user_id,
        verb=command.verb if command else None,
        raw_text=raw_text,
        room_id=room_id,
        team_id=actor.team_id,
        channel_id=actor.channel_id,
        reason=command.reason if command else None,
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
    room it names (or one row without a room), sharing one request key."""
    key = new_request_key()
    patches = {p.room_id: p.changes() for p in command.patches()}
    rooms: Sequence[str | None] = command.rooms or [None]
    return [
        entry(
            actor,
            command,
            raw_text,
            room_id=room,
            patch=patches.get(room) if room is not None else None,
            outcome=outcome,
            detail=detail,
            request_key=key,
        )
        for room in rooms
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
        """Log an audit failure loudly; return it as a one-line problem."""
        log.error("AUDIT TRAIL NOT WRITTEN (%s): %s", step, exc)
        return str(exc) or type(exc).__name__
