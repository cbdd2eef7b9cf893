"""Room Engine callbacks → what roombot records and alerts about. No HTTP here: the adapter's
server hands over the query and the body and answers Tencent itself.

`requests` reads a request (authentication, parsing), `knowledge` compares what it reports with
what roombot knew, `seat_changes` does the same for seats, `processor` records and decides what
to alert. Import from here.

Three steps, each usable alone:

1. `authenticate(query, token=…, sdkappid=…, now=…)`: Room callbacks carry no documented
   signature, so the URL registered with Tencent carries a secret, `?token=`, compared in
   constant time; `SdkAppid` must be ours; when `Sign` and `RequestTime` are present (the scheme
   of Live and Chat callbacks), `Sign` must be hex(sha256(token + RequestTime)) and RequestTime
   within `SIGN_MAX_SKEW_S` of now. Anything else raises `CallbackRefused` (HTTP 401).
2. `parse_callback(query, body)`: the typed `Delivery` (its event, `OptPlatform`, `ClientIP`
   and a de-duplication key), read leniently (booleans as "true"/"false", numbers as strings);
   anything unreadable raises `CallbackInvalid` (HTTP 400).
3. `CallbackProcessor`: `count()` takes member callbacks (counts only, never posted);
   `handle()` takes the room-level ones. Each delivery is de-duplicated (`AuditStore.claim` on
   its key); an update or destruction roombot made itself (an *echo*, see below) is dropped;
   any other is diffed against what roombot last knew of the room, recorded in the audit trail
   (source `tencent`) and returned as an `OutsideChange` for the adapter to post. Creations are
   recorded, not alerted. Seat callbacks and `Alert.RequestOverLimit`: below.

Seats (`Mic.CallbackAfterSeatInfoChanged`). `note_seats()` compares the reported seats with the
ones the room's last seat callback reported to this process (`seat_changes.SeatMemory`: in
memory, bounded; the first callback of a room is a baseline) without any I/O. People taking,
leaving and switching seats themselves is traffic: counted, never stored, never posted. Any
other change (a seat locked or unlocked, audio or video forbidden or allowed, a speaker removed
by a lock or by someone else, someone put on or moved between seats by someone else) goes to
`handle_seats()`: a change one of roombot's own seat requests made is its echo (the same rule
as for rooms: the operator is roombot's administrator, or not given, since Tencent's newer
seat callbacks drop `Operator_Account`; the platform the REST API or not given; a request of
roombot's for that room written within `ECHO_WINDOW_S` whose call may have taken effect, that
set that flag on that seat, or took that member off their seat with `kick-seat`). Such a
request may explain several callbacks: Tencent may report a lock's removal of the occupant and
the lock itself apart. The other changes are recorded as one row (verb `outside-seats`; the
seats involved, before in `previous`, after in `patch`), which `history` shows; only a lock or
a removal is returned as an `OutsideChange` to alert. Without `Operator_Account`, a speaker
taken off a seat by someone else cannot be told from one who left: it counts as leaving.

`Alert.RequestOverLimit` (Tencent: an API passed 80% of its limit; documented for Chat, not
said to be sent for Room Engine). `over_limit()` halves roombot's own rate budget for the API it
names, on every replica, for `bot.budget.HALVE_S` seconds (a later warning extends it), counts
it, and returns a `RateWarning` to alert only when the halving starts: one alert however many
warnings, whichever replica receives them. An API roombot does not call is only counted.

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

from bot.callbacks.knowledge import (
    OUTSIDE_CREATE,
    OUTSIDE_DESTROY,
    OUTSIDE_SEATS,
    OUTSIDE_UPDATE,
    REST_PLATFORM,
    Difference,
    InFlight,
    Knowledge,
    difference,
    echo_candidates,
    fold_trail,
    outside_conflicts,
    settable,
)
from bot.callbacks.processor import (
    ECHO_WINDOW_S,
    ECHOES_KEPT,
    TRAIL_ROWS,
    CallbackProcessor,
    Handled,
    Handling,
    MemberCounts,
    SeatNews,
)
from bot.callbacks.requests import (
    OK_ANSWER,
    ROOM_COMMANDS,
    SIGN_MAX_SKEW_S,
    UNKNOWN_OPERATOR,
    CallbackError,
    CallbackEvent,
    CallbackInvalid,
    CallbackRefused,
    Delivery,
    OverLimit,
    authenticate,
    callback_sign,
    parse_callback,
    room_state,
    seat_list,
)
from bot.callbacks.seat_changes import (
    SEAT_ROOMS_KEPT,
    SeatMemory,
    row_events,
    seat_events,
)

__all__ = [
    "ECHOES_KEPT",
    "ECHO_WINDOW_S",
    "OK_ANSWER",
    "OUTSIDE_CREATE",
    "OUTSIDE_DESTROY",
    "OUTSIDE_SEATS",
    "OUTSIDE_UPDATE",
    "REST_PLATFORM",
    "ROOM_COMMANDS",
    "SEAT_ROOMS_KEPT",
    "SIGN_MAX_SKEW_S",
    "TRAIL_ROWS",
    "UNKNOWN_OPERATOR",
    "CallbackError",
    "CallbackEvent",
    "CallbackInvalid",
    "CallbackProcessor",
    "CallbackRefused",
    "Delivery",
    "Difference",
    "Handled",
    "Handling",
    "InFlight",
    "Knowledge",
    "MemberCounts",
    "OverLimit",
    "SeatMemory",
    "SeatNews",
    "authenticate",
    "callback_sign",
    "difference",
    "echo_candidates",
    "fold_trail",
    "outside_conflicts",
    "parse_callback",
    "room_state",
    "row_events",
    "seat_events",
    "seat_list",
    "settable",
]
