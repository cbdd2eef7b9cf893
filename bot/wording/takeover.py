"""A request whose replica stopped, read back by a survivor, in words: the summary, the parent's
status line, and one line per room or account (`verdict_line`)."""

from __future__ import annotations

from typing import Any, Final

from bot.audit import Outcome
from bot.requests.takeover import RoomVerdict, TakeoverReport
from bot.wording.changes import describe_changes, describe_effect
from bot.wording.results import request_id_phrase
from bot.wording.style import FAIL_MARK, OK_MARK, WARN_MARK, Style

#: How each verdict and recorded outcome is counted in a takeover's summary, in this order.
_TAKEOVER_COUNTS: Final = (
    ((Outcome.IN_PLACE, Outcome.OK, Outcome.NOOP), "in place"),
    ((Outcome.NOT_APPLIED,), "not applied"),
    ((Outcome.FAILED,), "failed"),
    ((Outcome.NOT_ATTEMPTED,), "not attempted"),
    ((Outcome.UNKNOWN, Outcome.PENDING), "unknown"),
)
#: The outcomes a takeover offers Retry for (what `RoomService.plan_retry` runs again).
TAKEOVER_RETRY: Final = frozenset(
    {Outcome.NOT_APPLIED, Outcome.UNKNOWN, Outcome.FAILED, Outcome.NOT_ATTEMPTED}
)


def _effect_verb(verb: str | None, wanted: dict[str, Any]) -> str | None:
    # An undo of a ban unbans: its rows carry the account under the verb "undo".
    if verb == "undo" and isinstance(wanted.get("Member_Account"), str):
        return "unban"
    return verb


def takeover_noun(report: TakeoverReport) -> str:
    """ "account" when the request's rows are accounts (a member verb), else "room"."""
    if any(isinstance(v.wanted.get("Member_Account"), str) for v in report.verdicts):
        return "account"
    return "room"


def takeover_counts(report: TakeoverReport) -> str:
    """The verdicts counted, e.g. "3/5 rooms in place, 1 not applied, 1 unknown"."""
    total = len(report.verdicts)
    parts = [
        (sum(report.count(o) for o in outcomes), label) for outcomes, label in _TAKEOVER_COUNTS
    ]
    shown = [(count, label) for count, label in parts if count]
    if not shown:
        return "nothing to read back"
    noun = takeover_noun(report) + ("" if total == 1 else "s")
    first_count, first_label = shown[0]
    return ", ".join(
        [f"{first_count}/{total} {noun} {first_label}", *(f"{c} {lbl}" for c, lbl in shown[1:])]
    )


def takeover_retry_count(report: TakeoverReport) -> int:
    """How many rows Retry would run again (not applied, unknown, failed, not attempted)."""
    return sum(1 for v in report.verdicts if v.outcome in TAKEOVER_RETRY and v.room_id)


def takeover_summary(report: TakeoverReport, *, restarted: bool) -> str:
    """The head of a takeover report: that the replica carrying the request out stopped, and
    what its rooms were found to be.

    `restarted` is True when roombot itself read them after a restart (one process, SQLite),
    False when another replica took over (PostgreSQL).
    """
    who = "roombot" if restarted else "The roombot replica carrying out this request"
    counts = takeover_counts(report)
    if report.nothing_sent or not report.verdicts:
        return (
            f"{WARN_MARK} {who} stopped before changing anything: nothing was changed. Run the "
            "command again if it is still needed."
        )
    if not any(v.read_back for v in report.verdicts):
        return (
            f"{WARN_MARK} {who} stopped after recording every outcome, before reporting them: "
            f"{counts}."
        )
    reader = "After restarting, it" if restarted else "Another replica"
    noun = takeover_noun(report)
    return (
        f"{WARN_MARK} {who} stopped before it finished. {reader} read each {noun} back: {counts}."
    )


def takeover_status(report: TakeoverReport) -> str:
    """The parent message's status line once a takeover is reported."""
    if report.nothing_sent or not report.verdicts:
        return f"{FAIL_MARK} not done: roombot stopped before changing anything (see the thread)"
    settled = all(
        v.outcome in (Outcome.IN_PLACE, Outcome.OK, Outcome.NOOP) for v in report.verdicts
    )
    mark = OK_MARK if settled else WARN_MARK
    return f"{mark} interrupted, then read back: {takeover_counts(report)} (see the thread)"


def verdict_line(style: Style, verdict: RoomVerdict, verb: str | None) -> str:
    """One room (or account) of a taken-over request: what it should be, and what was found.

    E.g. "✅ `room-test` — audio muted — the change is in place · RequestId `…`" (the RequestId
    of the read), "❌ `room-2` — audio muted — not applied: the room has audio unmuted".
    """
    effect_verb = _effect_verb(verb, verdict.wanted)
    room = style.literal(verdict.room_id or "?")
    effect = describe_effect(style, effect_verb, verdict.wanted)
    request_id = request_id_phrase(style, verdict.request_id)
    if not verdict.read_back or verdict.outcome is Outcome.NOT_ATTEMPTED:
        # Nothing was read for a row not attempted: it says so, as a recorded outcome does.
        return _recorded_line(style, verdict, room, effect, request_id)
    if verdict.outcome is Outcome.IN_PLACE:
        return f"{OK_MARK} {room} — {effect} — the change is in place · {request_id}"
    if verdict.outcome is Outcome.NOT_APPLIED:
        found = _found_phrase(style, effect_verb, verdict)
        return f"{FAIL_MARK} {room} — {effect} — not applied: {found} · {request_id}"
    if verdict.error_code is not None:
        why = f"error {verdict.error_code}: {style.text(verdict.error_info or '')}"
    else:
        why = style.text(verdict.error_info or "the read failed")
    return (
        f"{WARN_MARK} {room} — {effect} — unknown, it could not be read back ({why}) · {request_id}"
    )


def _recorded_line(
    style: Style, verdict: RoomVerdict, room: str, effect: str, request_id: str
) -> str:
    """A row the stopped replica had finished: its own outcome, as recorded."""
    outcome = verdict.outcome
    if outcome in (Outcome.OK, Outcome.NOOP):
        return f"{OK_MARK} {room} — {effect} — done before it stopped · {request_id}"
    if outcome is Outcome.NOT_ATTEMPTED:
        return f"{FAIL_MARK} {room} — {effect} — not attempted · {request_id}"
    if verdict.error_code is not None:
        error = f"error {verdict.error_code}: {style.text(verdict.error_info or '')}"
    else:
        error = style.text(verdict.error_info or outcome.value)
    return f"{FAIL_MARK} {room} — {effect} — {style.text(outcome.value)} ({error}) · {request_id}"


def _found_phrase(style: Style, verb: str | None, verdict: RoomVerdict) -> str:
    """What the read found instead of the wanted state."""
    found = verdict.found or {}
    account = verdict.wanted.get("Member_Account")
    who = style.literal(account) if isinstance(account, str) else "the account"
    if "in_room" in found:
        return f"{who} is still in the room"
    if "banned" in found:
        return f"{who} is {'still banned' if found['banned'] else 'not banned'}"
    if "exists" in found:
        return "the room still exists"
    differing = {k: v for k, v in found.items() if verdict.wanted.get(k) != v}
    if not differing:
        return "the room does not hold the requested values"
    return f"the room has {describe_changes(style, differing)}"
