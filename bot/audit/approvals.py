"""The statements of two-person approval (DESIGN §2.12) as transaction bodies, and the store's
operations on them (`ApprovalOps`, a part of `AuditStore`).

A request awaiting approval is a record nobody holds, in state `awaiting_approval`, with an
`expires_at`. Each decision is one conditional UPDATE, so of any number of clicks and replicas
at once exactly one changes it:

* `approve`: it becomes the approving replica's (`received`, fencing number one higher, as
  `take_waiting`), with the decision, who and when; only while it waits and has not expired;
* `decline`: it ends `denied` (or `cancelled`, withdrawn by its requester), with who, when and
  the reason;
* `expire_waiting`: every one past its expiry ends `expired` (a replica's loop runs it with its
  look for work, in the same transaction).

A request that ends without running gives up its `dedupe_key`, so the same Undo or Retry can be
asked for again; one that was approved keeps it (it ran: once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from bot.audit.records import ApprovalDecision, RequestRecord, RequestState, TakenRequest
from bot.audit.rows import REQUEST_SELECT, json_text, request_from_row
from bot.audit.sql import Body, Query

if TYPE_CHECKING:
    from bot.audit.sql import BodyFactory

_T = TypeVar("_T")

_WAITING = "owner IS NULL AND state = %(awaiting)s"


def approve(
    owner: str, key: str, *, by: str, lease_s: float, now: float
) -> Body[RequestRecord | None]:
    """`by` approves the waiting request `key`: `owner` takes it to carry it out. None when it
    waits no more (approved, denied, withdrawn, expired: past `expires_at` even if not yet
    swept) or does not exist."""
    result = yield Query(
        "UPDATE requests SET owner = %(owner)s, lease_until = $NOW + %(lease_s)s, "  # noqa: S608
        "fence = fence + 1, state = %(received)s, updated_at = $NOW, decision = %(decision)s, "
        "decided_by = %(by)s, decided_at = %(now)s "
        f"WHERE request_key = %(key)s AND {_WAITING} "
        "AND (expires_at IS NULL OR expires_at > $NOW) "
        f"RETURNING {REQUEST_SELECT}",
        {
            "owner": owner,
            "lease_s": lease_s,
            "received": RequestState.RECEIVED.value,
            "awaiting": RequestState.AWAITING_APPROVAL.value,
            "decision": ApprovalDecision.APPROVED.value,
            "by": by,
            "now": now,
            "key": key,
        },
    )
    row = result.one()
    return None if row is None else request_from_row(row)


def decline(
    key: str, *, by: str, note: str | None, withdrawn: bool, now: float
) -> Body[RequestRecord | None]:
    """`by` denies the waiting request `key` (or, `withdrawn`, its requester takes it back):
    it ends `denied` (`cancelled`) with who, when and `note`. None when it waits no more."""
    result = yield Query(
        "UPDATE requests SET state = %(state)s, updated_at = %(now)s, dedupe_key = NULL, "  # noqa: S608
        "decision = %(decision)s, decided_by = %(by)s, decided_at = %(now)s, "
        f"decision_note = %(note)s WHERE request_key = %(key)s AND {_WAITING} "
        f"RETURNING {REQUEST_SELECT}",
        {
            "state": (RequestState.CANCELLED if withdrawn else RequestState.DENIED).value,
            "decision": (
                ApprovalDecision.WITHDRAWN if withdrawn else ApprovalDecision.DENIED
            ).value,
            "awaiting": RequestState.AWAITING_APPROVAL.value,
            "by": by,
            "note": note,
            "now": now,
            "key": key,
        },
    )
    row = result.one()
    return None if row is None else request_from_row(row)


def readdress(key: str, reply: dict[str, Any]) -> Body[bool]:
    """Record where a waiting request is shown now (its thread, once posted). False when it
    waits no more (decided meanwhile: whoever decided reads the address they found)."""
    result = yield Query(
        f"UPDATE requests SET reply = %(reply)s WHERE request_key = %(key)s AND {_WAITING} "  # noqa: S608
        "RETURNING request_key",
        {
            "reply": json_text(reply, "reply address"),
            "key": key,
            "awaiting": RequestState.AWAITING_APPROVAL.value,
        },
    )
    return bool(result.rows)


def expire_waiting(adapters: Sequence[str]) -> Body[list[RequestRecord]]:
    """Every request that waited for an approver past its `expires_at` ends `expired`; each
    is returned by exactly one of the replicas running this at once. Only requests one of
    `adapters` can show (a console sharing the database leaves Slack's to a Slack replica,
    which updates their messages)."""
    result = yield Query(
        "UPDATE requests SET state = %(expired)s, updated_at = $NOW, dedupe_key = NULL, "  # noqa: S608
        f"decision = %(decision)s, decided_at = $NOW WHERE {_WAITING} "
        "AND expires_at IS NOT NULL AND expires_at <= $NOW AND adapter $IN(adapters) "
        f"RETURNING {REQUEST_SELECT}",
        {
            "expired": RequestState.EXPIRED.value,
            "decision": ApprovalDecision.EXPIRED.value,
            "awaiting": RequestState.AWAITING_APPROVAL.value,
            "adapters": list(adapters),
        },
    )
    return [request_from_row(row) for row in result.rows]


def decisions(keys: Sequence[str]) -> Body[dict[str, RequestRecord]]:
    """The records of those of `keys` that awaited approval (they carry a decision)."""
    if not keys:
        return {}
    result = yield Query(
        f"SELECT {REQUEST_SELECT} FROM requests "  # noqa: S608
        "WHERE request_key $IN(keys) AND decision IS NOT NULL",
        {"keys": list(keys)},
    )
    return {r.request_key: r for r in map(request_from_row, result.rows)}


def awaiting(limit: int) -> Body[list[RequestRecord]]:
    """Up to `limit` requests awaiting approval and not expired, newest first."""
    result = yield Query(
        f"SELECT {REQUEST_SELECT} FROM requests WHERE {_WAITING} "  # noqa: S608
        "AND (expires_at IS NULL OR expires_at > $NOW) ORDER BY created_at DESC "
        "LIMIT %(limit)s",
        {"awaiting": RequestState.AWAITING_APPROVAL.value, "limit": limit},
    )
    return [request_from_row(row) for row in result.rows]


def approval_summary(record: RequestRecord) -> str | None:
    """Who asked and who decided, with the times (UTC), as one plain line; None for a request
    that never awaited approval."""
    if record.decision is None:
        return None
    asked = f"asked by {record.user_id} at {_iso(record.created_at)}"
    at = f" at {_iso(record.decided_at)}" if record.decided_at is not None else ""
    by = f" by {record.decided_by}" if record.decided_by else ""
    if record.decision == ApprovalDecision.APPROVED:
        return f"{asked}; approved{by}{at}"
    if record.decision == ApprovalDecision.DENIED:
        why = f": {record.decision_note}" if record.decision_note else ""
        return f"{asked}; denied{by}{at}{why}"
    if record.decision == ApprovalDecision.WITHDRAWN:
        return f"{asked}; withdrawn{at}"
    return f"{asked}; expired{at} (nobody approved it)"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ApprovalOps:
    """The store's approval operations (mixed into `AuditStore`)."""

    if TYPE_CHECKING:
        _owner: str
        _lease_s: float
        _clock: Callable[[], float]
        _monotonic: Callable[[], float]

        async def _write(self, action: str, body: BodyFactory[_T]) -> _T: ...

        async def _read(self, action: str, body: BodyFactory[_T]) -> _T: ...

        def _taken(self, record: RequestRecord, now: float, sent: float) -> TakenRequest: ...

    async def approve_waiting(self, request_key: str, *, by: str) -> TakenRequest | None:
        """`by` approves a request awaiting approval: it is this replica's to carry out now
        (see `approve`). None when it waits no more: another click or replica took it first,
        or it was denied, withdrawn or expired."""
        sent = self._monotonic()
        now = self._clock()
        record = await self._write(
            "approve a waiting request",
            lambda: approve(self._owner, request_key, by=by, lease_s=self._lease_s, now=now),
        )
        return None if record is None else self._taken(record, now, sent)

    async def decline_waiting(
        self, request_key: str, *, by: str, note: str | None = None, withdrawn: bool = False
    ) -> RequestRecord | None:
        """`by` denies a request awaiting approval, with `note` (or, `withdrawn`, its requester
        takes it back). None when it waits no more."""
        now = self._clock()
        return await self._write(
            "decline a waiting request",
            lambda: decline(request_key, by=by, note=note, withdrawn=withdrawn, now=now),
        )

    async def readdress_waiting(self, request_key: str, reply: dict[str, Any]) -> bool:
        """Record the reply address of a request awaiting approval (see `readdress`)."""
        return await self._write(
            "readdress a waiting request", lambda: readdress(request_key, reply)
        )

    async def approval_decisions(self, keys: Sequence[str]) -> dict[str, RequestRecord]:
        """The records of those of `keys` that awaited approval, by key."""
        unique = sorted(set(keys))
        return await self._read("read approvals", lambda: decisions(unique))

    async def awaiting_approval(self, *, limit: int = 20) -> list[RequestRecord]:
        """Requests awaiting approval now (not expired), newest first."""
        return await self._read("read approvals", lambda: awaiting(limit))
