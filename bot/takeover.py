"""Taking over a request whose replica stopped mid-call, and saying what became of it.

A survivor that claimed an expired lease (`AuditStore.claim_expired_leases`), or a SQLite store
that recovered rows at start-up (`AuditStore.recovered`), holds a `StrandedRequest`: rows whose
outcome was never recorded. `take_over` reads each affected room back with `get_room_info`,
decides per room whether the requested values are in place, completes the audit rows with that
verdict (`in_place`, `not_applied` or `unknown`, with the RequestId of the read), and returns a
`TakeoverReport` an adapter renders in the request's original place (the lease's `context`).
Rooms not applied are the ones to offer Retry for.

What "in place" means depends on the row: a room patch, that `get_room_info` shows every field
the request set; a kick, that the account is not in `get_room_member_list`; a ban, that it is in
`get_banned_member_list` (an unban, that it is not); a destroy, that `get_room_info` answers
100004. A reading that cannot tell (a list longer than roombot reads, a failed read) is `unknown`.

`sweep` does the whole round for a survivor: claim what expired, take over, deliver, release.
`Sweeper` runs it in the background for a replica, every `SWEEP_INTERVAL_S` and once at start
(first reporting what a SQLite store recovered when it opened), holding each taken-over lease in
the process's `LeaseKeeper` until its report is delivered. Nothing here knows Slack; the adapter
passes `deliver`.

A verdict is a reading, not the call's answer: if the stopped replica's call does answer after
all (it was only slow), `complete()` lets that truth replace the verdict, and a verdict never
replaces a call's own outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from bot import metrics
from bot.aio import cancel_and_wait
from bot.audit import PROVISIONAL_OUTCOMES, AuditEntry, AuditError, AuditStore, Outcome
from bot.audit.records import StrandedRequest
from bot.leases import LeaseKeeper
from bot.tencent.client import BannedList, MemberList, RoomSnapshot
from bot.tencent.errors import ApiError, RoomEngineError

logger = logging.getLogger(__name__)

#: Rooms read at once during a takeover (the client's rate budget paces the calls themselves).
READ_CONCURRENCY: Final = 8
#: After this many takeovers of one request whose report could not be delivered, give up on
#: delivering it (the audit rows are completed; the log says so) rather than retry forever.
MAX_TAKEOVERS: Final = 5
#: How often a replica looks for expired leases (a report then comes at most this long after
#: the lease expired).
SWEEP_INTERVAL_S: Final = 2.0
#: The longest wait before delivering an undelivered report again.
REDELIVERY_MAX_S: Final = 60.0
#: Most members (or bans) read from one room to judge a kick (or a ban); beyond, "unknown".
LIST_READ_CAP: Final = 1000
#: Room Engine's "the room does not exist": for a destroy, the change is in place.
ROOM_NOT_FOUND: Final = 100004
#: The verbs whose rows name an account (`patch["Member_Account"]`); an undo's are unbans.
_MEMBER_VERBS: Final = frozenset({"kick", "ban", "unban", "undo"})

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

    async def get_room_members(self, room_id: str, *, max_members: int = ...) -> MemberList:
        """The room's members, up to `max_members` (`truncated` when there are more)."""

    async def get_banned_members(self, room_id: str, *, max_members: int = ...) -> BannedList:
        """The room's bans, up to `max_members` (`truncated` when there are more)."""


@dataclass(frozen=True)
class RoomVerdict:
    """What became of one row (one room) of a taken-over request.

    `read_back` is True when this survivor read the room: `outcome` is then its verdict
    (`IN_PLACE`, `NOT_APPLIED` or `UNKNOWN`), `wanted` what the row's request set (its audit
    `patch`: room fields, or `Member_Account` for a member verb, `{}` for a destroy), `found`
    what the read showed (the same room fields; `{"in_room": bool}` for a kick,
    `{"banned": bool}` for a ban or unban, `{"exists": bool}` for a destroy; None when the read
    could not tell), `request_id` the read's RequestId, and `error_code`/`error_info` why the
    read failed. Otherwise the row already had the call's own outcome (the stopped replica
    recorded it before stopping), shown as stored.
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
    message ts, response_url); `verb`, `user_id`, `raw_text` and `channel_id` describe the
    request (from its first row; None when it has none). `audit_problem` is set when the
    verdicts could not all be recorded.
    """

    request_key: str
    context: dict[str, Any]
    previous_owner: str | None
    verb: str | None
    user_id: str | None
    raw_text: str | None
    verdicts: tuple[RoomVerdict, ...]
    audit_problem: str | None = None
    channel_id: str | None = None

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
    reads = _Reads(reader, asyncio.Semaphore(concurrency))

    async def judge(row: AuditEntry) -> RoomVerdict:
        if row.outcome not in PROVISIONAL_OUTCOMES:
            return _as_recorded(row)
        return await _read_back(reads, row)

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
        channel_id=first.channel_id if first else None,
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


class Sweeper:
    """A replica's survivor duty, in the background: report what a SQLite store recovered when
    it opened, then every `interval_s` claim expired leases and report each (`take_over`, then
    `deliver`). `start()` / `await stop()`.

    Each taken-over lease is held in `leases` (the process's `LeaseKeeper`, so its heartbeat
    renews it) until the report is delivered. A report that cannot be delivered is tried again
    at later rounds (read afresh, waiting longer each time), and given up after
    `max_takeovers` attempts in all (the audit rows keep the verdicts; the log says so). If
    this replica stops meanwhile, the lease expires and another survivor tries.

    The replicas whose leases are claimed have stopped: their rate-budget slots for calls that
    never ended are ended (`AuditStore.end_rate_slots_of`), so the shared budget is not held
    for up to a minute by calls that will never answer.

    A claimed lease this process itself still holds is a request it is still carrying out (its
    lease expired while the database was unreachable): claiming it made it this replica's
    again, and it is left to finish.
    """

    def __init__(
        self,
        store: AuditStore,
        reader: RoomReader,
        deliver: Callable[[TakeoverReport], Awaitable[None]],
        *,
        leases: LeaseKeeper,
        interval_s: float = SWEEP_INTERVAL_S,
        limit: int = 10,
        max_takeovers: int = MAX_TAKEOVERS,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._store = store
        self._reader = reader
        self._deliver = deliver
        self._leases = leases
        self.interval_s = interval_s
        self._limit = limit
        self._max_takeovers = max_takeovers
        self._recovered = list(store.recovered)
        self._undelivered: dict[str, tuple[StrandedRequest, float]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def undelivered(self) -> frozenset[str]:
        """Requests taken over whose report is still to be delivered."""
        return frozenset(self._undelivered)

    def start(self) -> None:
        """Start sweeping (idempotent): a round now, then one every `interval_s`."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="roombot-takeover-sweep")

    async def stop(self) -> None:
        """Stop sweeping; a takeover being reported is cancelled (its lease then expires and
        another survivor reports it)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def run_once(self) -> list[TakeoverReport]:
        """One round: the SQLite recovery (first round only), reports still undelivered, then
        up to `limit` expired leases. Returns the reports delivered. Raises `AuditError` only
        when claiming fails."""
        delivered: list[TakeoverReport] = []
        recovered, self._recovered = self._recovered, []
        for stranded in recovered:
            self._leases.adopt(stranded.request_key)
            metrics.count_takeover("restart")
            await self._report(stranded, delivered)
        now = asyncio.get_running_loop().time()
        for key, (stranded, due) in list(self._undelivered.items()):
            if due > now:
                continue
            try:
                rows = tuple(await self._store.rows_for_request(key))
            except AuditError as exc:
                logger.warning("takeover of %s: could not re-read its rows: %s", key, exc)
                continue
            again = replace(stranded, rows=rows, takeovers=stranded.takeovers + 1)
            await self._report(again, delivered)
        claimed = await self._store.claim_expired_leases(limit=self._limit)
        await self._end_slots_of_stopped(claimed)
        for stranded in claimed:
            key = stranded.request_key
            if self._leases.holds(key):
                logger.warning(
                    "request %s: this replica's own lease had expired while it is still "
                    "carrying the request out; it is this replica's again",
                    key,
                )
                continue
            self._leases.adopt(key)
            metrics.count_takeover("lease_expired")
            await self._report(stranded, delivered)
        return delivered

    async def _end_slots_of_stopped(self, claimed: list[StrandedRequest]) -> None:
        """The replicas whose leases were claimed stopped: their rate-budget slots for calls
        that never ended would otherwise hold the shared budget for up to a minute, and the
        reads of the takeover need it."""
        owners = {s.previous_owner for s in claimed if s.previous_owner}
        owners.discard(self._store.owner)
        for owner in sorted(owners):
            try:
                ended = await self._store.end_rate_slots_of(owner)
            except AuditError as exc:
                logger.warning("could not end the rate slots of stopped %s: %s", owner, exc)
                continue
            if ended:
                logger.info("ended %d rate slot(s) of stopped replica %s", ended, owner)

    async def _report(self, stranded: StrandedRequest, delivered: list[TakeoverReport]) -> None:
        key = stranded.request_key
        self._undelivered.pop(key, None)
        logger.warning(
            "taking over request %s (its replica %s stopped): reading %d room(s) back",
            key,
            stranded.previous_owner or "unknown",
            len(stranded.unsettled_rows),
        )
        report = await take_over(self._store, self._reader, stranded)
        try:
            await self._deliver(report)
        except Exception:
            if stranded.takeovers < self._max_takeovers:
                logger.exception(
                    "takeover of %s: the report could not be delivered; trying again", key
                )
                # Slack may be down for a while: wait longer after each failed attempt.
                delay = min(REDELIVERY_MAX_S, self.interval_s * 2**stranded.takeovers)
                due = asyncio.get_running_loop().time() + delay
                self._undelivered[key] = (stranded, due)
                metrics.set_takeovers_undelivered(len(self._undelivered))
                return
            logger.exception(
                "takeover of %s: the report could not be delivered after %d attempts; giving up "
                "(the audit trail holds the verdicts)",
                key,
                stranded.takeovers,
            )
        else:
            delivered.append(report)
        metrics.set_takeovers_undelivered(len(self._undelivered))
        await self._leases.release(key)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except AuditError as exc:
                logger.warning("takeover sweep failed: %s", exc)
            except Exception:
                logger.exception("takeover sweep failed unexpectedly")
            await asyncio.sleep(self.interval_s)


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


class _Reads:
    """The reads of one takeover: at most `gate`'s worth at once, and each room's member or ban
    list read once however many of its accounts a request named."""

    def __init__(self, reader: RoomReader, gate: asyncio.Semaphore) -> None:
        self.reader = reader
        self._gate = gate
        self._lists: dict[tuple[str, str], asyncio.Task[MemberList | BannedList]] = {}

    async def room(self, room_id: str) -> RoomSnapshot:
        async with self._gate:
            return await self.reader.get_room_info(room_id)

    async def members(self, room_id: str) -> MemberList:
        listing = await self._list("members", room_id)
        assert isinstance(listing, MemberList)
        return listing

    async def banned(self, room_id: str) -> BannedList:
        listing = await self._list("banned", room_id)
        assert isinstance(listing, BannedList)
        return listing

    async def _list(self, kind: str, room_id: str) -> MemberList | BannedList:
        task = self._lists.get((kind, room_id))
        if task is None:
            task = asyncio.ensure_future(self._read_list(kind, room_id))
            self._lists[(kind, room_id)] = task
        # Several rows await one read: shield it, so one cancelled waiter cannot cancel it.
        return await asyncio.shield(task)

    async def _read_list(self, kind: str, room_id: str) -> MemberList | BannedList:
        async with self._gate:
            if kind == "members":
                return await self.reader.get_room_members(room_id, max_members=LIST_READ_CAP)
            return await self.reader.get_banned_members(room_id, max_members=LIST_READ_CAP)


def _account_of(row: AuditEntry) -> str | None:
    account = (row.patch or {}).get("Member_Account")
    return account if isinstance(account, str) else None


async def _read_back(reads: _Reads, row: AuditEntry) -> RoomVerdict:
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

    account = _account_of(row)
    if not row.room_id or not (wanted or row.verb == "destroy"):
        return verdict(Outcome.UNKNOWN, error_info="no room change to read back")
    try:
        if row.verb == "destroy":
            return await _destroyed(reads, row.room_id, verdict)
        if account is not None and row.verb in _MEMBER_VERBS:
            return await _member_state(reads, row.room_id, account, row.verb or "", verdict)
        snapshot = await reads.room(row.room_id)
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


async def _destroyed(
    reads: _Reads, room_id: str, verdict: Callable[..., RoomVerdict]
) -> RoomVerdict:
    """A destroy is in place when Room Engine no longer knows the room (100004)."""
    try:
        snapshot = await reads.room(room_id)
    except ApiError as exc:
        if exc.code != ROOM_NOT_FOUND:
            raise
        return verdict(Outcome.IN_PLACE, found={"exists": False}, request_id=exc.request_id)
    return verdict(Outcome.NOT_APPLIED, found={"exists": True}, request_id=snapshot.request_id)


async def _member_state(
    reads: _Reads, room_id: str, account: str, verb: str, verdict: Callable[..., RoomVerdict]
) -> RoomVerdict:
    """A kick is in place when the account is not a member; a ban when it is banned; an unban
    (or the undo of a ban) when it is not. A list cut short that does not name it cannot tell."""
    if verb == "kick":
        members = await reads.members(room_id)
        request_id = members.request_ids[0] if members.request_ids else None
        present = any(m.account == account for m in members.members)
        if not present and members.truncated:
            return verdict(
                Outcome.UNKNOWN,
                request_id=request_id,
                error_info=f"the room has more than {LIST_READ_CAP} members",
            )
        outcome = Outcome.NOT_APPLIED if present else Outcome.IN_PLACE
        return verdict(outcome, found={"in_room": present}, request_id=request_id)
    bans = await reads.banned(room_id)
    request_id = bans.request_ids[0] if bans.request_ids else None
    banned = any(b.account == account for b in bans.members)
    if not banned and bans.truncated:
        return verdict(
            Outcome.UNKNOWN,
            request_id=request_id,
            error_info=f"the room has more than {LIST_READ_CAP} bans",
        )
    wants_banned = verb == "ban"
    outcome = Outcome.IN_PLACE if banned == wants_banned else Outcome.NOT_APPLIED
    return verdict(outcome, found={"banned": banned}, request_id=request_id)


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
