"""A request and its outcome, in words: who ran what (`request_head`), how far it got and how it
ended (`progress_status`, `final_status`), each target's line with its failure and RequestId,
the notes under it, and a policy refusal (`denial_sentence`)."""

from __future__ import annotations

import re
from typing import Final

from bot.commands import VERBS, Command
from bot.models import is_seat_target
from bot.outcomes import Actor, Failure, Progress, RoomResult, RunKind, RunResult
from bot.policy import Denial
from bot.tencent.errors import CONFIGURATION_CODES
from bot.wording.changes import PAST_TENSE, describe_effect, rooms_phrase
from bot.wording.style import FAIL_MARK, OK_MARK, WARN_MARK, WORKING_MARK, Style

#: The verb an undo undoes, by the verb it runs (an undo of a ban runs `unban`).
_UNDONE_BY: Final = {spec.undo_verb: name for name, spec in VERBS.items() if spec.undo_verb}


def request_id_phrase(style: Style, request_id: str | None) -> str:
    """ "RequestId …", or why there is none."""
    if request_id:
        return f"RequestId {style.literal(request_id)}"
    return "no RequestId (Tencent did not answer)"


def failure_phrase(style: Style, failure: Failure) -> str:
    """A failure in one line: code, what Tencent said, and the hint — without saying a thing
    twice: a hint's first clause ("room does not exist or was destroyed — check the ID") is
    left out when the message already says it (`restates`), and a bare "error N" message gives
    way to the hint."""
    hint = failure.hint
    message = failure.message
    if failure.code is not None and message.strip() == f"error {failure.code}":
        message = ""
    meaning, dash, action = hint.partition(" — ")
    if message and dash and restates(message, meaning):
        hint = action
    if failure.code is not None:
        head = f"error {failure.code}" + (f": {style.text(message)}" if message else "")
        if not message and hint:
            return f"{head}: {style.prose(hint)}"
    else:
        head = style.text(message)
    return f"{head} — {style.prose(hint)}" if hint else head


#: Words too common to show that two phrases say the same thing.
_COMMON_WORDS: Final = frozenset(
    {"does", "this", "that", "with", "from", "have", "there", "their", "were", "been", "into"}
)


def restates(message: str, clause: str) -> bool:
    """True when `message` already says what `clause` says: most (two thirds) of the clause's
    words of four letters or more are in the message (so "room 'x' does not exist" restates
    "room does not exist or was destroyed", but "sig verify failed" does not restate "the
    UserSig failed verification")."""
    words = [w for w in re.findall(r"[a-z0-9]{4,}", clause.lower()) if w not in _COMMON_WORDS]
    if not words:
        return False
    said = set(re.findall(r"[a-z0-9]{4,}", message.lower()))
    return sum(w in said for w in words) * 3 >= len(words) * 2


def request_head(style: Style, command: Command, actor: Actor, kind: RunKind) -> str:
    """Who ran what on which rooms (and accounts): the first line of a request's parent."""
    count = len(command.rooms)
    rooms = rooms_phrase(style, command.rooms)
    if command.accounts:
        noun = "account" if len(command.accounts) == 1 else "accounts"
        rooms += f" ({noun} {rooms_phrase(style, command.accounts)})"
    if command.seats:
        noun = "seat" if len(command.seats) == 1 else "seats"
        rooms += f" ({noun} {', '.join(map(str, command.seats))})"
    plural = "s" if count != 1 else ""
    shown = _UNDONE_BY.get(command.verb, command.verb) if kind is RunKind.UNDO else command.verb
    verb = style.literal(f"/room {shown}")
    who = style.user(actor.user_id)
    if kind is RunKind.UNDO:
        return f"↩️ {who} is undoing {verb} on {count} room{plural}: {rooms}"
    if kind is RunKind.RETRY:
        return f"🔁 {who} is retrying {verb} on {count} failed room{plural}: {rooms}"
    if kind is RunKind.REVERT:
        return f"⏰ Time's up for {who}'s {verb}: reverting {count} room{plural}: {rooms}"
    return f"{who} ran {verb} on {count} room{plural}: {rooms}"


def progress_status(progress: Progress) -> str:
    """The status line while a request runs, e.g. "⏳ 37/120 done, 2 failed"."""
    failed = f", {progress.failed} failed" if progress.failed else ""
    return f"{WORKING_MARK} {progress.done}/{progress.total} done{failed}"


def final_status(run: RunResult) -> str:
    """The status line once a request has finished, counting what changed, what already was so
    (nothing changed there), what was set without a read first, and what failed.

    E.g. "✅ done: 2/2 rooms changed", "✅ done: 1/2 rooms changed, 1 already so",
    "⚠️ partly done: 1/3 rooms changed, 1 already so, 1 failed".
    """
    total = len(run.results)
    failed = len(run.failed)
    verb = run.command.verb
    noun = "account" if run.command.accounts else "seat" if run.command.seats else "room"
    done = PAST_TENSE.get(verb, "changed")
    if run.refused is not None:
        return f"{FAIL_MARK} not done: {run.refused}"
    if total and failed == total:
        errors = f"{failed} error{'s' if failed != 1 else ''}"
        return f"{FAIL_MARK} failed: no {noun} {done} ({errors})"
    if verb in PAST_TENSE:
        counts = [(len(run.succeeded), done), (failed, "failed")]
    else:
        counts = [
            (len(run.changed), "changed"),
            (len(run.set_unread), "set"),
            (len(run.already), "already so"),
            (failed, "failed"),
        ]
    parts = [(count, label) for count, label in counts if count]
    first_count, first_label = parts[0] if parts else (0, done)
    rooms = noun if total == 1 else f"{noun}s"
    phrase = ", ".join(
        [
            f"{first_count}/{total} {rooms} {first_label}",
            *(f"{c} {label}" for c, label in parts[1:]),
        ]
    )
    if not run.changed and not run.set_unread and run.already and not failed:
        phrase += ", nothing changed"
    if failed:
        return f"{WARN_MARK} partly done: {phrase}"
    return f"{OK_MARK} done: {phrase}"


def room_line(style: Style, result: RoomResult, verb: str | None = None) -> str:
    """One target's outcome: mark, room, what changed (or, for `verb` a member verb or destroy,
    what was done) or why not, and the RequestId."""
    room = style.literal(result.room_id)
    if result.account is not None and result.failure is not None:
        room += f" · {style.literal(result.account)}"
    elif result.failure is not None and is_seat_target(result.changes):
        room += f" · seat {result.changes['Index']}"
    if result.failure is None:
        what = describe_effect(style, verb, result.changes)
        if result.noop:
            what += " — it already was, nothing changed"
        return f"{OK_MARK} {room} — {what} · {request_id_phrase(style, result.request_id)}"
    request_id = result.failure.request_id or result.request_id
    return (
        f"{FAIL_MARK} {room} — {failure_phrase(style, result.failure)} · "
        f"{request_id_phrase(style, request_id)}"
    )


def read_failure_line(style: Style, room_id: str, failure: Failure) -> str:
    """Why a room could not be read (`show`, `members`, `banned`), with Tencent's RequestId."""
    return (
        f"{FAIL_MARK} {style.literal(room_id)} — {failure_phrase(style, failure)} · "
        f"{request_id_phrase(style, failure.request_id)}"
    )


def read_before_note(run: RunResult) -> str | None:
    """Why a big request offers no Undo, or None."""
    if not run.read_before and run.kind is RunKind.REQUEST:
        return (
            f"Previous values were not read first for a request this big ({len(run.results)} "
            "rooms), so Undo is not offered."
        )
    return None


def outcome_lines(style: Style, run: RunResult) -> list[str]:
    """Every target's line, failures first (so none is lost below a long list). Failures for
    roombot's own configuration (credentials, SDKAppID, URL) are said once, for all their
    targets; the targets withdrawn before their call follow in one line; then the successes."""
    verb = run.command.verb
    skipped = {id(r) for r in run.not_attempted}
    lines: list[str] = []
    grouped: dict[tuple[int | None, str, str], list[RoomResult]] = {}
    for result in run.failed:
        failure = result.failure
        if id(result) in skipped or failure is None:
            continue
        if failure.code in CONFIGURATION_CODES:
            grouped.setdefault((failure.code, failure.message, failure.hint), []).append(result)
        else:
            lines.append(room_line(style, result, verb))
    for same in grouped.values():
        lines.append(_configuration_line(style, same))
    withdrawn = not_attempted_line(style, run)
    if withdrawn is not None:
        lines.append(withdrawn)
    return lines + [room_line(style, r, verb) for r in run.succeeded]


def _configuration_line(style: Style, results: list[RoomResult]) -> str:
    """One configuration error, once, with every target it stopped and their RequestIds."""
    first = results[0]
    assert first.failure is not None
    targets = ", ".join(
        f"{style.literal(r.account or r.room_id)} ({request_id_phrase(style, r.request_id)})"
        for r in results[:10]
    )
    more = f" and {len(results) - 10} more" if len(results) > 10 else ""
    return f"{FAIL_MARK} {failure_phrase(style, first.failure)}: {targets}{more}"


def not_undoable_note(run: RunResult) -> str | None:
    """That what was done cannot be undone (kick, destroy), or None."""
    if run.kind is not RunKind.REQUEST or not run.succeeded:
        return None
    if run.command.verb == "kick":
        return "A kick cannot be undone: the accounts may join again unless they are banned."
    if run.command.verb == "destroy":
        return "A destroyed room cannot be brought back."
    if run.command.verb == "kick-seat":
        return "Taking someone off a seat cannot be undone: they may take a seat again."
    return None


def not_attempted_line(style: Style, run: RunResult) -> str | None:
    """One line for every target withdrawn before its call (said once, not once per target)."""
    skipped = run.not_attempted
    if not skipped:
        return None
    names = [r.account or r.room_id for r in skipped]
    why = skipped[0].failure.message if skipped[0].failure else "not attempted"
    listed = rooms_phrase(style, names)
    return f"{FAIL_MARK} {len(skipped)} not attempted — {style.text(why)}: {listed}"


def audit_failed_note(style: Style, run: RunResult) -> str | None:
    """That the audit trail could not be written for this run, or None."""
    if run.audit_error:
        return (
            f"{WARN_MARK} The audit trail could not be written ({style.text(run.audit_error)}); "
            "the results above are still what Room Engine answered."
        )
    return None


def denial_sentence(style: Style, denial: Denial) -> str:
    """A policy refusal: the verb, the caller's ID, and what might explain it."""
    you, verb = style.you(denial.user_id), (style.quote or style.literal)(denial.verb)
    if denial.unknown_verb:
        return f"{you} cannot run {verb}: it is not a verb this policy knows."
    place = "in this channel" if denial.channel_id else "here"
    text = f"{you} are not allowed to run {verb} {place}."
    if denial.guardrail_roles:
        count = len(denial.guardrail_roles)
        quote = style.quote or style.literal
        names = ", ".join(quote(role) for role in denial.guardrail_roles)
        where = ", ".join(style.channel(channel) for channel in denial.guardrail_channels)
        text += (
            f" Your {'role' if count == 1 else 'roles'} {names} allow{'s' if count == 1 else ''} "
            f"it only in {where} (a channel guardrail): run it there, or ask an admin for a role "
            "that allows it here."
        )
    else:
        text += " Ask an admin to add you to a role that allows it."
    for problem in denial.group_problems:
        text += f" Note: {style.text(problem.rstrip('.'))}; try again in a minute."
    if denial.groups_unavailable:
        text += " Note: roles granted through user groups cannot be checked here."
    return text
