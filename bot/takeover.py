"""Taking over a request whose replica stopped mid-call, and saying what became of it.

A survivor that claimed an expired lease (`AuditStore.claim_expired_leases`), or a SQLite store
that recovered rows at start-up (`AuditStore.recovered`), holds a `StrandedRequest`: rows whose
outcome was never recorded. `take_over` reads each affected room back with `get_room_info`,
decides per room whether the requested values are in place, completes the audit rows with that
verdict (`in_place`, `not_applied` or `unknown`, with the RequestId of the read), and returns a
`TakeoverReport` an adapter renders in the request's original place (the lease's `context`).
Rooms not applied are the ones to offer Retry for.

`sweep` does the whole round for a survivor: claim what expired, take over, deliver, release.
Nothing here knows Slack; the adapter passes `deliver`.

A verdict is a reading, not the call's answer: if the stopped replica's call does answer after
all (it was only slow), `complete()` lets that truth replace the verdict, and a verdict never
replaces a call's own outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bot.audit import PROVISIONAL_OUTCOMES, AuditEntry, AuditError, AuditStore, Outcome
from bot.audit.records import StrandedRequest
from bot.tencent.client import RoomSnapshot
from bot.tencent.errors import ApiError, RoomEngineError

logger = logging.getLogger(__name__)

#: Rooms read at once during a takeover (the client's rate budget paces the calls themselves).
READ_CONCURRENCY: Final = 8
#: After this many takeovers of one request whose report could not be delivered, give up on
#: delivering it (the audit rows are completed; the log says so) rather than retry forever.
MAX_TAKEOVERS: Final = 5

_STOPPED: Final = "the replica carrying this out stopped before recording the outcome"
#: The `detail` a survivor writes on each row, by verdict.
VERDICT_DETAILS: Final = {
    Outcome.IN_PLACE: f"{_STOPPED}; read back: the change is in place",
    Outcome.NOT_APPLIED: f"{_STOPPED}; read back: the change is not in place",
    Outcome.UNKNOWN: f"{_STOPPED}; the room could not be read back",
}


class RoomReader(Protocol):
    """What a takeover needs of a Room Engine client (`RoomEngineClient` is one)."""

    async def get_room_info(self, room_id: str) -> RoomSnapshot:
        """The room's current settings, with the RequestId of the answer."""


@dataclass(frozen=True)
class RoomVerdict:
    """What became of one row (one room) of a taken-over request.

    `read_back` is True when this survivor read the room: `outcome` is then its verdict
    (`IN_PLACE`, `NOT_APPLIED` or `UNKNOWN`), `wanted` the fields the request set, `found` the
    same fields as read (None when the read failed), `request_id` the read's RequestId, and
    `error_code`/`error_info` why the read failed. Otherwise the row already had the call's own
    outcome (the stopped replica recorded it before stopping), shown as stored.
    """

    row_id: int
    room_id: str | None
    outcome: Outcome
    wanted: dict[str, Any]
    found: dict[str, Any] | None
    request_id: str | None
    read_back: bool
    error_code: int | None = None
    error_info: str | None = None

    @property
    def offer_retry(self) -> bool:
        """True when the change is known not to be in place: the room to offer Retry for."""
        return self.outcome is Outcome.NOT_APPLIED


@dataclass(frozen=True)
class TakeoverReport:
    """Everything an adapter needs to tell the request's thread what happened.

    `context` is the lease's delivery context as the adapter stored it (e.g. channel, parent
    message ts, response_url); `verb`, `user_id` and `raw_text` describe the request (from its
    first row). `audit_problem` is set when the verdicts could not all be recorded.
    """

    request_key: str
    context: dict[str, Any]
    previous_owner: str | None
    verb: str | None
    user_id: str | None
    raw_text: str | None
    verdicts: tuple[RoomVerdict, ...]
    audit_problem: str | None = None

    @property
    def retry_rooms(self) -> tuple[str, ...]:
        """The rooms whose change is not in place, in row order: offer Retry for these."""
        return tuple(v.room_id for v in self.verdicts if v.offer_retry and v.room_id)

    def count(self, outcome: Outcome) -> int:
        """How many rooms ended with `outcome`."""
        return sum(1 for v in self.verdicts if v.outcome is outcome)


async def take_over(
    store: AuditStore,
    reader: RoomReader,
    stranded: StrandedRequest,
    *,
    concurrency: int = READ_CONCURRENCY,
) -> TakeoverReport:
    """Read back every room of `stranded` whose outcome is unsettled, record the verdicts in the
    audit trail, and report. Never raises for a failed read (that room is `unknown`) nor for the
    audit store (the report's `audit_problem` says what could not be recorded)."""
    gate = asyncio.Semaphore(concurrency)

    async def judge(row: AuditEntry) -> RoomVerdict:
        if row.outcome not in PROVISIONAL_OUTCOMES:
            return _as_recorded(row)
        async with gate:
            return await _read_back(reader, row)

    verdicts = list(await asyncio.gather(*(judge(row) for row in stranded.rows)))
    problem = await _record(store, stranded.request_key, verdicts)
    first = stranded.rows[0] if stranded.rows else None
    return TakeoverReport(
        request_key=stranded.request_key,
        context=dict(stranded.context),
        previous_owner=stranded.previous_owner,
        verb=first.verb if first else None,
        user_id=first.user_id if first else None,
        raw_text=first.raw_text if first else None,
        verdicts=tuple(verdicts),
        audit_problem=problem,
    )


async def report_stranded(
    store: AuditStore,
    reader: RoomReader,
    stranded: StrandedRequest,
    deliver: Callable[[TakeoverReport], Awaitable[None]],
    *,
    max_takeovers: int = MAX_TAKEOVERS,
) -> TakeoverReport:
    """Take over one request, `deliver` the report, then release its lease.

    If delivering fails, the lease is kept: it expires and a survivor (maybe this one) tries
    again; after `max_takeovers` attempts it is released anyway, the failure logged.
    """
    report = await take_over(store, reader, stranded)
    try:
        await deliver(report)
    except Exception:
        if stranded.takeovers < max_takeovers:
            logger.exception(
                "takeover of %s: the report could not be delivered; trying again after the lease "
                "expires",
                stranded.request_key,
            )
            return report
        logger.exception(
            "takeover of %s: the report could not be delivered after %d attempts; giving up "
            "(the audit trail holds the verdicts)",
            stranded.request_key,
            stranded.takeovers,
        )
    try:
        await store.release_lease(stranded.request_key)
    except AuditError as exc:
        logger.warning("takeover of %s: could not release the lease: %s", stranded.request_key, exc)
    return report


async def sweep(
    store: AuditStore,
    reader: RoomReader,
    deliver: Callable[[TakeoverReport], Awaitable[None]],
    *,
    limit: int = 10,
    max_takeovers: int = MAX_TAKEOVERS,
) -> list[TakeoverReport]:
    """One survivor's round: claim up to `limit` expired leases and `report_stranded` each.
    Call it every few seconds (and once at start-up). Raises `AuditError` only when the claim
    itself fails."""
    stranded = await store.claim_expired_leases(limit=limit)
    return [
        await report_stranded(store, reader, one, deliver, max_takeovers=max_takeovers)
        for one in stranded
    ]


# -- internals ----------------------------------------------------------------------------------


def _as_recorded(row: AuditEntry) -> RoomVerdict:
    return RoomVerdict(
        row_id=row.id,
        room_id=row.room_id,
        outcome=row.outcome,
        wanted=dict(row.patch or {}),
        found=None,
        request_id=row.tencent_request_id,
        read_back=False,
        error_code=row.error_code,
        error_info=row.error_info,
    )


async def _read_back(reader: RoomReader, row: AuditEntry) -> RoomVerdict:
    wanted = dict(row.patch or {})

    def verdict(outcome: Outcome, **fields: Any) -> RoomVerdict:
        values: dict[str, Any] = {"found": None, "request_id": None, **fields}
        return RoomVerdict(
            row_id=row.id,
            room_id=row.room_id,
            outcome=outcome,
            wanted=wanted,
            read_back=True,
            **values,
        )

    if not row.room_id or not wanted:
        return verdict(Outcome.UNKNOWN, error_info="no room change to read back")
    try:
        snapshot = await reader.get_room_info(row.room_id)
    except ApiError as exc:
        return verdict(
            Outcome.UNKNOWN, request_id=exc.request_id, error_code=exc.code, error_info=exc.info
        )
    except RoomEngineError as exc:
        return verdict(Outcome.UNKNOWN, request_id=exc.request_id, error_info=exc.message)
    except Exception as exc:  # e.g. the rate budget's database is down: still a verdict
        return verdict(Outcome.UNKNOWN, error_info=f"{type(exc).__name__}: {exc}")
    try:
        found = snapshot.room.api_values(list(wanted))
    except KeyError as exc:
        return verdict(
            Outcome.UNKNOWN,
            request_id=snapshot.request_id,
            error_info=f"get_room_info does not report {exc.args[0]}",
        )
    outcome = Outcome.IN_PLACE if found == wanted else Outcome.NOT_APPLIED
    return verdict(outcome, found=found, request_id=snapshot.request_id)


async def _record(store: AuditStore, request_key: str, verdicts: list[RoomVerdict]) -> str | None:
    """Complete the rows this survivor read back; where the call's own outcome arrived in the
    meantime, show that instead. Returns what could not be recorded, or None."""
    updates = [
        (
            v.row_id,
            {
                "outcome": v.outcome,
                "tencent_request_id": v.request_id,
                "error_code": v.error_code,
                "error_info": v.error_info,
                "detail": VERDICT_DETAILS[v.outcome],
            },
        )
        for v in verdicts
        if v.read_back
    ]
    if not updates:
        return None
    try:
        await store.complete_many(updates)
        return None
    except AuditError as exc:
        problem = str(exc)
    # Some rows refused the verdict: their call answered after all. Report what is stored.
    try:
        rows = {row.id: row for row in await store.rows_for_request(request_key)}
    except AuditError as exc:
        return f"{problem}; and re-reading the rows failed: {exc}"
    for index, v in enumerate(verdicts):
        stored = rows.get(v.row_id)
        if v.read_back and stored is not None and stored.outcome not in PROVISIONAL_OUTCOMES:
            verdicts[index] = _as_recorded(stored)
    still_open = [
        v.row_id
        for v in verdicts
        if v.read_back and (rows.get(v.row_id) is None or rows[v.row_id].outcome != v.outcome)
    ]
    return problem if still_open else None
