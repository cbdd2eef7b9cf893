"""The statements of a request's life (DESIGN §2.10) as transaction bodies (`bot.audit.sql`).

A write request makes at most four transactions: `claim` (the record, with its lease),
`begin` (its rows, with the values read before), `complete` (their outcomes) and `report` (done
and delivered; the lease is released). Each one after the claim is fenced: it changes nothing
and raises `LeaseLost` unless the request is still held by this owner under the same fencing
number, so a replica that was paused past its lease (and taken over) cannot write for it.

`take_over` is what a replica's loop runs to find work: requests whose holder's lease expired,
taken one by one by exactly one replica (`$SKIP_LOCKED`), each with a fencing number one higher.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from bot.audit import trail
from bot.audit.records import (
    AuditEntry,
    LeaseLost,
    NewEntry,
    NewRequest,
    RequestRecord,
    RequestState,
)
from bot.audit.rows import REQUEST_SELECT, Completion, json_text, request_from_row
from bot.audit.sql import Body, Query

_NEW_COLUMNS: Final = (
    "request_key",
    "dedupe_key",
    "state",
    "kind",
    "created_at",
    "updated_at",
    "source",
    "team_id",
    "channel_id",
    "user_id",
    "verb",
    "raw_text",
    "reason",
    "plan",
    "reply",
    "adapter",
    "run_after",
    "owner",
    "fence",
    "expires_at",
)
CLAIM: Final = (
    f"INSERT INTO requests ({', '.join(_NEW_COLUMNS)}, lease_until) "  # noqa: S608
    f"VALUES ({', '.join(f'%({c})s' for c in _NEW_COLUMNS)}, "
    "CASE WHEN CAST(%(owner)s AS TEXT) IS NULL THEN NULL ELSE $NOW + %(lease_s)s END) "
    "ON CONFLICT DO NOTHING RETURNING request_key"
)
_FENCED: Final = "WHERE request_key = %(key)s AND owner = %(owner)s AND fence = %(fence)s"
_REPLY: Final = "reply = COALESCE(%(reply)s, reply)"


#: A request taken over: its record as it now is, its rows, and its previous holder.
TakenOver = tuple[RequestRecord, tuple[AuditEntry, ...], str | None]


class Holder:
    """Who holds a request, as the fenced statements check it."""

    __slots__ = ("fence", "owner", "request_key")

    def __init__(self, request_key: str, owner: str, fence: int) -> None:
        self.request_key = request_key
        self.owner = owner
        self.fence = fence

    def params(self, **more: Any) -> dict[str, Any]:
        """The fenced statements' parameters, with `more`."""
        return {"key": self.request_key, "owner": self.owner, "fence": self.fence, **more}


def claim(new: NewRequest, *, owner: str | None, lease_s: float, now: float) -> Body[bool]:
    """Record a request, held by `owner` (None: nobody yet) with fencing number 1. False when
    its `dedupe_key` is already on record (nothing is written)."""
    state = RequestState.RECEIVED if owner is not None else _waiting_state(new)
    params: dict[str, Any] = {
        "request_key": new.request_key,
        "dedupe_key": new.dedupe_key,
        "state": state.value,
        "kind": new.kind,
        "created_at": now,
        "updated_at": now,
        "source": new.source,
        "team_id": new.team_id,
        "channel_id": new.channel_id,
        "user_id": new.user_id,
        "verb": new.verb,
        "raw_text": new.raw_text,
        "reason": new.reason,
        "plan": json_text(new.plan, "request plan"),
        "reply": json_text(new.reply, "reply address"),
        "adapter": new.adapter,
        "run_after": new.run_after,
        "owner": owner,
        "fence": 1 if owner is not None else 0,
        "expires_at": new.expires_at,
        "lease_s": lease_s,
    }
    result = yield Query(CLAIM, params)
    return bool(result.rows)


def _waiting_state(new: NewRequest) -> RequestState:
    if new.waiting is not None:
        return new.waiting
    return RequestState.SCHEDULED if new.run_after is not None else RequestState.RECEIVED


def _fenced_update(holder: Holder, sets: str, **params: Any) -> Body[None]:
    result = yield Query(
        f"UPDATE requests SET {sets} {_FENCED} RETURNING request_key",  # noqa: S608
        holder.params(**params),
    )
    if not result.rows:
        raise LeaseLost(f"request {holder.request_key} is no longer held by this replica")


def begin(
    holder: Holder,
    entries: Sequence[NewEntry],
    reply: dict[str, Any] | None,
    *,
    now: float,
    timer: NewRequest | None = None,
) -> Body[list[int]]:
    """The request is running: write its pending rows (with the values read before) and, when
    given, its latest reply address and the revert of a time-boxed change (`timer`, scheduled:
    recorded with the rows it reverts, so it exists exactly when they do). Fenced."""
    yield from _fenced_update(
        holder,
        f"state = %(state)s, updated_at = %(now)s, {_REPLY}",
        state=RequestState.RUNNING.value,
        now=now,
        reply=None if reply is None else json_text(reply, "reply address"),
    )
    if timer is not None:
        yield from claim(timer, owner=None, lease_s=0.0, now=now)
    return (yield from trail.insert_entries(entries, final=False, now=now))


def complete(
    holder: Holder,
    completions: Sequence[tuple[int, Completion]],
    reply: dict[str, Any] | None,
    *,
    now: float,
) -> Body[list[int]]:
    """Every row has its outcome: record them and mark the request done (not yet reported).
    Fenced. Returns the ids of rows that could not be completed (see `AuditStore.complete`)."""
    yield from _fenced_update(
        holder,
        f"state = %(state)s, updated_at = %(now)s, {_REPLY}",
        state=RequestState.DONE.value,
        now=now,
        reply=None if reply is None else json_text(reply, "reply address"),
    )
    return (yield from trail.complete_entries(completions, now=now))


def finish(
    holder: Holder, state: RequestState, reply: dict[str, Any] | None, *, now: float
) -> Body[None]:
    """The request ends in `state` (reported, cancelled...): its lease is released. Fenced."""
    yield from _fenced_update(
        holder,
        f"state = %(state)s, updated_at = %(now)s, owner = NULL, lease_until = NULL, {_REPLY}",
        state=state.value,
        now=now,
        reply=None if reply is None else json_text(reply, "reply address"),
    )


def abandon(holder: Holder, *, now: float) -> Body[None]:
    """Give the request up at once: no owner, an expired lease, so the next replica to look
    (this one included) takes it over. Fenced."""
    yield from _fenced_update(holder, "owner = '', lease_until = 0, updated_at = %(now)s", now=now)


def renew(owner: str, keys: Sequence[str], lease_s: float) -> Body[dict[str, int]]:
    """Push back the expiry of these requests held by `owner`; their fencing numbers (a key
    missing from the answer is no longer `owner`'s)."""
    if not keys:
        return {}
    result = yield Query(
        "UPDATE requests SET lease_until = $NOW + %(lease_s)s "
        "WHERE owner = %(owner)s AND request_key $IN(keys) RETURNING request_key, fence",
        {"owner": owner, "keys": list(keys), "lease_s": lease_s},
    )
    return {str(key): int(fence) for key, fence in result.rows}


def take_over(
    owner: str,
    *,
    lease_s: float,
    adapters: Sequence[str],
    busy: Sequence[str] | None,
    limit: int,
    end_rate_slots: bool,
) -> Body[list[TakenOver]]:
    """Take up to `limit` requests whose holder's lease expired (oldest expiry first,
    deliverable by one of `adapters`): each becomes `owner`'s for `lease_s` with its fencing
    number one higher. With `busy` given, `owner`'s own are taken too, except those in `busy`
    (still being carried out here: they renew their own leases). Returns each record (as it
    now is), its rows and its previous holder. With `end_rate_slots` (PostgreSQL), the
    rate-budget slots the previous holders never ended are ended: those replicas stopped, their
    calls are over."""
    found = yield Query(
        "SELECT request_key, owner FROM requests "
        "WHERE owner IS NOT NULL AND lease_until < $NOW "
        "AND (owner <> %(owner)s OR (%(own)s AND NOT (request_key $IN(busy)))) "
        "AND adapter $IN(adapters) ORDER BY lease_until LIMIT %(limit)s $SKIP_LOCKED",
        {
            "owner": owner,
            "adapters": list(adapters),
            "own": busy is not None,
            "busy": list(busy or ()),
            "limit": limit,
        },
    )
    if not found.rows:
        return []
    previous = {str(key): (str(old) or None) for key, old in found.rows}
    keys = list(previous)
    taken = yield Query(
        "UPDATE requests SET owner = %(owner)s, lease_until = $NOW + %(lease_s)s, "  # noqa: S608
        "fence = fence + 1, takeovers = takeovers + 1 "
        f"WHERE request_key $IN(keys) RETURNING {REQUEST_SELECT}",
        {"owner": owner, "lease_s": lease_s, "keys": keys},
    )
    records = {r.request_key: r for r in map(request_from_row, taken.rows)}
    rows = yield from trail.rows_of(keys)
    by_key: dict[str, list[AuditEntry]] = {key: [] for key in keys}
    for row in rows:
        by_key[row.request_key].append(row)
    gone = sorted({old for old in previous.values() if old and old != owner})
    if end_rate_slots and gone:
        yield Query(
            "UPDATE rate_slots SET ended_at = $NOW WHERE owner $IN(owners) AND ended_at IS NULL",
            {"owners": gone},
        )
    return [(records[key], tuple(by_key[key]), previous[key]) for key in keys if key in records]


def take_due(
    owner: str, *, lease_s: float, adapters: Sequence[str], limit: int
) -> Body[list[RequestRecord]]:
    """Take up to `limit` scheduled requests whose time has come (`run_after` passed, nobody
    holding them; earliest first, deliverable by one of `adapters`): each becomes `owner`'s for
    `lease_s`, `received` again, with its fencing number one higher. Each goes to exactly one
    replica (`$SKIP_LOCKED`; the update re-checks that nobody took it meanwhile)."""
    found = yield Query(
        "SELECT request_key FROM requests "
        "WHERE owner IS NULL AND run_after IS NOT NULL AND run_after <= $NOW "
        "AND state = %(scheduled)s AND adapter $IN(adapters) "
        "ORDER BY run_after LIMIT %(limit)s $SKIP_LOCKED",
        {
            "scheduled": RequestState.SCHEDULED.value,
            "adapters": list(adapters),
            "limit": limit,
        },
    )
    if not found.rows:
        return []
    keys = [str(key) for (key,) in found.rows]
    return (yield from _take(owner, lease_s, keys, from_states=(RequestState.SCHEDULED,), due=True))


def take_waiting(
    owner: str, key: str, *, lease_s: float, from_states: Sequence[RequestState]
) -> Body[RequestRecord | None]:
    """Take one request nobody holds that waits in one of `from_states` (an approval click,
    "revert now"): it becomes `owner`'s, `received`, fencing number one higher. None when it is
    not waiting in those states any more (run, cancelled, taken by another click or replica):
    of two takers at once exactly one gets it."""
    taken = yield from _take(owner, lease_s, [key], from_states=from_states, due=False)
    return taken[0] if taken else None


def _take(
    owner: str,
    lease_s: float,
    keys: Sequence[str],
    *,
    from_states: Sequence[RequestState],
    due: bool,
) -> Body[list[RequestRecord]]:
    result = yield Query(
        "UPDATE requests SET owner = %(owner)s, lease_until = $NOW + %(lease_s)s, "  # noqa: S608
        "fence = fence + 1, state = %(received)s, updated_at = $NOW "
        "WHERE request_key $IN(keys) AND owner IS NULL AND state $IN(states) "
        f"{'AND run_after <= $NOW ' if due else ''}RETURNING {REQUEST_SELECT}",
        {
            "owner": owner,
            "lease_s": lease_s,
            "received": RequestState.RECEIVED.value,
            "keys": list(keys),
            "states": [state.value for state in from_states],
        },
    )
    records = sorted(map(request_from_row, result.rows), key=lambda r: r.run_after or 0.0)
    return records


def settle_waiting(
    key: str,
    *,
    from_states: Sequence[RequestState],
    state: RequestState | None = None,
    run_after: float | None = None,
    now: float,
) -> Body[RequestRecord | None]:
    """Change a request nobody holds that waits in one of `from_states`: move it to `state`
    and/or to run at `run_after` (Keep, Extend, Deny, an expiry). None when it is not waiting in
    those states any more (it ran, or another click settled it first)."""
    result = yield Query(
        "UPDATE requests SET state = COALESCE(%(state)s, state), "  # noqa: S608
        "run_after = COALESCE(%(run_after)s, run_after), updated_at = %(now)s "
        "WHERE request_key = %(key)s AND owner IS NULL AND state $IN(states) "
        f"RETURNING {REQUEST_SELECT}",
        {
            "key": key,
            "state": None if state is None else state.value,
            "run_after": run_after,
            "now": now,
            "states": [s.value for s in from_states],
        },
    )
    row = result.one()
    return None if row is None else request_from_row(row)


def owners_in_flight() -> Body[list[str]]:
    """Every replica that holds a request now."""
    result = yield Query("SELECT DISTINCT owner FROM requests WHERE owner IS NOT NULL")
    return [str(owner) for (owner,) in result.rows]


def expire(owners: Sequence[str]) -> Body[int]:
    """End the leases these (stopped) owners hold now, so the next look takes them over."""
    if not owners:
        return 0
    result = yield Query(
        "UPDATE requests SET lease_until = 0 WHERE owner $IN(owners) RETURNING request_key",
        {"owners": list(owners)},
    )
    return len(result.rows)


def get(request_key: str) -> Body[RequestRecord | None]:
    """The record of one request, or None."""
    result = yield Query(
        f"SELECT {REQUEST_SELECT} FROM requests WHERE request_key = %(key)s",  # noqa: S608
        {"key": request_key},
    )
    row = result.one()
    return None if row is None else request_from_row(row)


def by_dedupe_key(dedupe_key: str) -> Body[RequestRecord | None]:
    """The request recorded under `dedupe_key`, or None."""
    result = yield Query(
        f"SELECT {REQUEST_SELECT} FROM requests WHERE dedupe_key = %(key)s",  # noqa: S608
        {"key": dedupe_key},
    )
    row = result.one()
    return None if row is None else request_from_row(row)
