"""Reading a Room Engine callback request: `authenticate` (token, SdkAppid, Sign) and
`parse_callback` (typed events, read leniently). Pure functions; see `bot.callbacks`."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bot.errors import RoombotError
from bot.models import (
    CUSTOM_INFO_MAX_BYTES,
    PATCH_FIELDS,
    ROOM_NAME_MAX_BYTES,
    SEAT_INDEX_MAX,
    CallbackCommand,
    Seat,
    account_id_problem,
    clip_utf8,
    room_id_problem,
)

#: How far `RequestTime` may be from now, either way (Tencent's advice for Live/Chat callbacks).
SIGN_MAX_SKEW_S: Final = 60.0
#: The answer Room Engine expects from a callback receiver.
OK_ANSWER: Final = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
#: The callbacks about a room's settings or existence (recorded, maybe alerted); the others
#: (members, seats) are only counted.
ROOM_COMMANDS: Final = frozenset(
    {
        CallbackCommand.CREATE_ROOM,
        CallbackCommand.DESTROY_ROOM,
        CallbackCommand.UPDATE_ROOM_INFO,
    }
)
_MAX_ACCOUNTS_KEPT: Final = 20
#: The most UTF-8 bytes kept of a reported text field: Room Engine's own limits (a longer value
#: did not come from it), and a bound for the seat mode, which is one of two short words.
_TEXT_FIELD_MAX_BYTES: Final = {
    "RoomName": ROOM_NAME_MAX_BYTES,
    "CustomInfo": CUSTOM_INFO_MAX_BYTES,
    "TakeSeatMode": 32,
}
#: The operator of a callback that names none, or something that is no account ID.
UNKNOWN_OPERATOR: Final = "(unknown)"
#: The most seats read from one seat callback's `SeatList` (a room has at most its package's
#: MaxSeatCount, tens of seats; more than this did not come from Room Engine).
MAX_SEATS_READ: Final = 1000
# An API's or a service's name in `Alert.RequestOverLimit` (it is logged and posted).
_API_NAME: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


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
    `operator` is `Operator_Account` when it is a valid account ID, else `UNKNOWN_OPERATOR`;
    `accounts` keeps only valid account IDs.
    `member_count`, `accounts` and `leave_type` are set for member callbacks; `seats` (how many
    seats the list held) and `seat_list` (the seats it reported, readable ones only, in index
    order) for seat callbacks; `over_limit` for `Alert.RequestOverLimit`, which names no room
    (`room_id` is empty). `event_ms` is `EventTime`, when it was given.
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
    seat_list: tuple[Seat, ...] = ()
    over_limit: OverLimit | None = None

    @property
    def room_level(self) -> bool:
        """True for creation, destruction and updates; False for member and seat callbacks."""
        return self.command in ROOM_COMMANDS


@dataclass(frozen=True)
class OverLimit:
    """What `Alert.RequestOverLimit` says: the API (`Command`) of service `ServiceName` ran at
    `observed` requests a second against a `limit` (Tencent's), past 80% of it."""

    api: str
    service: str | None = None
    observed: int | None = None
    limit: int | None = None


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
    except (UnicodeDecodeError, ValueError, RecursionError):  # nested past the parser's depth
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
    if command is CallbackCommand.REQUEST_OVER_LIMIT:
        return CallbackEvent(
            command=command, room_id="", operator=UNKNOWN_OPERATOR, over_limit=_over_limit(data)
        )
    common: dict[str, Any] = {
        "command": command,
        "operator": _account(data.get("Operator_Account")) or UNKNOWN_OPERATOR,
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
            room_id=room_id,
            seats=len(seats) if isinstance(seats, list) else None,
            seat_list=seat_list(seats),
            **common,
        )
    accounts = data.get("MemberList_Account")
    kept = (
        tuple(a for a in accounts if _account(a))[:_MAX_ACCOUNTS_KEPT]
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


def seat_list(value: Any) -> tuple[Seat, ...]:
    """The seats of a reported `SeatList`, read leniently (an index or a flag as a string, an
    account as a bare number, a missing flag as false), in index order. An entry that is not a
    seat (no index, an index out of range, an unreadable flag) is left out; so is an occupant
    that is no account ID; at most `MAX_SEATS_READ` entries are read."""
    if not isinstance(value, list):
        return ()
    seats: dict[int, Seat] = {}
    for item in value[:MAX_SEATS_READ]:
        if not isinstance(item, dict):
            continue
        index = _lenient_int(item.get("Index"), "Index", required=False)
        if index is None or not 0 <= index <= SEAT_INDEX_MAX:
            continue
        account = item.get("Member_Account")
        if isinstance(account, int) and not isinstance(account, bool):
            account = str(account)  # some of Tencent's samples send the account as a number
        try:
            locked, video, audio = (
                _lenient_bool(item.get(name, False), name)
                for name in ("IsTakenDisabled", "IsVideoDisabled", "IsAudioDisabled")
            )
        except CallbackInvalid:
            continue
        seats[index] = Seat(index, _account(account) or None, locked, video, audio)
    return tuple(seats[index] for index in sorted(seats))


def _over_limit(data: Mapping[str, Any]) -> OverLimit:
    api = data.get("Command")
    if not isinstance(api, str) or not _API_NAME.fullmatch(api):
        raise CallbackInvalid("Command is missing or not an API name")
    service = data.get("ServiceName")
    return OverLimit(
        api=api,
        service=service if isinstance(service, str) and _API_NAME.fullmatch(service) else None,
        observed=_lenient_int(data.get("Request"), "Request", required=False),
        limit=_lenient_int(data.get("Limit"), "Limit", required=False),
    )


def room_state(info: Mapping[str, Any]) -> dict[str, Any]:
    """The settable fields of a reported `RoomInfo`, normalised: booleans sent as the strings
    "true"/"false" become booleans, a number sent as a decimal string becomes a number, a text
    longer than Room Engine allows (RoomName 100 bytes, CustomInfo 500) is cut to fit.
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
            state[name] = clip_utf8(value, _TEXT_FIELD_MAX_BYTES.get(name, CUSTOM_INFO_MAX_BYTES))
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


def _account(value: Any) -> str:
    """`value` if it is an account ID roombot would accept (1-32 bytes, printable, no spaces),
    else "": what a callback says of people reaches the audit trail, logs and Slack, so a line
    break, a terminal escape or a paste of any length never does."""
    if isinstance(value, str) and account_id_problem(value) is None:
        return value
    return ""


def _room_id(value: Any) -> str:
    if not isinstance(value, str):
        raise CallbackInvalid("RoomId is missing or not a string")
    if room_id_problem(value) is not None:
        raise CallbackInvalid("RoomId is not a valid room ID")
    return value


def _text_param(query: Mapping[str, str], name: str) -> str | None:
    # Shown in alerts and stored: bounded, and dropped if it could break a line.
    value = _param(query, name)
    return value[:64] if value and value.isprintable() else None
