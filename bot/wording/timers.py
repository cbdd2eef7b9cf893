"""Time-boxed changes (`--for`, DESIGN §2.11) in words: when a change ends ("reverts at 14:30
UTC, in 30 min"), what its revert left alone and why, and that a revert ran late. Times are in
UTC; core sentences (backticks for literals), formatted by each adapter's `Style`."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.outcomes import PendingTimer, RunKind, RunResult, TimersView
from bot.wording.changes import describe_change, describe_setting
from bot.wording.style import CORE, WARN_MARK, Style


def utc_time(at: float, *, now: float | None = None) -> str:
    """`at` (Unix seconds) as people read it: "14:30 UTC", with the date when it is not the
    same day as `now` ("2026-12-08 14:30 UTC")."""
    moment = datetime.fromtimestamp(at, UTC)
    today = datetime.fromtimestamp(now, UTC).date() if now is not None else moment.date()
    if moment.date() == today:
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def span(seconds: float) -> str:
    """A length of time, roughly, as people say it: "45 s", "30 min", "1 h 30 min", "2 d 3 h"."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def relative(at: float, now: float) -> str:
    """ "in 30 min" (or "now" once `at` has come)."""
    return f"in {span(at - now)}" if at > now else "now"


def reverts_line(at: float, now: float) -> str:
    """When a time-boxed change ends: "reverts at 14:30 UTC, in 30 min"."""
    return f"reverts at {utc_time(at, now=now)}, {relative(at, now)}"


def ends_sentence(at: float, now: float) -> str:
    """The sentence under a time-boxed change: when it ends, and what happens then."""
    return (
        f"⏰ This change {reverts_line(at, now)}: roombot then sets back what it changed, "
        "unless someone changed it since."
    )


def dry_run_revert_note(seconds: int, now: float) -> str:
    """What a dry run of a time-boxed change adds: the revert that would follow, and when."""
    at = now + seconds
    return (
        f"Then, at {utc_time(at, now=now)} ({relative(at, now)}), roombot would set back the "
        "same settings to the values read before the change, leaving alone any that someone "
        "changed in the meantime."
    )


def late_note(due: float, ran: float) -> str:
    """A revert that ran well after its time: "due 14:30 UTC, reverted 14:37 after a restart"."""
    ran_at = datetime.fromtimestamp(ran, UTC).strftime("%H:%M")
    return (
        f"Late: due {utc_time(due, now=ran)}, reverted {ran_at} after a restart "
        "(no roombot was running at its time)."
    )


def left_alone_note(room: str, field: str, now_value: object, why: str) -> str:
    """One field a revert left alone: "`room-1`: audio off left alone — muted again by …"."""
    return f"`{room}`: {describe_setting(CORE, field, now_value)} left alone — {why}"


def superseded_why(user_id: str, verb: str | None, request_key: str) -> str:
    """Why: a later change through roombot set that field (it wins over the timer)."""
    shown = f"`/room {verb}`" if verb else "a later request"
    return f"set again by `{user_id}` with {shown} since (request `{request_key[:12]}`)"


def changed_since_why(who: str | None) -> str:
    """Why: the field no longer holds the value roombot set."""
    return f"changed since {who}" if who else "changed since, outside roombot or by someone else"


def timebox_notes(style: Style, run: RunResult, now: float) -> list[str]:
    """What a finished request adds about time boxes: when a time-boxed change ends (or that
    its revert could not be recorded), and a revert's own notes (fields left alone, late)."""
    notes = [style.prose(note) for note in run.notes]
    timebox = run.command.timebox_s if run.kind is RunKind.REQUEST else None
    if timebox is None or not run.succeeded:
        return notes
    if run.reverts_at is not None:
        notes.append(style.prose(ends_sentence(run.reverts_at, now)))
    else:
        notes.append(
            f"{WARN_MARK} The revert in {span(timebox)} could not be recorded (the audit trail "
            "was not written): this change stays until someone undoes it."
        )
    return notes


def timers_lines(style: Style, view: TimersView, now: float) -> list[str]:
    """`timers`: a head, then one line per pending revert: where, what, who, when."""
    where = f" in {', '.join(style.literal(r) for r in view.rooms)}" if view.rooms else ""
    if view.problem is not None:
        return [f"Time-boxed changes{where}: {style.text(view.problem)}"]
    if not view.timers:
        return [f"No time-boxed change{where} is waiting to be reverted."]
    count = len(view.timers)
    lines = [f"{count} time-boxed change{'s' if count != 1 else ''}{where} to revert:"]
    for timer in view.timers:
        command = timer.command
        what = ", ".join(describe_setting(style, k, v) for k, v in command.changes.items())
        if command.seats:
            what = f"seats {', '.join(map(str, command.seats))}: {what}"
        rooms = ", ".join(style.literal(room) for room in command.rooms[:10])
        more = f" and {len(command.rooms) - 10} more" if len(command.rooms) > 10 else ""
        line = (
            f"⏰ {rooms}{more} — {what or command.verb} "
            f"({style.literal('/room ' + command.verb)} by {style.user(timer.user_id)}), "
            f"{reverts_line(timer.due, now)}"
        )
        if timer.superseded_by:
            user, verb = timer.superseded_by
            with_verb = f" with {style.literal('/room ' + verb)}" if verb else ""
            line += (
                f" — superseded: set again since by {style.user(user)}{with_verb}, so it will "
                "set nothing back"
            )
        lines.append(line)
    return lines


def until_phrase(style: Style, timer: PendingTimer, now: float) -> str:
    """One pending timer from a room's point of view: "audio muted until 14:30 UTC (in 25 min),
    `/room mute-all` by @alice"."""
    command = timer.command
    what = ", ".join(describe_change(style, k, v) for k, v in command.changes.items())
    if command.seats:
        what = f"seats {', '.join(map(str, command.seats))} {what}"
    return (
        f"{what or command.verb} until {utc_time(timer.due, now=now)} ({relative(timer.due, now)}),"
        f" {style.literal('/room ' + command.verb)} by {style.user(timer.user_id)}"
    )


def room_timers_line(style: Style, timers: tuple[PendingTimer, ...], now: float) -> str | None:
    """A room card's line about its time-boxed changes, or None when it has none."""
    if not timers:
        return None
    return "⏰ " + "; ".join(until_phrase(style, t, now) for t in timers)


def home_timer_line(style: Style, timer: PendingTimer, now: float) -> str:
    """One of the user's pending timers on the App Home: where, what, until when."""
    rooms = ", ".join(style.literal(room) for room in timer.command.rooms[:5])
    more = f" and {len(timer.command.rooms) - 5} more" if len(timer.command.rooms) > 5 else ""
    return f"⏰ {rooms}{more}: {until_phrase(style, timer, now)}"
