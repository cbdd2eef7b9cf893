"""Taking over a request whose replica stopped, and saying what became of it.

A replica's loop (`bot.requests.loop`) takes over a request whose holder's lease expired
(`AuditStore.take_over`) and holds it under a fencing number of its own: a `TakenRequest`.
`take_over` then decides per row what became of it and records the verdicts, in one fenced
transaction:

* a row with the call's own outcome keeps it (the stopped replica recorded it in time);
* a request still `received` sent nothing yet (it stopped while reading rooms or posting its
  parent): each row is `not_attempted`, with no read;
* otherwise the room is read back: a room patch is in place when `get_room_info` shows every
  field the request set; a seat change when `get_seat_list` shows the seat with every flag it
  set; a kick-seat when the account is on no seat; a kick when the account is not in
  `get_room_member_list`; a ban when it is in `get_banned_member_list` (an unban, when it is
  not); a destroy when `get_room_info` answers 100004. A reading that cannot tell (a list
  longer than roombot reads, a failed read) is `unknown`.

The `TakeoverReport` it returns is what an adapter renders in the request's original place (the
record's reply address). Rooms not applied or not attempted are the ones to offer Retry for.

A verdict is a reading, and final: the stopped replica, should it wake up (it was only paused),
finds its fencing number taken and records nothing more (DESIGN §2.10).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bot.audit import (
    PROVISIONAL_OUTCOMES,
    AuditEntry,
    AuditError,
    AuditStore,
    Outcome,
    RequestState,
    TakenRequest,
)
from bot.audit.rows import Completion
from bot.models import (
    SEAT_FLAGS,
    SEAT_INDEX,
    BannedList,
    MemberList,
    RoomSnapshot,
    SeatList,
    is_seat_target,
)
from bot.outcomes import Plan
from bot.requests.plans import PlanUnreadable, plan_from_json
from bot.tencent.errors import ApiError, RoomEngineError

logger = logging.getLogger(__name__)

#: Rooms read at once during a takeover (the client's rate budget paces the calls themselves).
READ_CONCURRENCY: Final = 8
#: After this many takeovers of one request whose report could not be delivered, give up on
#: delivering it (the audit rows are completed; the log says so) rather than retry forever.
MAX_TAKEOVERS: Final = 5
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
    Outcome.NOT_ATTEMPTED: "the replica carrying this out stopped before sending any change",
}


class RoomReader(Protocol):
    """What a takeover needs of a Room Engine client (`RoomEngineClient` is one)."""

    async def get_room_info(self, room_id: str) -> RoomSnapshot:
        """The room's current settings, with the RequestId of the answer."""

    async def get_room_members(self, room_id: str, *, max_members: int = ...) -> MemberList:
        """The room's members, up to `max_members` (`truncated` when there are more)."""

    async def get_banned_members(self, room_id: str, *, max_members: int = ...) -> BannedList:
        """The room's bans, up to `max_members` (`truncated` when there are more)."""

    async def get_seat_list(self, room_id: str) -> SeatList:
        """The room's seats, with the RequestId of the answer."""


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
        return self.outcome in (Outcome.NOT_APPLIED, Outcome.NOT_ATTEMPTED)


@dataclass(frozen=True)
class TakeoverReport:
    """Everything an adapter needs to tell the request's thread what happened.

    `context` is the request's reply address as the adapter stored it (e.g. channel, parent
    message ts, response_url); `verb`, `user_id`, `raw_text` and `channel_id` describe the
    request (from its record, else its first row). `audit_problem` is set when the verdicts
    could not all be recorded.
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
    #: True when the stopped replica had sent no change yet (nothing was changed).
    nothing_sent: bool = False
    #: The request's plan as its record keeps it (None: a record of an older version).
    plan: Plan | None = None

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
    taken: TakenRequest,
    *,
    concurrency: int = READ_CONCURRENCY,
) -> TakeoverReport:
    """Read back every room of `taken` whose outcome is unsettled, record the verdicts in the
    audit trail (fenced by `taken.lease`: a replica that loses this request meanwhile records
    nothing), and report. Never raises for a failed read (that room is `unknown`) nor for the
    audit store (the report's `audit_problem` says what could not be recorded), except
    `LeaseLost`."""
    reads = _Reads(reader, asyncio.Semaphore(concurrency))

    record = taken.record
    nothing_sent = record.state is RequestState.RECEIVED

    async def judge(row: AuditEntry) -> RoomVerdict:
        if row.outcome not in PROVISIONAL_OUTCOMES:
            return _as_recorded(row)
        if nothing_sent:
            return _not_attempted(row)
        return await _read_back(reads, row)

    verdicts = list(await asyncio.gather(*(judge(row) for row in taken.rows)))
    problem = await _record(store, taken, verdicts)
    first = taken.rows[0] if taken.rows else None
    return TakeoverReport(
        request_key=taken.request_key,
        context=dict(record.reply),
        previous_owner=taken.previous_owner,
        verb=record.verb or (first.verb if first else None),
        user_id=record.user_id or (first.user_id if first else None),
        raw_text=record.raw_text or (first.raw_text if first else None),
        verdicts=tuple(verdicts),
        audit_problem=problem,
        channel_id=record.channel_id or (first.channel_id if first else None),
        nothing_sent=nothing_sent,
        plan=_plan_of(taken),
    )


def _plan_of(taken: TakenRequest) -> Plan | None:
    try:
        return plan_from_json(taken.record.plan, taken.request_key)
    except PlanUnreadable:
        return None


# -- internals ----------------------------------------------------------------------------------


def _not_attempted(row: AuditEntry) -> RoomVerdict:
    return RoomVerdict(
        row_id=row.id,
        room_id=row.room_id,
        outcome=Outcome.NOT_ATTEMPTED,
        wanted=dict(row.patch or {}),
        found=None,
        request_id=None,
        read_back=True,
    )


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
        self._seats: dict[str, asyncio.Task[SeatList]] = {}

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

    async def seats(self, room_id: str) -> SeatList:
        task = self._seats.get(room_id)
        if task is None:
            task = asyncio.ensure_future(self._read_seats(room_id))
            self._seats[room_id] = task
        return await asyncio.shield(task)

    async def _read_seats(self, room_id: str) -> SeatList:
        async with self._gate:
            return await self.reader.get_seat_list(room_id)

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
        if is_seat_target(wanted):
            return await _seat_state(reads, row.room_id, wanted, verdict)
        if account is not None and row.verb == "kick-seat":
            seats = await reads.seats(row.room_id)
            seated = seats.seat_of(account) is not None
            outcome = Outcome.NOT_APPLIED if seated else Outcome.IN_PLACE
            return verdict(outcome, found={"on_seat": seated}, request_id=seats.request_id)
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


async def _seat_state(
    reads: _Reads, room_id: str, wanted: dict[str, Any], verdict: Callable[..., RoomVerdict]
) -> RoomVerdict:
    """A seat change is in place when the seat holds every flag the request set."""
    seats = await reads.seats(room_id)
    seat = seats.seat(int(wanted[SEAT_INDEX]))
    if seat is None:
        return verdict(
            Outcome.UNKNOWN,
            request_id=seats.request_id,
            error_info=f"the room has no seat {wanted[SEAT_INDEX]} now",
        )
    flags = seat.flags()
    found = {name: flags[name] for name in wanted if name in SEAT_FLAGS}
    set_ = {name: value for name, value in wanted.items() if name in SEAT_FLAGS}
    outcome = Outcome.IN_PLACE if found == set_ else Outcome.NOT_APPLIED
    return verdict(outcome, found=found, request_id=seats.request_id)


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


async def _record(
    store: AuditStore, taken: TakenRequest, verdicts: list[RoomVerdict]
) -> str | None:
    """Complete the rows this survivor read back and mark the request done, in one fenced
    transaction. Returns what could not be recorded, or None."""
    completions = [
        (
            v.row_id,
            Completion(
                outcome=v.outcome,
                tencent_request_id=v.request_id,
                error_code=v.error_code,
                error_info=v.error_info,
                detail=VERDICT_DETAILS[v.outcome],
            ),
        )
        for v in verdicts
        if v.read_back
    ]
    try:
        await store.complete_request(taken.lease, completions)
    except AuditError as exc:
        return str(exc)
    return None
