"""The timeline of a window (DESIGN §2.14): what happened to which rooms, in order, for the
postmortem. Built from the audit rows of the window and the request records they belong to.

* One entry per request, however many rooms it named: a 200-room request is one line with its
  counts, plus each failure (room, code, Tencent's message, RequestId).
* Every kind of request appears the same way, named by its record's `kind` and `source` (a
  request, an undo, a retry, and whatever kinds later versions add: approvals, time-boxed
  changes and their reverts) with its state when it did not simply run (awaiting approval,
  scheduled, denied, expired, cancelled). Nothing here lists kinds, so a new one shows up
  without a change here.
* Changes made outside roombot (rows with source `tencent`, from Room Engine callbacks) are
  entries of their own, with the operator account and platform where the callback gave them.
* Member traffic (`TRAFFIC_VERBS`) is never listed: it is summed per room and hour.
* Takeovers (a replica stopped and a survivor reported the request) are said on the entry.

Times are UTC. `Timeline.markdown()` is the full text (the Slack file, the console's answer);
`Timeline.summary_lines()` the short summary for the thread.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Final

from bot import metrics
from bot.audit import (
    AuditEntry,
    AuditError,
    AuditStore,
    Outcome,
    RequestRecord,
    RequestState,
    Source,
)
from bot.audit.export import md_cell, plain_text, stream_entries
from bot.audit.rows import REQUEST_SELECT, request_from_row
from bot.audit.sql import Body, Query
from bot.commands import Command, InvalidValue
from bot.commands.window import WindowSpec, resolve_window

log = logging.getLogger(__name__)

#: Verbs of rows that are member traffic (enter/leave): summed per room and hour, never listed.
#: Room Engine's member callbacks are only counted (metrics) today; rows a later version writes
#: under these verbs are summed here.
TRAFFIC_VERBS: Final = frozenset({"member-enter", "member-leave", "seat-traffic"})
#: Outcomes that count as a failure of the request for that room.
FAILED_OUTCOMES: Final = frozenset({Outcome.FAILED, Outcome.NOT_APPLIED, Outcome.UNKNOWN})
#: Rooms named on an entry before "and N more".
ROOMS_SHOWN: Final = 10
#: Failures listed under an entry before "and N more failed".
FAILURES_SHOWN: Final = 50
#: Request keys looked up per statement.
_KEYS_PER_READ: Final = 500
#: States in which a request ran (or runs) as asked: its state is not worth saying.
_PLAIN_STATES: Final = frozenset(
    {RequestState.REPORTED, RequestState.DONE, RequestState.RUNNING, RequestState.RECEIVED}
)
_PLATFORM: Final = re.compile(r"\(OptPlatform ([^)]*)\)")


@dataclass(frozen=True)
class Failure:
    """One room (and account) a request failed for."""

    room_id: str | None
    account: str | None
    outcome: str
    code: int | None
    info: str | None
    request_id: str | None


@dataclass
class Entry:
    """One request (or one change made outside roombot) in the timeline."""

    at: float
    request_key: str
    who: str
    source: str
    kind: str
    verb: str | None
    raw_text: str
    reason: str | None
    state: str | None = None
    run_after: float | None = None
    takeovers: int = 0
    rooms: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    undo_of: list[int] = field(default_factory=list)
    changes: dict[str, object] = field(default_factory=dict)
    previous: dict[str, object] = field(default_factory=dict)
    row_ids: list[int] = field(default_factory=list)
    #: A decision on the request (two-person approval: approved, denied, withdrawn, expired),
    #: who made it and when; None when its record carries none.
    decision: str | None = None
    decided_by: str | None = None
    decided_at: float | None = None
    #: Why, as the decider said (a denial's reason).
    decision_note: str | None = None

    @property
    def outside(self) -> bool:
        """A change made outside roombot (reported by a Room Engine callback)."""
        return self.source == Source.TENCENT.value


@dataclass(frozen=True)
class Window:
    """`[start, end)` in Unix seconds, and the rooms asked about (empty: every room)."""

    start: float
    end: float
    rooms: tuple[str, ...] = ()


@dataclass
class Timeline:
    """The entries of a window in time order, and the member traffic summed per room and hour."""

    window: Window
    entries: list[Entry]
    traffic: dict[tuple[str, float], Counter[str]]

    @property
    def actors(self) -> list[str]:
        """Who acted, in order of first appearance (Slack users and outside operators)."""
        return list(dict.fromkeys(e.who for e in self.entries))

    def summary_lines(self) -> list[str]:
        """The short summary: counts, first and last event, who acted."""
        span = f"{_when(self.window.start, day=True)} to {_when(self.window.end, day=True)}"
        where = ", ".join(self.window.rooms) if self.window.rooms else "every room"
        if not self.entries:
            return [f"Nothing happened in {where} from {span}."]
        ours = [e for e in self.entries if not e.outside]
        outside = len(self.entries) - len(ours)
        failed = sum(1 for e in self.entries if e.failures)
        rooms = {room for e in self.entries for room in e.rooms}
        lines = [
            f"{len(self.entries)} event(s) in {where} from {span}: {len(ours)} roombot "
            f"request(s) ({failed} with failures), {outside} change(s) made outside roombot, "
            f"{len(rooms)} room(s) touched.",
            f"First: {_when(self.entries[0].at)} {_headline(self.entries[0])}",
            f"Last: {_when(self.entries[-1].at)} {_headline(self.entries[-1])}",
            f"Who acted: {', '.join(self.actors)}",
        ]
        if self.traffic:
            moves = sum(sum(c.values()) for c in self.traffic.values())
            lines.append(f"Member traffic: {moves} enter/leave event(s), summed per room and hour.")
        return lines

    def markdown(self) -> str:
        """The whole timeline as Markdown (plain enough to read as text in a terminal)."""
        span = f"{_when(self.window.start, day=True)} to {_when(self.window.end, day=True)}"
        where = ", ".join(self.window.rooms) if self.window.rooms else "every room"
        lines = [f"# Timeline: {where}, {span} (UTC)", ""]
        lines += [f"- {line}" for line in self.summary_lines()]
        lines.append("")
        day = ""
        for entry in self.entries:
            today = _day(entry.at)
            if today != day:
                lines += [f"## {today}", ""]
                day = today
            lines += entry_lines(entry)
        if self.traffic:
            lines += ["", "## Member traffic (per room and hour)", ""]
            lines += ["| hour (UTC) | room | events |", "|---|---|---|"]
            for (room, hour), counts in sorted(self.traffic.items(), key=lambda i: i[0][::-1]):
                what = ", ".join(f"{n} {verb}" for verb, n in sorted(counts.items()))
                lines.append(f"| {_when(hour, day=True)} | {md_cell(room)} | {what} |")
        return "\n".join(lines).rstrip() + "\n"


def entry_lines(entry: Entry) -> list[str]:
    """One entry: its headline, then its failures (each with its RequestId)."""
    parts = [f"- **{_when(entry.at)}** {_headline(entry)}"]
    if entry.reason:
        parts[0] += f" — reason: {_text(entry.reason)}"
    parts[0] += f" — {_outcome(entry)}"
    for failure in entry.failures[:FAILURES_SHOWN]:
        target = failure.room_id or "(no room)"
        if failure.account:
            target += f" / {failure.account}"
        code = f" {failure.code}" if failure.code is not None else ""
        info = f": {_text(failure.info)}" if failure.info else ""
        rid = f" (RequestId {failure.request_id})" if failure.request_id else ""
        parts.append(f"  - {failure.outcome}{code} in {target}{info}{rid}")
    if len(entry.failures) > FAILURES_SHOWN:
        parts.append(f"  - and {len(entry.failures) - FAILURES_SHOWN} more failed")
    return parts


@dataclass(frozen=True)
class TimelineView:
    """`timeline`'s answer: the timeline, or the one line saying why there is none (a window
    refused, no audit store, the store unreadable)."""

    timeline: Timeline | None = None
    problem: str | None = None


async def timeline_view(
    store: AuditStore | None, command: Command, *, now: float, max_s: float
) -> TimelineView:
    """The timeline a `timeline` command asks for, at `now`, refusing a window wider than
    `max_s` (ROOMBOT_TIMELINE_MAX)."""
    try:
        start, end = resolve_window(command.window or WindowSpec(), now=now, max_s=max_s)
    except InvalidValue as exc:
        return TimelineView(problem=str(exc))
    if store is None:
        return TimelineView(problem="the audit trail is not configured")
    try:
        timeline = await build_timeline(store, Window(start, end, tuple(command.rooms)))
    except AuditError as exc:
        log.warning("timeline: the audit store could not be read: %s", exc)
        return TimelineView(problem=f"the audit trail could not be read ({exc})")
    return TimelineView(timeline=timeline)


# -- building -----------------------------------------------------------------------------------


async def build_timeline(store: AuditStore, window: Window) -> Timeline:
    """The timeline of `window`: rows read a page at a time, grouped by request, joined to
    their request records (and the records made in the window that wrote no row yet: a request
    awaiting approval, scheduled, denied...)."""
    entries: dict[str, Entry] = {}
    traffic: dict[tuple[str, float], Counter[str]] = {}
    rows = stream_entries(store, rooms=window.rooms, since=window.start, until=window.end)
    async for row in rows:
        if row.verb in TRAFFIC_VERBS:
            # A row of counted traffic (`bot.callbacks.traffic`) says its hour and count.
            counted = row.patch or {}
            hour = counted.get("hour")
            if not isinstance(hour, int | float):
                hour = row.created_at - row.created_at % 3600
            count = counted.get("count")
            n = count if isinstance(count, int) and count > 0 else 1
            traffic.setdefault((row.room_id or "", float(hour)), Counter())[row.verb or ""] += n
            continue
        entry = entries.get(row.request_key)
        if entry is None:
            entry = entries[row.request_key] = _entry_of(row)
        _add_row(entry, row)
    records = await _records(store, list(entries), window)
    for record in records:
        entry = entries.get(record.request_key)
        if entry is None:
            rooms = _plan_rooms(record)
            if window.rooms and not set(rooms) & set(window.rooms):
                continue
            entry = entries[record.request_key] = _entry_of_record(record, rooms)
        _apply_record(entry, record)
    # At the same moment, what wrote rows comes before what is only on record (a change before
    # the revert its begin transaction scheduled).
    ordered = sorted(
        entries.values(), key=lambda e: (e.at, not e.row_ids, e.row_ids[:1], e.request_key)
    )
    return Timeline(window=window, entries=ordered, traffic=traffic)


def _apply_record(entry: Entry, record: RequestRecord) -> None:
    """What the request's record adds to its entry: kind, state, schedule, takeovers, and the
    decision on it (two-person approval) where there was one."""
    entry.kind = record.kind
    entry.state = record.state.value
    entry.run_after = record.run_after
    entry.takeovers = record.takeovers
    entry.reason = entry.reason or record.reason
    if record.decision:
        entry.decision = str(record.decision)
        entry.decided_by = record.decided_by
        entry.decided_at = record.decided_at
        entry.decision_note = record.decision_note


def _entry_of(row: AuditEntry) -> Entry:
    return Entry(
        at=row.created_at,
        request_key=row.request_key,
        who=row.user_id,
        source=row.source,
        kind="undo" if row.verb == "undo" else "request",
        verb=row.verb,
        raw_text=row.raw_text,
        reason=row.reason,
    )


def _entry_of_record(record: RequestRecord, rooms: list[str]) -> Entry:
    return Entry(
        at=record.created_at,
        request_key=record.request_key,
        who=record.user_id,
        source=record.source,
        kind=record.kind,
        verb=record.verb,
        raw_text=record.raw_text,
        reason=record.reason,
        rooms=rooms,
    )


def _add_row(entry: Entry, row: AuditEntry) -> None:
    entry.row_ids.append(row.id)
    if row.room_id is not None and row.room_id not in entry.rooms:
        entry.rooms.append(row.room_id)
    account = (row.patch or {}).get("Member_Account")
    if isinstance(account, str) and account not in entry.accounts:
        entry.accounts.append(account)
    entry.outcomes[row.outcome.value] += 1
    if row.tencent_request_id:
        entry.request_ids.append(row.tencent_request_id)
    if row.undo_of is not None:
        entry.undo_of.append(row.undo_of)
    if entry.outside:
        entry.changes.update(row.patch or {})
        entry.previous.update(row.previous or {})
    if row.outcome in FAILED_OUTCOMES:
        entry.failures.append(
            Failure(
                room_id=row.room_id,
                account=account if isinstance(account, str) else None,
                outcome=row.outcome.value,
                code=row.error_code,
                info=row.error_info or row.detail,
                request_id=row.tencent_request_id,
            )
        )


def _plan_rooms(record: RequestRecord) -> list[str]:
    command = record.plan.get("command")
    rooms = command.get("rooms") if isinstance(command, dict) else None
    return [str(r) for r in rooms] if isinstance(rooms, list) else []


async def _records(store: AuditStore, keys: list[str], window: Window) -> list[RequestRecord]:
    """The records of these requests, and of every request created in the window."""
    found: dict[str, RequestRecord] = {}
    for start in range(0, len(keys), _KEYS_PER_READ):
        chunk = keys[start : start + _KEYS_PER_READ]
        for record in await store.dialect.read("read requests", partial(_by_keys, chunk)):
            found[record.request_key] = record
        metrics.count_store_transaction("read")
    for record in await store.dialect.read(
        "read requests", partial(_created_in, window.start, window.end)
    ):
        found.setdefault(record.request_key, record)
    metrics.count_store_transaction("read")
    return list(found.values())


def _by_keys(keys: Sequence[str]) -> Body[list[RequestRecord]]:
    result = yield Query(
        f"SELECT {REQUEST_SELECT} FROM requests WHERE request_key $IN(keys)",  # noqa: S608
        {"keys": list(keys)},
    )
    return [request_from_row(row) for row in result.rows]


def _created_in(start: float, end: float) -> Body[list[RequestRecord]]:
    result = yield Query(
        f"SELECT {REQUEST_SELECT} FROM requests "  # noqa: S608
        "WHERE created_at >= %(start)s AND created_at < %(end)s ORDER BY created_at",
        {"start": start, "end": end},
    )
    return [request_from_row(row) for row in result.rows]


# -- wording --------------------------------------------------------------------------------------


_FOR: Final = re.compile(r"(?:^|\s)--for[\s=]+(\S+)")


def _headline(entry: Entry) -> str:
    if entry.outside:
        platform = _PLATFORM.search(entry.raw_text)
        via = f" via {platform[1]}" if platform and platform[1] != "not given" else ""
        change = _change(entry.changes, entry.previous)
        return (
            f"outside roombot: {_text(entry.who)}{via} {entry.verb or 'change'} "
            f"{_rooms(entry.rooms)}{': ' + change if change else ''}"
        )
    what = entry.verb or entry.raw_text
    tag = "" if entry.kind in ("request", entry.verb) else f"[{entry.kind}] "
    target = _rooms(entry.rooms)
    if entry.accounts:
        target += f" ({', '.join(entry.accounts[:ROOMS_SHOWN])})"
    text = f"{entry.who} ({entry.source}) {tag}{what} {target}".rstrip()
    timebox = _FOR.search(entry.raw_text) if entry.kind == "request" else None
    if timebox:  # a time-boxed change (its revert follows as an entry of its own), a ban's length
        text += f" for {timebox[1]}"
    if entry.undo_of:
        rows = ", ".join(f"#{row_id}" for row_id in entry.undo_of[:ROOMS_SHOWN])
        text += f", undoing row(s) {rows}"
    if entry.takeovers:
        text += f", taken over {entry.takeovers} time(s) after its replica stopped"
    return text


def _outcome(entry: Entry) -> str:
    if entry.decision is None:
        return _result(entry)
    by = f" by {entry.decided_by}" if entry.decided_by else ""
    at = f" at {_when(entry.decided_at)}" if entry.decided_at is not None else ""
    why = f" ({_text(entry.decision_note)})" if entry.decision_note else ""
    return f"{entry.decision}{by}{at}{why}; {_result(entry)}"


def _result(entry: Entry) -> str:
    state = entry.state
    if state is not None and RequestState(state) not in _PLAIN_STATES:
        when = f" for {_when(entry.run_after, day=True)}" if entry.run_after else ""
        done = f"; {_counts(entry.outcomes)}" if entry.outcomes else ""
        return f"{state.replace('_', ' ')}{when}{done} (request {entry.request_key})"
    ids = entry.request_ids
    if not ids:
        shown = ""
    elif len(ids) == 1:
        shown = f", RequestId {ids[0]}"
    else:
        shown = f", RequestIds {ids[0]} … {ids[-1]} ({len(ids)})"
    return f"{_counts(entry.outcomes)}{shown}"


def _counts(outcomes: Counter[str]) -> str:
    return ", ".join(f"{n} {outcome}" for outcome, n in outcomes.most_common()) or "no rows"


def _rooms(rooms: Sequence[str]) -> str:
    if not rooms:
        return ""
    if len(rooms) == 1:
        return rooms[0]
    shown = ", ".join(rooms[:ROOMS_SHOWN])
    more = f" and {len(rooms) - ROOMS_SHOWN} more" if len(rooms) > ROOMS_SHOWN else ""
    return f"{len(rooms)} rooms ({shown}{more})"


def _change(changes: dict[str, object], previous: dict[str, object]) -> str:
    """What an outside change changed: the fields whose value roombot knew before and that now
    differ (a callback reports every field), else every field it reported."""
    changed = [n for n in changes if n in previous and previous[n] != changes[n]]
    names = changed or list(changes)
    parts = []
    for name in names[:ROOMS_SHOWN]:
        before = f"{_value(previous[name])} → " if name in previous else ""
        parts.append(f"{name} {before}{_value(changes[name])}")
    return ", ".join(parts)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def _text(text: str) -> str:
    return " ".join(plain_text(text).split())


def _when(at: float | None, *, day: bool = False) -> str:
    if at is None:
        return ""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ" if day else "%H:%M:%SZ")


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")
