"""A `Plan` as the request record keeps it: JSON that any replica can turn back into the plan.

A plan is recorded when its request is received (`bot.audit.NewRequest.plan`), so a replica
that takes the request over, or runs it later (scheduled, approved), knows exactly what was
asked: the command, who asked, the calls, and for an undo what must still hold. The shape has a
version (`v`); a record written by a newer roombot is refused rather than misread.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from bot.audit import NewRequest, RequestState, Source
from bot.commands import Command, clip_for_audit
from bot.errors import RoombotError
from bot.models import (
    Call,
    DestroyCall,
    LockSeatCall,
    MemberCall,
    RoomPatch,
    SeatChange,
    SeatKickCall,
)
from bot.outcomes import Actor, Failure, FailureKind, Plan, RunKind

#: The version of the recorded shape.
PLAN_VERSION: Final = 1

#: The call types a plan can hold, by the name the record gives them.
CALL_TYPES: Final[dict[str, type[BaseModel]]] = {
    "room_patch": RoomPatch,
    "member_call": MemberCall,
    "destroy_call": DestroyCall,
    "seat_change": SeatChange,
    "lock_seat_call": LockSeatCall,
    "seat_kick_call": SeatKickCall,
}
_NAME_OF: Final = {cls: name for name, cls in CALL_TYPES.items()}


class PlanUnreadable(RoombotError):
    """A recorded plan that this roombot cannot turn back into a plan."""


def new_request(
    plan: Plan,
    address: dict[str, object],
    dedupe_key: str | None,
    *,
    run_after: float | None = None,
    waiting: RequestState | None = None,
    expires_at: float | None = None,
) -> NewRequest:
    """The record of `plan`, reported at `address` (to run at `run_after`, or waiting in
    `waiting`, until `expires_at` for an approval, when no replica carries it out at once)."""
    command = plan.command
    actor = plan.actor
    verb = plan.kind.value if plan.kind in (RunKind.UNDO, RunKind.REVERT) else command.verb
    return NewRequest(
        request_key=plan.request_key,
        kind=plan.kind.value,
        source=actor.source.value,
        user_id=actor.user_id,
        verb=verb,
        raw_text=clip_for_audit(plan.raw_text),
        plan=plan_to_json(plan),
        reply=dict(address),
        team_id=actor.team_id,
        channel_id=actor.channel_id,
        reason=command.reason,
        dedupe_key=dedupe_key,
        run_after=run_after,
        waiting=waiting,
        expires_at=expires_at,
    )


def revert_dedupe_key(request_key: str) -> str:
    """The dedupe key of the revert of time-boxed request `request_key`: one revert each."""
    return f"revert:{request_key}"


def reverted_key(record_dedupe_key: str | None) -> str | None:
    """The time-boxed request a revert's record reverts (from its dedupe key), or None."""
    if record_dedupe_key is None or not record_dedupe_key.startswith("revert:"):
        return None
    return record_dedupe_key.removeprefix("revert:")


def revert_request(plan: Plan, address: dict[str, object], due: float) -> NewRequest:
    """The record of the revert of time-boxed `plan` (DESIGN §2.11), due at `due` and reported
    at `address` (the change's own thread). It holds the change as asked (rooms, fields,
    values, who); the values read before are the change's audit rows, read when it is due."""
    revert = Plan(
        command=plan.command,
        actor=plan.actor,
        calls=plan.calls,
        raw_text=f"revert {plan.command.canonical_text()}",
        kind=RunKind.REVERT,
    )
    return new_request(revert, address, revert_dedupe_key(plan.request_key), run_after=due)


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """`plan` as JSON-ready data (`plan_from_json` reads it back)."""
    command = plan.command
    actor = plan.actor
    return {
        "v": PLAN_VERSION,
        "kind": plan.kind.value,
        "raw_text": plan.raw_text,
        "command": _command_to_json(command),
        "actor": {
            "user_id": actor.user_id,
            "source": actor.source.value,
            "team_id": actor.team_id,
            "channel_id": actor.channel_id,
            "is_operator": actor.is_operator,
        },
        "calls": [_call_to_json(call) for call in plan.calls],
        "undo_of": [[room, account, row] for (room, account), row in (plan.undo_of or {}).items()],
        "expected": dict(plan.expected) if plan.expected is not None else None,
        "conflicts": {
            room: {
                "kind": failure.kind.value,
                "message": failure.message,
                "hint": failure.hint,
                "code": failure.code,
                "request_id": failure.request_id,
            }
            for room, failure in (plan.conflicts or {}).items()
        }
        or None,
        "notes": list(plan.notes),
    }


def plan_from_json(data: dict[str, Any], request_key: str) -> Plan:
    """The plan recorded as `data` for request `request_key`. Raises `PlanUnreadable`."""
    if data.get("v") != PLAN_VERSION:
        raise PlanUnreadable(f"request {request_key}: no plan this roombot can read")
    try:
        command = Command(**dict(data["command"]))
        raw_actor = dict(data["actor"])
        actor = Actor(
            user_id=str(raw_actor["user_id"]),
            source=Source(raw_actor["source"]),
            team_id=raw_actor.get("team_id"),
            channel_id=raw_actor.get("channel_id"),
            is_operator=bool(raw_actor.get("is_operator")),
        )
        calls = tuple(_call_from_json(item) for item in data.get("calls") or ())
        undo_of = {
            (str(room), account): int(row) for room, account, row in data.get("undo_of") or ()
        }
        conflicts = {
            str(room): Failure(
                kind=FailureKind(item["kind"]),
                message=str(item["message"]),
                hint=str(item["hint"]),
                code=item.get("code"),
                request_id=item.get("request_id"),
            )
            for room, item in (data.get("conflicts") or {}).items()
        }
        return Plan(
            command=command,
            actor=actor,
            calls=calls,
            raw_text=str(data["raw_text"]),
            kind=RunKind(data["kind"]),
            undo_of=undo_of or None,
            expected=data.get("expected"),
            conflicts=conflicts or None,
            request_key=request_key,
            notes=tuple(str(note) for note in data.get("notes") or ()),
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise PlanUnreadable(f"request {request_key}: its recorded plan is malformed") from exc


def _command_to_json(command: Command) -> dict[str, Any]:
    # Every field, whatever fields the command grows: `Command` makes its sequences tuples and
    # its changes a read-only mapping again when it is built back.
    values: dict[str, Any] = {}
    for item in fields(Command):
        value = getattr(command, item.name)
        if isinstance(value, tuple):
            value = list(value)
        elif item.name == "changes":
            value = dict(value)
        values[item.name] = value
    return values


def _call_to_json(call: Call) -> dict[str, Any]:
    name = _NAME_OF[type(call)]
    return {"type": name, "data": call.model_dump(mode="json", by_alias=True)}


def _call_from_json(item: dict[str, Any]) -> Call:
    cls = CALL_TYPES[str(item["type"])]
    call = cls.model_validate(item["data"])
    assert isinstance(
        call, RoomPatch | MemberCall | DestroyCall | SeatChange | LockSeatCall | SeatKickCall
    )
    return call
