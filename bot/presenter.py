"""The one place a typed request becomes "what to say": shared by `/room`, mentions and the console.

`Presenter.answer(text, actor)` runs `RoomService.prepare` and turns its result into one of

* `Answer` — say this to the requester now (privately) and stop: a refusal, a parse error, help,
  a dry run, or an unexpected error (logged with a correlation id that the message shows);
* `Confirm` — show this Confirm / Cancel prompt for `needs`;
* `Approved` — acknowledged work for the adapter to carry out: `read(approved)` for `show`,
  `history`, `timeline`, `members`, `banned` and `seats`, or `RoomService.plan` + `run` for
  writes, each adapter with its own progress display.

Each adapter supplies a `Renderer` that words the outcomes in its own medium (Block Kit for Slack,
plain text for the terminal); the presenter decides what is said, the renderer how.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from bot import metrics
from bot.commands import VerbKind, canonical_verb
from bot.commands.tokens import word
from bot.logs import log_unexpected
from bot.outcomes import (
    Actor,
    Approved,
    BannedView,
    Deferrer,
    DryRun,
    HelpReply,
    HistoryView,
    MembersView,
    NeedsConfirmation,
    Rejected,
    RoomView,
    SeatsView,
    TimersView,
)
from bot.service import RoomService
from bot.timeline import TimelineView

log = logging.getLogger(__name__)

M = TypeVar("M")
M_co = TypeVar("M_co", covariant=True)


class Renderer(Protocol[M_co]):
    """How one adapter words the core's outcomes as messages of its own type."""

    def rejected(self, rejected: Rejected) -> M_co:
        """A refusal, a parse error or a stale click."""
        ...

    def help(self, reply: HelpReply) -> M_co:
        """Help listing only what the caller may run."""
        ...

    def dry_run(self, dry: DryRun) -> M_co:
        """The exact request bodies a `--dry-run` would send."""
        ...

    def confirmation(self, needs: NeedsConfirmation) -> M_co:
        """The prompt asking the requester to confirm a high-impact request."""
        ...

    def show(self, views: Sequence[RoomView]) -> M_co:
        """`show`: each room's current settings, or why it could not be read."""
        ...

    def history(self, view: HistoryView) -> M_co:
        """`history`: the newest audit entries of a room."""
        ...

    def members(self, view: MembersView) -> M_co:
        """`members`: who is in a room."""
        ...

    def timeline(self, view: TimelineView) -> M_co:
        """`timeline`: what happened in a window, in order."""
        ...

    def banned(self, view: BannedView) -> M_co:
        """`banned`: who is banned from a room, until when."""
        ...

    def seats(self, view: SeatsView) -> M_co:
        """`seats`: who sits on each seat of a room, and what each forbids."""
        ...

    def timers(self, view: TimersView) -> M_co:
        """`timers`: the time-boxed changes still to revert."""
        ...

    def unexpected_error(self, correlation_id: str) -> M_co:
        """roombot itself failed; the id is in the log line too."""
        ...


@dataclass(frozen=True)
class Answer(Generic[M]):
    """Say `message` to the requester now; nothing else happens. `ok` is False for refusals,
    invalid input and errors (the console's exit status counts them)."""

    message: M
    ok: bool


@dataclass(frozen=True)
class Confirm(Generic[M]):
    """Show `message`, the Confirm / Cancel prompt for `needs`."""

    message: M
    needs: NeedsConfirmation


class Presenter(Generic[M]):
    """Turns requests into answers through `service`, worded by `renderer`."""

    def __init__(self, service: RoomService, renderer: Renderer[M]) -> None:
        self.service = service
        self.renderer = renderer

    async def answer(
        self, text: str, actor: Actor, *, defer: Deferrer | None = None
    ) -> Answer[M] | Confirm[M] | Approved:
        """What to do about `text` from `actor`: an answer now, a prompt, or approved work.

        Never raises: an unexpected error becomes an `Answer` naming a correlation id that is
        also logged (the one place this happens on the acknowledgement path). `defer` is passed
        to `RoomService.prepare` (audit writes after a fast answer).
        """
        source = actor.source.value
        try:
            prepared = await self.service.prepare(text, actor, defer=defer)
        except Exception:
            metrics.count_request(source, _first_verb(text), "error")
            return self.unexpected(actor, "prepare")
        if isinstance(prepared, Rejected):
            if prepared.denial is not None:
                metrics.count_request(source, prepared.denial.verb, "denied")
            else:
                metrics.count_request(source, _first_verb(text), "invalid")
            return Answer(self.renderer.rejected(prepared), ok=False)
        if isinstance(prepared, HelpReply):
            metrics.count_request(source, "help", "help")
            return Answer(self.renderer.help(prepared), ok=True)
        if isinstance(prepared, DryRun):
            metrics.count_request(source, prepared.command.verb, "dry_run")
            return Answer(self.renderer.dry_run(prepared), ok=True)
        if isinstance(prepared, NeedsConfirmation):
            metrics.count_request(source, prepared.command.verb, "confirm")
            return Confirm(self.renderer.confirmation(prepared), prepared)
        return prepared  # a write is counted when it has run; a read by `read`

    async def show_rooms(self, rooms: Sequence[str], actor: Actor) -> Answer[M]:
        """`show` of `rooms` for `actor`, as if typed (each room ID quoted as it needs, so an ID
        such as `'standup'` stays itself): the rooms, or why `actor` may not see them."""
        reply = await self.answer("show " + " ".join(word(r) for r in rooms), actor)
        if isinstance(reply, Approved):
            return await self.read(reply)
        if isinstance(reply, Answer):
            return reply
        return Answer(reply.message, ok=False)  # unreachable: `show` never asks first

    async def read(self, approved: Approved) -> Answer[M]:
        """Carry out a read verb (`show`, `history`) and word its answer."""
        if approved.command.spec.kind is not VerbKind.READ:
            raise ValueError(f"not a read verb: {approved.command.verb}")
        answer = await self._read(approved)
        metrics.count_request(
            approved.actor.source.value, approved.command.verb, "ok" if answer.ok else "failed"
        )
        return answer

    async def _read(self, approved: Approved) -> Answer[M]:
        verb = approved.command.verb
        if verb == "history":
            view = await self.service.history(approved)
            return Answer(self.renderer.history(view), ok=view.problem is None)
        if verb == "timeline":
            timeline = await self.service.timeline(approved)
            return Answer(self.renderer.timeline(timeline), ok=timeline.problem is None)
        if verb == "members":
            members = await self.service.members(approved)
            return Answer(self.renderer.members(members), ok=members.failure is None)
        if verb == "banned":
            banned = await self.service.banned(approved)
            return Answer(self.renderer.banned(banned), ok=banned.failure is None)
        if verb == "timers":
            pending = await self.service.pending_timers(approved)
            return Answer(self.renderer.timers(pending), ok=pending.problem is None)
        if verb == "seats":
            seats = await self.service.seats(approved)
            return Answer(self.renderer.seats(seats), ok=seats.failure is None)
        views = await self.service.show(approved)
        return Answer(self.renderer.show(views), ok=all(v.failure is None for v in views))

    def unexpected(self, actor: Actor, step: str) -> Answer[M]:
        """Log the exception being handled with a fresh correlation id; the answer naming it."""
        correlation_id = log_unexpected(log, "%s failed, user=%s", step, actor.user_id)
        return Answer(self.renderer.unexpected_error(correlation_id), ok=False)


def _first_verb(text: str) -> str:
    """The canonical verb `text` starts with, or `unknown`: a label from a closed set."""
    words = text.split(maxsplit=1)
    return (canonical_verb(words[0]) if words else None) or "unknown"
