"""Room Engine callbacks → what roombot records and alerts about. No HTTP here: the adapter's
server hands over the query and the body and answers Tencent itself.

Three steps, each usable alone:

1. `authenticate(query, token=…, sdkappid=…, now=…)`: Room callbacks carry no documented
   signature, so the URL registered with Tencent carries a secret, `?token=`, compared in
   constant time; `SdkAppid` must be ours; when `Sign` and `RequestTime` are present (the scheme
   of Live and Chat callbacks), `Sign` must be hex(sha256(token + RequestTime)) and RequestTime
   within `SIGN_MAX_SKEW_S` of now. Anything else raises `CallbackRefused` (HTTP 401).
2. `parse_callback(query, body)`: the typed `Delivery` (its event, `OptPlatform`, `ClientIP`
   and a de-duplication key), read leniently (booleans as "true"/"false", numbers as strings);
   anything unreadable raises `CallbackInvalid` (HTTP 400).
3. `CallbackProcessor`: `count()` takes member and seat callbacks (counts only, never posted);
   `handle()` takes the room-level ones. Each delivery is de-duplicated (`AuditStore.claim` on
   its key); an update or destruction roombot made itself (an *echo*, see below) is dropped;
   any other is diffed against what roombot last knew of the room, recorded in the audit trail
   (source `tencent`) and returned as an `OutsideChange` for the adapter to post. Creations are
   recorded, not alerted.

What roombot last knew of a room (`fold_trail`) comes from its audit trail
(`AuditStore.room_trail`): the values its requests read before writing (`previous`), the values
they set once Tencent confirmed them (`patch`), and what earlier callbacks reported. Only the
fields `update_room_info` can set are compared.

The echo rule. A callback is roombot's own change echoed back when

* its operator is roombot's administrator account (`TENCENT_ADMIN_ID`) and its `OptPlatform` is
  `RESTAPI` (or absent) — necessary, not sufficient: the platform's own backend may well call
  the REST API as the same administrator; and
* it matches one of roombot's own requests for that room (a row not from a callback) that was
  written at most `ECHO_WINDOW_S` seconds before the callback arrived, whose call may have taken
  effect (pending, ok, no-op, unknown, in place, or failed without any answer from Tencent), and
  that no earlier callback was matched to: every field the request set that the callback
  reports has the value the request set (for a destruction: the request destroyed the room),
  and every other field the callback reports has a value roombot expects (what it knew, or a
  value one of its own requests still in flight set or found). Requests are tried oldest
  first; the match is claimed in the store (`echo:<row id>`), so one request explains one
  callback even across replicas.

`ECHO_WINDOW_S` is 30 s: roombot writes its row before the call, a call gives up after about
15 s (its retry budget plus one timeout), and Room Engine calls back right after the change; a
request older than that which was never matched (callbacks were off, one was lost) must not
excuse a later change made by someone else with the same values.

Outside the echo, a value counts as changed only when no request of roombot's explains it: a
field one of its unmatched recent requests set (or read just before) may hold either value
without an alert, which keeps a change made by someone else while roombot's own call was in
flight from being reported as an undo of roombot's change. Once roombot's own echo has arrived,
comparisons are strict again: someone unmuting a room roombot has just muted is reported.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from bot.audit import AuditEntry, AuditError, AuditStore, NewEntry, Outcome, Source
from bot.errors import RoombotError
from bot.models import (
    PATCH_FIELDS,
    CallbackCommand,
    room_id_problem,
)
from bot.outcomes import ChangeKind, OutsideChange

log = logging.getLogger(__name__)

#: How far `RequestTime` may be from now, either way (Tencent's advice for Live/Chat callbacks).
SIGN_MAX_SKEW_S: Final = 60.0
#: How long after roombot writes a request's row a callback may still be that request's echo.
ECHO_WINDOW_S: Final = 30.0
#: How many of a room's newest rows `fold_trail` reads to learn what roombot knew of it.
TRAIL_ROWS: Final = 100
#: Rooms whose last echoed state one process keeps (see `CallbackProcessor`).
ECHOES_KEPT: Final = 10_000
#: The answer Room Engine expects from a callback receiver.
OK_ANSWER: Final = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
#: The `OptPlatform` of changes made through the REST API (roombot's, among others).
REST_PLATFORM: Final = "RESTAPI"

#: Audit verbs of the rows callbacks write (source `tencent`).
OUTSIDE_UPDATE: Final = "outside-update"
OUTSIDE_DESTROY: Final = "outside-destroy"
OUTSIDE_CREATE: Final = "outside-create"
OUTSIDE_VERBS: Final = frozenset({OUTSIDE_UPDATE, OUTSIDE_DESTROY, OUTSIDE_CREATE})

#: The callbacks about a room's settings or existence (recorded, maybe alerted).
ROOM_COMMANDS: Final = frozenset(
    {
        CallbackCommand.CREATE_ROOM,
        CallbackCommand.DESTROY_ROOM,
        CallbackCommand.UPDATE_ROOM_INFO,
    }
)
#: The callbacks about members and seats (counted only).
MEMBER_COMMANDS: Final = frozenset(set(CallbackCommand) - ROOM_COMMANDS)

# Outcomes of one of roombot's own rows after which its change is in place.
_APPLIED: Final = frozenset({Outcome.OK, Outcome.NOOP, Outcome.IN_PLACE})
# Outcomes after which it may be (the call is running, or its answer was lost).
_MAYBE_APPLIED: Final = frozenset({Outcome.PENDING, Outcome.UNKNOWN}) | _APPLIED
_UNKNOWN_OPERATOR: Final = "(unknown)"
_MAX_ACCOUNTS_KEPT: Final = 20


# -- errors -----------------------------------------------------------------------------------


class CallbackError(RoombotError):
    """A callback request roombot will not take; `status` is the HTTP status to answer.

    The message is one short line for the log: it never quotes the token or the body.
    """

    status: int = 400


class CallbackRefused(CallbackError):
    """The request did not prove it comes from our Room Engine app (HTTP 401)."""

    status = 401


class CallbackInvalid(CallbackError):
    """The request is authentic but unreadable: bad JSON, no or an unknown command (HTTP 400)."""

    status = 400


# -- 1. authentication --------------------------------------------------------------------------


def callback_sign(token: str, request_time: str | int) -> str:
    """hex(sha256(token + RequestTime)): the token immediately followed by the decimal time."""
    return hashlib.sha256(f"{token}{request_time}".encode()).hexdigest()


def authenticate(
    query: Mapping[str, str],
    *,
    token: str,
    sdkappid: int,
    now: float,
    max_skew_s: float = SIGN_MAX_SKEW_S,
) -> None:
    """Raise `CallbackRefused` unless `query` carries our token, our SdkAppid and, when it has
    a `Sign` or a `RequestTime`, a valid and fresh pair of them. See the module docstring."""
    if not token:
        raise ValueError("the callback token must not be empty")
    given = query.get("token", "")
    if not given:
        raise CallbackRefused("no token")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise CallbackRefused("wrong token")
    app = _param(query, "SdkAppid")
    if not app:
        raise CallbackRefused("no SdkAppid")
    if app != str(sdkappid):
        raise CallbackRefused("another SdkAppid")
    sign = _param(query, "Sign")
    request_time = _param(query, "RequestTime")
    if sign is None and request_time is None:
        return
    if not sign or not request_time or not request_time.isdigit():
        raise CallbackRefused("Sign and RequestTime must come together")
    if abs(now - int(request_time)) > max_skew_s:
        raise CallbackRefused("stale RequestTime")
    expected = callback_sign(token, request_time)
    if not hmac.compare_digest(sign.lower().encode(), expected.encode()):
        raise CallbackRefused("wrong Sign")


def _param(query: Mapping[str, str], name: str) -> str | None:
    """A Tencent query parameter, by its documented name or any other case of it."""
    if name in query:
        return query[name]
    lowered = name.lower()
    for key, value in query.items():
        if key.lower() == lowered:
            return value
    return None


# -- 2. parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackEvent:
    """One callback's content, typed.

    `state` (room updates and creations) holds the reported values of the fields
    `update_room_info` can set, by API name, with JSON types (booleans as booleans).
    `member_count`, `accounts` and `leave_type` are set for member callbacks, `seats` (how many
    seats the list held) for seat callbacks. `event_ms` is `EventTime`, when it was given.
    """

    command: CallbackCommand
    room_id: str
    operator: str
    event_ms: int | None = None
    state: Mapping[str, Any] = field(default_factory=dict)
    member_count: int | None = None
    accounts: tuple[str, ...] = ()
    leave_type: str | None = None
    seats: int | None = None

    @property
    def room_level(self) -> bool:
        """True for creation, destruction and updates; False for member and seat callbacks."""
        return self.command in ROOM_COMMANDS


@dataclass(frozen=True)
class Delivery:
    """A callback as it arrived: the event, `OptPlatform` and `ClientIP` from the query, and
    `key`, the same for every delivery of the same event (command, room, EventTime, body);
    empty for member and seat callbacks, which are never stored."""

    event: CallbackEvent
    platform: str | None
    client_ip: str | None
    key: str


def parse_callback(query: Mapping[str, str], body: bytes) -> Delivery:
    """Read a callback request; `CallbackInvalid` (one line, quoting nothing from the body) if
    it is not JSON, names no or an unknown command, or lacks what its command needs."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CallbackInvalid("the body is not JSON") from None
    if not isinstance(data, dict):
        raise CallbackInvalid("the body is not a JSON object")
    command = _command(query, data)
    event = _event(command, data)
    # Only room-level callbacks are de-duplicated (stored); member ones, by far the most
    # frequent, skip the hashing.
    key = _delivery_key(event, data) if event.room_level else ""
    return Delivery(
        event=event,
        platform=_text_param(query, "OptPlatform"),
        client_ip=_text_param(query, "ClientIP"),
        key=key,
    )


def _delivery_key(event: CallbackEvent, data: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(
        json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()
    key_text = f"{event.command.value}|{event.room_id}|{event.event_ms}|{digest}"
    return "callback:" + hashlib.sha256(key_text.encode()).hexdigest()[:40]


def _command(query: Mapping[str, str], data: Mapping[str, Any]) -> CallbackCommand:
    in_query = _param(query, "CallbackCommand")
    in_body = data.get("CallbackCommand")
    if in_body is not None and not isinstance(in_body, str):
        raise CallbackInvalid("CallbackCommand in the body is not a string")
    if in_query and in_body and in_query != in_body:
        raise CallbackInvalid("CallbackCommand differs between the query and the body")
    name = in_query or in_body
    if not name:
        raise CallbackInvalid("no CallbackCommand")
    try:
        return CallbackCommand(name)
    except ValueError:
        raise CallbackInvalid("unknown CallbackCommand") from None


def _event(command: CallbackCommand, data: Mapping[str, Any]) -> CallbackEvent:
    operator = data.get("Operator_Account")
    common: dict[str, Any] = {
        "command": command,
        "operator": operator if isinstance(operator, str) else "",
        "event_ms": _lenient_int(data.get("EventTime"), "EventTime", required=False),
    }
    if command in (CallbackCommand.UPDATE_ROOM_INFO, CallbackCommand.CREATE_ROOM):
        info = data.get("RoomInfo")
        if not isinstance(info, dict):
            raise CallbackInvalid("RoomInfo is missing or not an object")
        room_id = _room_id(info.get("RoomId", data.get("RoomId")))
        return CallbackEvent(room_id=room_id, state=room_state(info), **common)
    info = data.get("RoomInfo")
    fallback = info.get("RoomId") if isinstance(info, dict) else None
    room_id = _room_id(data.get("RoomId", fallback))
    if command is CallbackCommand.DESTROY_ROOM:
        return CallbackEvent(room_id=room_id, **common)
    if command is CallbackCommand.SEAT_INFO_CHANGED:
        seats = data.get("SeatList")
        return CallbackEvent(
            room_id=room_id, seats=len(seats) if isinstance(seats, list) else None, **common
        )
    accounts = data.get("MemberList_Account")
    kept = (
        tuple(a for a in accounts if isinstance(a, str))[:_MAX_ACCOUNTS_KEPT]
        if isinstance(accounts, list)
        else ()
    )
    kind = data.get("Type")
    return CallbackEvent(
        room_id=room_id,
        member_count=_lenient_int(data.get("MemberCount"), "MemberCount", required=False),
        accounts=kept,
        leave_type=kind if isinstance(kind, str) else None,
        **common,
    )


def room_state(info: Mapping[str, Any]) -> dict[str, Any]:
    """The settable fields of a reported `RoomInfo`, normalised: booleans sent as the strings
    "true"/"false" become booleans, a number sent as a decimal string becomes a number.
    `CallbackInvalid` names a field whose value cannot be read as its type."""
    state: dict[str, Any] = {}
    for name, kind in PATCH_FIELDS.items():
        if name not in info or info[name] is None:
            continue
        value = info[name]
        if kind is bool:
            state[name] = _lenient_bool(value, name)
        elif kind is int:
            state[name] = _lenient_int(value, name, required=True)
        elif isinstance(value, str):
            state[name] = value
        else:
            raise CallbackInvalid(f"{name} is not a string")
    return state


def _lenient_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise CallbackInvalid(f"{name} is not a boolean")


def _lenient_int(value: Any, name: str, *, required: bool) -> int | None:
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 20:
        return int(value.strip())
    if not required:
        return None
    raise CallbackInvalid(f"{name} is not a whole number")


def _room_id(value: Any) -> str:
    if not isinstance(value, str):
        raise CallbackInvalid("RoomId is missing or not a string")
    if room_id_problem(value) is not None:
        raise CallbackInvalid("RoomId is not a valid room ID")
    return value


def _text_param(query: Mapping[str, str], name: str) -> str | None:
    value = _param(query, name)
    return value[:64] if value else None


# -- what roombot knew ----------------------------------------------------------------------------


@dataclass(frozen=True)
class InFlight:
    """One of roombot's own recent requests for a room that no callback has been matched to
    yet: what it set (`patch`, settable fields only; empty for a destruction) and read before
    (`previous`)."""

    row_id: int
    patch: Mapping[str, Any]
    previous: Mapping[str, Any]
    destroys: bool = False


@dataclass(frozen=True)
class Knowledge:
    """What roombot knew of a room: the values it believed the room held (`state`), whether it
    believed the room destroyed, and its own requests that may still be echoed back."""

    state: Mapping[str, Any] = field(default_factory=dict)
    destroyed: bool = False
    in_flight: tuple[InFlight, ...] = ()

    def knows(self, name: str) -> bool:
        """True when roombot knew (or is itself setting) the value of field `name`."""
        return name in self.state or any(
            name in f.patch or name in f.previous for f in self.in_flight
        )

    def expected(self, name: str) -> list[Any]:
        """Every value of field `name` that roombot's knowledge or its own requests explain."""
        values = [self.state[name]] if name in self.state else []
        for request in self.in_flight:
            values += [v[name] for v in (request.patch, request.previous) if name in v]
        return values

    def explains(self, name: str, value: Any) -> bool:
        """True when `value` of field `name` is one roombot expects (see `expected`)."""
        return any(_same(value, known) for known in self.expected(name))


def fold_trail(
    rows: Iterable[AuditEntry],
    *,
    matched: Iterable[int],
    now: float,
    window_s: float,
    echoed: Mapping[int, Mapping[str, Any]] | None = None,
) -> Knowledge:
    """What roombot knew of a room, from its trail rows in the order they were written.

    A request of roombot's contributes what it read before writing (`previous`) and, once its
    change is in place (ok, no-op, in place, or matched by an echo: `matched` holds those row
    ids), what it set, then what its echo reported of the whole room (`echoed`, by row id, when
    this process saw the echo). Its unmatched rows written within `window_s` of `now` whose
    change may be in place are in flight. A callback row contributes what it reported; a
    destruction forgets everything, a creation starts afresh.
    """
    echoed = echoed or {}
    state: dict[str, Any] = {}
    destroyed = False
    in_flight: list[InFlight] = []
    done = set(matched)
    for row in rows:
        patch = settable(row.patch)
        if row.source == Source.TENCENT:
            if row.verb == OUTSIDE_DESTROY:
                state, destroyed = {}, True
            elif row.verb == OUTSIDE_CREATE:
                state, destroyed = dict(patch), False
            else:
                state.update(patch)
                destroyed = False
            continue
        destroys = row.verb == "destroy"
        if not patch and not destroys:
            continue  # a member verb, or a row with nothing settable
        previous = settable(row.previous)
        state.update(previous)
        maybe = row.outcome in _MAYBE_APPLIED or (
            row.outcome is Outcome.FAILED and row.error_code is None
        )
        if maybe and row.id not in done and now - row.created_at <= window_s:
            in_flight.append(InFlight(row.id, patch, previous, destroys))
        if row.outcome in _APPLIED or row.id in done:
            if destroys:
                state, destroyed = {}, True
            else:
                state.update(patch)
                state.update(echoed.get(row.id, {}))
                destroyed = False
    return Knowledge(state=state, destroyed=destroyed, in_flight=tuple(in_flight))


def settable(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Those of `values` that `update_room_info` can set (member rows hold none)."""
    return {k: v for k, v in (values or {}).items() if k in PATCH_FIELDS}


def echo_candidates(
    event: CallbackEvent, platform: str | None, knowledge: Knowledge, *, admin_id: str
) -> list[InFlight]:
    """roombot's requests `event` may be the echo of, oldest first (see the module docstring).

    Empty unless the operator is `admin_id` and the platform is the REST API (or not given).
    """
    if event.operator != admin_id or (platform and platform != REST_PLATFORM):
        return []
    if event.command is CallbackCommand.DESTROY_ROOM:
        return [f for f in knowledge.in_flight if f.destroys]
    if event.command is not CallbackCommand.UPDATE_ROOM_INFO:
        return []
    found = []
    for request in knowledge.in_flight:
        if request.destroys:
            continue
        shared = [name for name in request.patch if name in event.state]
        if not shared or any(not _same(event.state[n], request.patch[n]) for n in shared):
            continue
        others = (n for n in event.state if n not in request.patch and knowledge.knows(n))
        if all(knowledge.explains(n, event.state[n]) for n in others):
            found.append(request)
    return found


@dataclass(frozen=True)
class Difference:
    """How a reported state differs from what roombot knew: new values of known fields that
    changed (`changed`, with the known values in `before`), and fields it knew nothing of."""

    changed: dict[str, Any]
    before: dict[str, Any]
    reported: dict[str, Any]

    @property
    def empty(self) -> bool:
        """True when nothing changed and nothing new was learnt."""
        return not self.changed and not self.reported


def difference(state: Mapping[str, Any], knowledge: Knowledge) -> Difference:
    """Compare a reported state with what roombot knew; values its own requests explain are
    not changes (see the module docstring)."""
    changed: dict[str, Any] = {}
    before: dict[str, Any] = {}
    reported: dict[str, Any] = {}
    for name, value in state.items():
        if not knowledge.knows(name):
            reported[name] = value
        elif not knowledge.explains(name, value):
            changed[name] = value
            if name in knowledge.state:
                before[name] = knowledge.state[name]
    return Difference(changed, before, reported)


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; a boolean field never equals a number here.
    return type(a) is type(b) and a == b


# -- 3. processing --------------------------------------------------------------------------------


class Handling(StrEnum):
    """What became of one delivery (also the `outcome` label of the callbacks metric)."""

    COUNTED = "counted"  # a member or seat callback: counted, never posted
    DUPLICATE = "duplicate"  # a repeated delivery of an event already handled
    ECHO = "echo"  # roombot's own change, echoed back
    UNCHANGED = "unchanged"  # recorded; nothing roombot knew changed, so no alert
    RECORDED = "recorded"  # a creation: recorded, no alert
    OUTSIDE = "outside"  # recorded, and to be alerted
    UNRECORDED = "unrecorded"  # the audit store failed: alerted unchecked, not recorded


@dataclass(frozen=True)
class Handled:
    """The result of one delivery: what became of it, the change to alert (if any), its audit
    row, and the row of roombot's request it echoed."""

    handling: Handling
    change: OutsideChange | None = None
    row_id: int | None = None
    echo_of: int | None = None


class MemberCounts:
    """The newest member count member callbacks reported per room (the newest `max_rooms`
    rooms), for `show` to display; reads never block."""

    def __init__(self, max_rooms: int = 10_000) -> None:
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._max = max_rooms

    def note(self, room_id: str, count: int, at: float) -> None:
        """Record `count` members in `room_id` at `at` (an older report never wins)."""
        known = self._counts.get(room_id)
        if known is not None and known[1] > at:
            return
        self._counts[room_id] = (count, at)
        self._counts.move_to_end(room_id)
        while len(self._counts) > self._max:
            self._counts.popitem(last=False)

    def get(self, room_id: str) -> tuple[int, float] | None:
        """The newest count and when it was reported (Unix seconds), or None."""
        return self._counts.get(room_id)

    def __len__(self) -> int:
        return len(self._counts)


class CallbackProcessor:
    """Turns deliveries into audit rows and `OutsideChange`s; see the module docstring.

    `admin_id` is roombot's administrator account; `clock` gives Unix seconds (the store's
    clock, so windows compare like with like). Room-level deliveries are meant to be handled
    one at a time, in arrival order (the adapter's queue does that).
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        admin_id: str,
        clock: Callable[[], float] = time.time,
        echo_window_s: float = ECHO_WINDOW_S,
        members: MemberCounts | None = None,
    ) -> None:
        self._store = store
        self._admin_id = admin_id
        self._clock = clock
        self._window_s = echo_window_s
        self.members = members if members is not None else MemberCounts()
        # room → (row id, state): what the newest echo this process saw reported of the room.
        # Echoes are not recorded, yet they report every field; this keeps alerts about the
        # next change precise (a replica that did not see the echo just knows less).
        self._echoed: OrderedDict[str, tuple[int, Mapping[str, Any]]] = OrderedDict()

    def count(self, delivery: Delivery) -> Handled:
        """A member or seat callback: note the member count; nothing is stored or posted."""
        event = delivery.event
        if event.room_level:
            raise ValueError("count() takes member and seat callbacks; use handle()")
        if event.member_count is not None:
            at = event.event_ms / 1000 if event.event_ms is not None else self._clock()
            self.members.note(event.room_id, event.member_count, at)
        # metrics: roombot_callbacks_total{command=event.command, outcome="counted"}
        return Handled(Handling.COUNTED)

    async def handle(self, delivery: Delivery) -> Handled:
        """Any callback. Room-level ones are de-duplicated, matched against roombot's own
        requests, recorded and returned as an `OutsideChange` to alert when they are one.

        A failing audit store is logged and reported as `UNRECORDED`, with the change to alert
        marked as unchecked; it never raises `AuditError`.
        """
        event = delivery.event
        if not event.room_level:
            return self.count(delivery)
        try:
            handled = await self._handle_room(delivery)
        except AuditError as exc:
            log.error(
                "callback %s for room %s not recorded, the audit store failed: %s",
                event.command.value,
                event.room_id,
                exc,
            )
            handled = self._unrecorded(delivery)
        # metrics: roombot_callbacks_total{command=event.command, outcome=handled.handling}
        return handled

    async def _handle_room(self, delivery: Delivery) -> Handled:
        event = delivery.event
        if not await self._store.claim(delivery.key):
            return Handled(Handling.DUPLICATE)
        knowledge = await self.knowledge(event.room_id)
        for request in echo_candidates(
            event, delivery.platform, knowledge, admin_id=self._admin_id
        ):
            if await self._store.claim(_echo_key(request.row_id)):
                self._remember_echo(event, request.row_id)
                return Handled(Handling.ECHO, echo_of=request.row_id)
        if event.command is CallbackCommand.CREATE_ROOM:
            row_id = await self._record(delivery, OUTSIDE_CREATE, dict(event.state), None, True)
            return Handled(Handling.RECORDED, row_id=row_id)
        if event.command is CallbackCommand.DESTROY_ROOM:
            row_id = await self._record(delivery, OUTSIDE_DESTROY, {}, dict(knowledge.state), True)
            change = self._change(delivery, ChangeKind.DESTROYED, row_id=row_id)
            return Handled(Handling.OUTSIDE, change=change, row_id=row_id)
        diff = difference(event.state, knowledge)
        patch = {**diff.changed, **diff.reported}
        row_id = await self._record(
            delivery, OUTSIDE_UPDATE, patch, diff.before or None, not diff.empty
        )
        if diff.empty:
            return Handled(Handling.UNCHANGED, row_id=row_id)
        change = self._change(
            delivery,
            ChangeKind.UPDATED,
            changed=diff.changed,
            before=diff.before,
            reported=diff.reported,
            row_id=row_id,
        )
        return Handled(Handling.OUTSIDE, change=change, row_id=row_id)

    async def knowledge(self, room_id: str) -> Knowledge:
        """What roombot knows of `room_id` now (its trail folded; see `fold_trail`)."""
        rows = list(reversed(await self._store.room_trail(room_id, limit=TRAIL_ROWS)))
        now = self._clock()
        window = self._window_s
        recent = [r.id for r in rows if r.source != Source.TENCENT and now - r.created_at <= window]
        claimed = await self._store.claimed([_echo_key(i) for i in recent])
        matched = [i for i in recent if _echo_key(i) in claimed]
        seen = self._echoed.get(room_id)
        return fold_trail(
            rows,
            matched=matched,
            now=now,
            window_s=self._window_s,
            echoed={seen[0]: seen[1]} if seen is not None else None,
        )

    def _remember_echo(self, event: CallbackEvent, row_id: int) -> None:
        if event.command is not CallbackCommand.UPDATE_ROOM_INFO:
            self._echoed.pop(event.room_id, None)
            return
        self._echoed[event.room_id] = (row_id, dict(event.state))
        self._echoed.move_to_end(event.room_id)
        while len(self._echoed) > ECHOES_KEPT:
            self._echoed.popitem(last=False)

    async def _record(
        self,
        delivery: Delivery,
        verb: str,
        patch: dict[str, Any],
        previous: dict[str, Any] | None,
        changed: bool,
    ) -> int:
        event = delivery.event
        row = NewEntry(
            request_key=delivery.key.replace("callback:", "tencent-", 1),
            source=Source.TENCENT.value,
            user_id=event.operator or _UNKNOWN_OPERATOR,
            verb=verb,
            raw_text=f"{event.command.value} (OptPlatform {delivery.platform or 'not given'})",
            room_id=event.room_id,
            patch=patch,
            previous=previous,
            outcome=Outcome.OK if changed else Outcome.NOOP,
            detail=_detail(delivery, patch, previous),
        )
        (row_id,) = await self._store.record([row])
        return row_id

    def _change(self, delivery: Delivery, kind: ChangeKind, **fields: Any) -> OutsideChange:
        event = delivery.event
        at = event.event_ms / 1000 if event.event_ms is not None else self._clock()
        return OutsideChange(
            kind=kind,
            room_id=event.room_id,
            operator=event.operator or _UNKNOWN_OPERATOR,
            platform=delivery.platform,
            at=at,
            **fields,
        )

    def _unrecorded(self, delivery: Delivery) -> Handled:
        event = delivery.event
        if event.command is CallbackCommand.CREATE_ROOM:
            return Handled(Handling.UNRECORDED)
        kind = (
            ChangeKind.DESTROYED
            if event.command is CallbackCommand.DESTROY_ROOM
            else ChangeKind.UPDATED
        )
        note = (
            "the audit trail could not be read or written, so this was neither recorded nor "
            "checked against roombot's own requests"
        )
        change = self._change(delivery, kind, reported=dict(event.state), note=note)
        return Handled(Handling.UNRECORDED, change=change)


def _echo_key(row_id: int) -> str:
    return f"echo:{row_id}"


def _detail(
    delivery: Delivery, patch: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> str:
    event = delivery.event
    parts = ["reported by a Room Engine callback"]
    if event.event_ms is not None:
        moment = datetime.fromtimestamp(event.event_ms / 1000, UTC)
        parts.append(f"EventTime {moment.isoformat(timespec='milliseconds')}")
    if delivery.client_ip:
        parts.append(f"ClientIP {delivery.client_ip}")
    if event.command is CallbackCommand.UPDATE_ROOM_INFO:
        unknown = [name for name in patch if previous is None or name not in previous]
        if not patch:
            parts.append("nothing roombot knew of changed")
        elif unknown:
            parts.append("roombot did not know before: " + ", ".join(unknown))
    return "; ".join(parts)


def outside_conflicts(
    rows: Sequence[AuditEntry], *, after_row: int, fields: Iterable[str]
) -> list[AuditEntry]:
    """The rows of `rows` recording a change made outside roombot after row `after_row` that
    touched any of `fields` (or destroyed or re-created the room), oldest first. Undo leaves
    such a room alone."""
    wanted = set(fields)
    found = [
        row
        for row in rows
        if row.source == Source.TENCENT
        and row.id > after_row
        and row.outcome is Outcome.OK
        and (row.verb in (OUTSIDE_DESTROY, OUTSIDE_CREATE) or wanted & set(row.patch or {}))
    ]
    return sorted(found, key=lambda row: row.id)
