"""`Presenter`: which renderer method words each prepared outcome, the `ok` flags, reads, and an
unexpected error turned into an answer whose correlation id is also in the log.

The presenter runs over a real `RoomService` (`tests.bot.corekit`); the renderer is a tiny
recording one, so what is asserted is the presenter's choice, not any wording.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from bot.outcomes import (
    Approved,
    BannedView,
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
from bot.policy import Decision, GroupDirectory, Policy
from bot.presenter import Answer, Confirm, Presenter
from bot.service import RoomService
from bot.timeline import TimelineView
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import ALICE, MALLORY, Core, actor


@dataclass(frozen=True)
class Said:
    """What the recording renderer was asked to word: the method and its argument."""

    method: str
    subject: Any


class RecordingRenderer:
    """A `Renderer[Said]`: each method returns which method it was, and with what."""

    def rejected(self, rejected: Rejected) -> Said:
        return Said("rejected", rejected)

    def help(self, reply: HelpReply) -> Said:
        return Said("help", reply)

    def dry_run(self, dry: DryRun) -> Said:
        return Said("dry_run", dry)

    def confirmation(self, needs: NeedsConfirmation) -> Said:
        return Said("confirmation", needs)

    def show(self, views: Sequence[RoomView]) -> Said:
        return Said("show", list(views))

    def history(self, view: HistoryView) -> Said:
        return Said("history", view)

    def timeline(self, view: TimelineView) -> Said:
        return Said("timeline", view)

    def members(self, view: MembersView) -> Said:
        return Said("members", view)

    def banned(self, view: BannedView) -> Said:
        return Said("banned", view)

    def seats(self, view: SeatsView) -> Said:
        return Said("seats", view)

    def timers(self, view: TimersView) -> Said:
        return Said("timers", view)

    def unexpected_error(self, correlation_id: str) -> Said:
        return Said("unexpected_error", correlation_id)


def _presenter(core: Core) -> Presenter[Said]:
    return Presenter(core.service, RecordingRenderer())


@pytest.mark.parametrize(
    ("text", "who", "method", "kind", "ok"),
    [
        ("frobnicate room-test", ALICE, "rejected", Rejected, False),
        ("mute-all room-test", MALLORY, "rejected", Rejected, False),
        ("help", MALLORY, "help", HelpReply, True),
        ("mute-all room-test --dry-run", ALICE, "dry_run", DryRun, True),
    ],
)
async def test_an_answer_now_is_worded_by_the_matching_method(
    core: Core, text: str, who: str, method: str, kind: type, ok: bool
) -> None:
    reply = await _presenter(core).answer(text, actor(who))
    assert isinstance(reply, Answer)
    assert reply.ok is ok
    assert reply.message.method == method
    assert isinstance(reply.message.subject, kind)
    assert core.emulator.requests == []


async def test_a_refusal_keeps_its_denial_for_the_renderer(core: Core) -> None:
    reply = await _presenter(core).answer("mute-all room-test", actor(MALLORY))
    assert isinstance(reply, Answer)
    rejected = reply.message.subject
    assert isinstance(rejected, Rejected)
    assert rejected.denial is not None
    assert rejected.denial.user_id == MALLORY


async def test_a_high_impact_request_becomes_a_prompt(core: Core) -> None:
    reply = await _presenter(core).answer("lockdown room-test", actor())
    assert isinstance(reply, Confirm)
    assert reply.message == Said("confirmation", reply.needs)
    assert reply.needs.command.verb == "lockdown"


async def test_approved_work_is_handed_back_unworded(core: Core) -> None:
    reply = await _presenter(core).answer("mute-all room-test", actor())
    assert isinstance(reply, Approved)
    assert reply.command.verb == "mute-all"
    assert core.emulator.requests == []  # the adapter carries it out, not the presenter


async def test_defer_is_passed_to_the_service(core: Core) -> None:
    deferred: list[Any] = []
    reply = await _presenter(core).answer("frobnicate", actor(), defer=deferred.append)
    assert isinstance(reply, Answer)
    assert await core.rows() == []
    [work] = deferred
    await work
    assert len(await core.rows()) == 1


# -- reads ----------------------------------------------------------------------------------------


async def test_show_is_ok_only_when_every_room_was_read(core: Core) -> None:
    presenter = _presenter(core)
    good = await core.service.prepare("show room-test room-2", actor())
    assert isinstance(good, Approved)
    read = await presenter.read(good)
    assert read.ok is True
    assert read.message.method == "show"
    assert [v.room_id for v in read.message.subject] == ["room-test", "room-2"]

    partly = await core.service.prepare("show room-test ghost-room", actor())
    assert isinstance(partly, Approved)
    read = await presenter.read(partly)
    assert read.ok is False
    assert read.message.method == "show"


async def test_history_is_ok_unless_it_has_a_problem(make_core: CoreFactory) -> None:
    core = await make_core()
    approved = await core.service.prepare("history room-test", actor())
    assert isinstance(approved, Approved)
    read = await _presenter(core).read(approved)
    assert read.ok is True
    assert read.message.method == "history"
    assert isinstance(read.message.subject, HistoryView)

    unaudited = await make_core(with_audit=False)
    read = await _presenter(unaudited).read(approved)
    assert read.ok is False
    assert read.message.subject.problem == "the audit trail is not configured"


async def test_read_refuses_a_write(core: Core) -> None:
    approved = await core.service.prepare("mute-all room-test", actor())
    assert isinstance(approved, Approved)
    with pytest.raises(ValueError, match="not a read verb: mute-all"):
        await _presenter(core).read(approved)
    assert core.emulator.requests == []


# -- the unexpected -------------------------------------------------------------------------------


class _BrokenPolicy(Policy):
    """A policy with a bug: deciding raises something nobody expects."""

    async def decide(
        self, *, user_id: str, verb: str, channel_id: str | None, groups: GroupDirectory | None
    ) -> Decision:
        raise RuntimeError("policy bug")


async def test_an_error_inside_prepare_becomes_an_answer_with_a_logged_id(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    service = RoomService(client=core.client, policy=_BrokenPolicy(verbs=["mute-all"]))
    presenter = Presenter(service, RecordingRenderer())
    with caplog.at_level(logging.ERROR, logger="bot.presenter"):
        reply = await presenter.answer("mute-all room-test", actor())

    assert isinstance(reply, Answer)
    assert reply.ok is False
    assert reply.message.method == "unexpected_error"
    correlation_id = reply.message.subject
    assert isinstance(correlation_id, str)
    assert correlation_id
    [record] = [r for r in caplog.records if correlation_id in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert ALICE in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert core.emulator.requests == []


async def test_each_unexpected_error_gets_its_own_id(core: Core) -> None:
    service = RoomService(client=core.client, policy=_BrokenPolicy(verbs=["mute-all"]))
    presenter = Presenter(service, RecordingRenderer())
    first = await presenter.answer("mute-all room-test", actor())
    second = await presenter.answer("mute-all room-test", actor())
    assert isinstance(first, Answer)
    assert isinstance(second, Answer)
    assert first.message.subject != second.message.subject
