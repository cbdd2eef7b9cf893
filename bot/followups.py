"""Button follow-ups of a request, planned from its audit rows: Undo and Retry failed.

Undo restores the previous values of the rooms a request changed (those `update_room_info` can
set back), sets back the seat flags a seat verb changed (to the flags read before it), or
unbans the accounts a ban banned; it leaves alone a room changed since, whether a Room Engine
callback said so (`bot.callbacks`) or a read before the undo does (`bot.requests.runner`).
Retry failed re-runs the targets that failed, were not attempted, are unknown or, by a
survivor's reading, not applied. Each is permission-checked for whoever clicked, and acts once,
whichever replica the click lands on: its plan carries a dedupe key ("undo:KEY", "retry:KEY")
that its request record can hold only once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from bot.audit import AuditEntry, AuditError, Outcome
from bot.callbacks import outside_conflicts
from bot.commands import VERBS, Command, VerbKind
from bot.models import (
    SEAT_FLAGS,
    SEAT_INDEX,
    Call,
    DestroyCall,
    MemberApi,
    MemberCall,
    RoomPatch,
    SeatChange,
    SeatKickCall,
    chunked,
    default_reason,
    is_seat_target,
    restorable,
    seat_undo_flags,
)
from bot.outcomes import Actor, Failure, FailureKind, Plan, Rejected, RunKind, RunResult
from bot.policy import Decision
from bot.requests.recorder import AuditRecorder
from bot.tencent.errors import PERMANENT_CODES
from bot.wording import outside_summary

#: The outcomes Retry runs again: not done, or not known to be done.
RETRY_OUTCOMES: Final = frozenset(
    {Outcome.FAILED, Outcome.UNKNOWN, Outcome.NOT_ATTEMPTED, Outcome.NOT_APPLIED}
)

#: Decides whether an actor may run a verb (the service's `authorize`).
Authorize = Callable[[str, Actor], Awaitable[Decision]]


def verbs_that_set(field_name: str, value: Any) -> frozenset[str]:
    """The write verbs able to set `field_name` to `value` (what undo needs permission for)."""
    verbs = set()
    for name, spec in VERBS.items():
        if spec.kind is not VerbKind.WRITE:
            continue
        if spec.sets:
            if (field_name, value) in (*spec.sets, *spec.video_sets):
                verbs.add(name)
        elif field_name in spec.fields:
            verbs.add(name)
    return frozenset(verbs)


def undo_needs(run: RunResult) -> tuple[frozenset[str], ...]:
    """What undoing `run` needs permission for: one set of verbs per field it would restore
    (any one verb of a set will do; see `verbs_that_set`), or the inverse of a member verb
    (`unban` for a ban). Empty when there is nothing to undo. The same rule `plan_undo` checks,
    so an adapter can offer Undo only to whoever may use it."""
    if not run.undoable:
        return ()
    inverse = run.command.spec.undo_verb
    if inverse is not None:
        return (frozenset({inverse}),)
    needed = {
        (name, _freeze(value))
        for result in run.results
        if result.undoable
        for name, value in restorable(result.previous or {}).items()
    }
    return tuple(verbs_that_set(name, value) for name, value in sorted(needed, key=str))


def permission_phrase(verbs: Iterable[str]) -> str:
    """`needs permission for …`'s object: one verb, or "any one of" several."""
    names = [f"`{verb}`" for verb in sorted(verbs)]
    if len(names) <= 1:
        return names[0] if names else "a verb"
    return "any one of " + ", ".join(names)


class FollowUps:
    """Plans Undo and Retry from the audit trail (`audit`), asking `authorize` for permission."""

    def __init__(self, audit: AuditRecorder, authorize: Authorize) -> None:
        self._audit = audit
        self.authorize = authorize

    async def plan_undo(self, request_key: str, actor: Actor) -> Plan | Rejected:
        """Plan undoing a request: restore the previous values of the rooms it changed (those
        `update_room_info` can set back), or unban the accounts a ban banned. Refused when the
        clicker lacks permission for the inverse, or the request was already undone."""
        rows = await self._rows(request_key)
        if isinstance(rows, Rejected):
            return rows
        banned = [
            r
            for r in rows
            if r.outcome is Outcome.OK and r.verb == "ban" and _account(r) and r.room_id
        ]
        if banned:
            return await self._plan_unban(request_key, actor, banned)
        seated = [
            r
            for r in rows
            if r.outcome is Outcome.OK
            and r.room_id
            and r.patch
            and r.previous
            and is_seat_target(r.patch)
            and seat_undo_flags(r.patch, r.previous)
        ]
        if seated:
            return await self._plan_seat_undo(request_key, actor, seated)
        targets = [
            r
            for r in rows
            if r.outcome is Outcome.OK
            and r.room_id
            and r.patch
            and r.previous
            and r.previous != r.patch
            and restorable(r.previous)
        ]
        if not targets:
            return Rejected(message="there is nothing to undo for this request")
        changed_outside = await self._changed_outside(targets)
        if len(changed_outside) == len(targets):
            rooms = "; ".join(
                f"`{room}` {failure.message.removeprefix('changed outside roombot since ')}"
                for room, failure in changed_outside.items()
            )
            return Rejected(
                message=f"not undone: changed outside roombot since this request — {rooms}. "
                "Undo leaves such rooms alone, so that change is not overwritten; nothing was done."
            )
        needed = {(k, _freeze(v)) for r in targets for k, v in restorable(r.previous or {}).items()}
        refusal = await self._refuse_fields(actor, needed, "undo this")
        if refusal is not None:
            return refusal
        already = await self._already(f"undo:{request_key}", "undone")
        if already is not None:
            return already
        original = targets[0]
        return Plan(
            command=_command_like(
                original,
                rooms=tuple(r.room_id or "" for r in targets),
                reason=f"undo of {original.verb} run by {original.user_id}",
            ),
            actor=actor,
            calls=tuple(
                RoomPatch.of(r.room_id or "", restorable(r.previous or {})) for r in targets
            ),
            raw_text=f"undo {request_key}",
            kind=RunKind.UNDO,
            undo_of={(r.room_id or "", None): r.id for r in targets},
            expected={
                r.room_id or "": {
                    k: v for k, v in (r.patch or {}).items() if k in restorable(r.previous or {})
                }
                for r in targets
            },
            conflicts=changed_outside or None,
            dedupe_key=f"undo:{request_key}",
        )

    async def _changed_outside(self, targets: list[AuditEntry]) -> dict[str, Failure]:
        """The rooms of `targets` a Room Engine callback reported changed outside roombot since
        (in a field the undo would restore, or destroyed or re-created), each with the conflict
        to report. Undo then neither reads nor writes them. If the trail cannot be read, none:
        the read before the undo still catches a change."""
        store = self._audit.store
        if store is None:
            return {}
        found: dict[str, Failure] = {}
        for row in targets:
            room = row.room_id or ""
            try:
                later = await store.query(room=room, since=row.created_at, limit=200)
            except AuditError as exc:
                self._audit.failed("undo check", exc)
                return found
            fields = restorable(row.previous or {})
            outside = outside_conflicts(later, after_row=row.id, fields=fields)
            if outside:
                newest = outside[-1]
                found[room] = Failure(
                    kind=FailureKind.CONFLICT,
                    message=f"changed outside roombot since {outside_summary(newest)}",
                    hint="not undone, so that change is not overwritten",
                )
        return found

    async def _plan_unban(
        self, request_key: str, actor: Actor, banned: list[AuditEntry]
    ) -> Plan | Rejected:
        """Undo of a ban: unban exactly the accounts it banned (needs permission for `unban`)."""
        decision = await self.authorize("unban", actor)
        if not decision.allowed:
            return Rejected.by_policy(decision)
        already = await self._already(f"undo:{request_key}", "undone")
        if already is not None:
            return already
        by_room: dict[str, list[str]] = {}
        for row in banned:
            by_room.setdefault(row.room_id or "", []).append(_account(row) or "")
        calls = tuple(
            MemberCall(api=MemberApi.UNBAN, room_id=room, accounts=chunk)
            for room, accounts in by_room.items()
            for chunk in chunked(accounts)
        )
        original = banned[0]
        return Plan(
            command=Command(
                verb="unban",
                rooms=tuple(by_room),
                accounts=tuple(a for accounts in by_room.values() for a in accounts),
                reason=f"undo of ban run by {original.user_id}",
            ),
            actor=actor,
            calls=calls,
            raw_text=f"undo {request_key}",
            kind=RunKind.UNDO,
            undo_of={(r.room_id or "", _account(r)): r.id for r in banned},
            dedupe_key=f"undo:{request_key}",
        )

    async def _plan_seat_undo(
        self, request_key: str, actor: Actor, seated: list[AuditEntry]
    ) -> Plan | Rejected:
        """Undo of a seat verb: set back, on each seat it changed, the flags it changed to the
        values read before it, provided the seat still has the flags roombot set (the read
        before the undo checks; the other flags are copied from that read as ever). Needs
        permission for the verb that sets them back (`unlock-seat` for a `lock-seat`, ...)."""
        needed = {
            (name, value)
            for r in seated
            for name, value in seat_undo_flags(r.patch or {}, r.previous or {}).items()
        }
        refusal = await self._refuse_fields(actor, needed, "undo this")
        if refusal is not None:
            return refusal
        already = await self._already(f"undo:{request_key}", "undone")
        if already is not None:
            return already
        calls: list[SeatChange] = []
        for row in seated:
            patch, previous = row.patch or {}, row.previous or {}
            restore = seat_undo_flags(patch, previous)
            calls.append(
                SeatChange(
                    room_id=row.room_id or "",
                    index=int(patch[SEAT_INDEX]),
                    changes=restore,
                    expected={name: bool(patch[name]) for name in restore},
                    undo_of=row.id,
                )
            )
        original = seated[0]
        return Plan(
            command=Command(
                verb=original.verb or "lock-seat",
                rooms=tuple(dict.fromkeys(c.room_id for c in calls)),
                seats=tuple(dict.fromkeys(c.index for c in calls)),
                changes={k: v for k, v in (original.patch or {}).items() if k in SEAT_FLAGS},
                reason=f"undo of {original.verb} run by {original.user_id}",
            ),
            actor=actor,
            calls=tuple(calls),
            raw_text=f"undo {request_key}",
            kind=RunKind.UNDO,
            dedupe_key=f"undo:{request_key}",
        )

    async def plan_retry(self, request_key: str, actor: Actor) -> Plan | Rejected:
        """Plan re-running just the targets of a request that failed, were not attempted, or
        whose outcome is unknown or, by a survivor's reading, not applied. The clicker needs
        the request's verb; once per request."""
        rows = await self._rows(request_key)
        if isinstance(rows, Rejected):
            return rows
        again = RETRY_OUTCOMES
        failed = [r for r in rows if r.outcome in again and r.room_id and r.verb]
        if not failed:
            return Rejected(message="no room of this request failed, so there is nothing to retry")
        hopeless = [r for r in failed if r.error_code in PERMANENT_CODES]
        failed = [r for r in failed if r.error_code not in PERMANENT_CODES]
        if not failed:
            codes = ", ".join(sorted({str(r.error_code) for r in hopeless}))
            return Rejected(
                message=f"nothing to retry: what failed was refused with error {codes}, and "
                "would fail the same way again (check the room or account IDs)"
            )
        verb = failed[0].verb or "set"
        decision = await self.authorize(verb, actor)
        if not decision.allowed:
            return Rejected.by_policy(decision)
        calls = _calls_again(verb, failed)
        if not calls:
            return Rejected(message="the failed part of this request cannot be retried")
        already = await self._already(f"retry:{request_key}", "retried")
        if already is not None:
            return already
        return Plan(
            command=_command_like(failed[0], rooms=tuple(dict.fromkeys(c.room_id for c in calls))),
            actor=actor,
            calls=calls,
            raw_text=f"retry failed of {request_key}",
            kind=RunKind.RETRY,
            dedupe_key=f"retry:{request_key}",
        )

    async def _rows(self, request_key: str) -> list[AuditEntry] | Rejected:
        store = self._audit.store
        if store is None:
            return Rejected(message="this needs the audit trail, which is not configured")
        try:
            rows = await store.rows_for_request(request_key)
        except AuditError as exc:
            return Rejected(
                message=f"could not read the audit trail: {self._audit.failed('read', exc)}"
            )
        if not rows:
            return Rejected(message="that request is not in the audit trail")
        return rows

    async def _refuse_fields(
        self, actor: Actor, changes: set[tuple[str, Any]], action: str
    ) -> Rejected | None:
        for field_name, value in sorted(changes, key=str):
            candidates = sorted(verbs_that_set(field_name, value))
            for verb in candidates:
                if (await self.authorize(verb, actor)).allowed:
                    break
            else:
                return Rejected(
                    message=f"You (`{actor.user_id}`) may not {action}: restoring {field_name} "
                    f"needs permission for {permission_phrase(candidates)}.",
                    denied=True,
                )
        return None

    async def _already(self, dedupe_key: str, done: str) -> Rejected | None:
        """Why a one-shot follow-up cannot be planned again: already `done` (its request is on
        record), or None. Reads only: the request's record is what makes it once-only, whatever
        replica the clicks land on (`RoomService.submit`). A trail that cannot be read is no
        reason to refuse here: the record's claim decides."""
        store = self._audit.store
        if store is None:
            return None
        try:
            found = await store.request_by_dedupe_key(dedupe_key)
        except AuditError as exc:
            self._audit.failed("read", exc)
            return None
        return None if found is None else Rejected(message=f"this request was already {done}")

    async def first_delivery(self, key: str) -> bool:
        """True the first time `key` (e.g. a Slack event_id) is seen on this audit store.

        When the store cannot record it the answer is True: the request goes ahead (a write
        then meets the same store and is refused with a clear message), rather than being
        silently dropped as a repeat.
        """
        store = self._audit.store
        if store is None:
            return True
        try:
            return await store.claim(f"event:{key}")
        except AuditError as exc:
            self._audit.failed("claim", exc)
            return True


def _account(row: AuditEntry) -> str | None:
    account = (row.patch or {}).get("Member_Account")
    return account if isinstance(account, str) else None


def _calls_again(verb: str, rows: list[AuditEntry]) -> tuple[Call, ...]:
    """The calls that retry `rows` (all of one request, so of one verb)."""
    if verb == "destroy":
        return tuple(DestroyCall(room_id=r.room_id or "") for r in rows)
    if any(is_seat_target(r.patch or {}) for r in rows):
        # A seat verb's or its undo's rows: each seat again, its flags re-read before the call.
        return tuple(
            SeatChange(
                room_id=r.room_id or "",
                index=int((r.patch or {})[SEAT_INDEX]),
                changes={k: bool(v) for k, v in (r.patch or {}).items() if k in SEAT_FLAGS},
            )
            for r in rows
            if is_seat_target(r.patch or {})
        )
    spec = VERBS.get(verb)
    if spec is not None and spec.api == "kick_user_off_seat":
        return tuple(
            SeatKickCall(
                room_id=r.room_id or "",
                account=account,
                data=r.reason or default_reason(r.user_id),
            )
            for r in rows
            if (account := _account(r)) is not None
        )
    if spec is not None and spec.takes_accounts:
        api = MemberApi(str(spec.api))
        groups: dict[tuple[str, str | None, int | None], list[str]] = {}
        for row in rows:
            account = _account(row)
            duration = (row.patch or {}).get("Duration")
            if account is None:
                continue
            key = (row.room_id or "", row.reason, duration if isinstance(duration, int) else None)
            groups.setdefault(key, []).append(account)
        return tuple(
            MemberCall(api=api, room_id=room, accounts=chunk, reason=reason, duration_s=duration)
            for (room, reason, duration), accounts in groups.items()
            for chunk in chunked(accounts)
        )
    return tuple(RoomPatch.of(r.room_id or "", dict(r.patch)) for r in rows if r.patch)


def _freeze(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _command_like(
    row: AuditEntry, *, rooms: tuple[str, ...] | None = None, reason: str | None = None
) -> Command:
    """A `Command` describing an undo or retry, for the parent message and the audit rows."""
    patch = {k: v for k, v in (row.patch or {}).items() if k not in ("Member_Account", "Duration")}
    return Command(
        verb=row.verb or "set",
        rooms=rooms if rooms is not None else (row.room_id or "",),
        changes=patch,
        reason=reason if reason is not None else row.reason,
    )
