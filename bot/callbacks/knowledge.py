"""What roombot knew of a room, and what a reported state says against it: the trail fold, the
echo rule's candidates, the difference, and the conflicts Undo respects. Pure functions; see
`bot.callbacks` for the rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bot.audit import AuditEntry, Outcome, Source
from bot.callbacks.requests import CallbackEvent
from bot.models import PATCH_FIELDS, CallbackCommand

#: The `OptPlatform` of changes made through the REST API (roombot's, among others).
REST_PLATFORM: Final = "RESTAPI"
#: Audit verbs of the rows callbacks write (source `tencent`).
OUTSIDE_UPDATE: Final = "outside-update"
OUTSIDE_DESTROY: Final = "outside-destroy"
OUTSIDE_CREATE: Final = "outside-create"
#: ... and of seat changes (`bot.callbacks.seat_changes`).
OUTSIDE_SEATS: Final = "outside-seats"

# Outcomes of one of roombot's own rows after which its change is in place.
_APPLIED: Final = frozenset({Outcome.OK, Outcome.NOOP, Outcome.IN_PLACE})
# Outcomes after which it may be (the call is running, or its answer was lost).
_MAYBE_APPLIED: Final = frozenset({Outcome.PENDING, Outcome.UNKNOWN}) | _APPLIED


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
            if row.verb == OUTSIDE_SEATS:
                continue  # seats, not the room's settings
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
        if may_have_applied(row) and row.id not in done and now - row.created_at <= window_s:
            in_flight.append(InFlight(row.id, patch, previous, destroys))
        if row.outcome in _APPLIED or row.id in done:
            if destroys:
                state, destroyed = {}, True
            else:
                state.update(patch)
                state.update(echoed.get(row.id, {}))
                destroyed = False
    return Knowledge(state=state, destroyed=destroyed, in_flight=tuple(in_flight))


def may_have_applied(row: AuditEntry) -> bool:
    """True when the call of one of roombot's own rows may have taken effect: it is running,
    succeeded, found the change in place, or failed without any answer from Tencent."""
    return row.outcome in _MAYBE_APPLIED or (
        row.outcome is Outcome.FAILED and row.error_code is None
    )


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
