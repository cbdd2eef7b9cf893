"""Two-person approval through `RoomService` (DESIGN §2.12): what `prepare` and `confirm` say
about a request that needs approval, that `submit` asks rather than runs, the confirmation
first, dry runs never, the console's refusal, and Undo judged by the same rule."""

from __future__ import annotations

import pytest

from bot.audit import Outcome, RequestState, Source
from bot.outcomes import (
    ApprovalPending,
    Approved,
    DryRun,
    NeedsConfirmation,
    Plan,
    Rejected,
    RunResult,
)
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import ALICE, BOB, Core, actor
from tests.bot.requestkit import RecordingDelivery

POLICY = f"""
[roles.mods]
verbs = ["mute-all", "unmute-all", "lockdown", "show"]
users = ["{ALICE}", "{BOB}"]

[approval]
verbs = ["lockdown"]
above_rooms = 1
approvers = ["{BOB}"]
"""


@pytest.fixture
async def core(make_core: CoreFactory) -> Core:
    return await make_core(policy_toml=POLICY, allowed_users=())


async def _approved(core: Core, text: str, **where: object) -> Approved:
    prepared = await core.service.prepare(text, actor(**where))  # type: ignore[arg-type]
    assert isinstance(prepared, Approved), prepared
    return prepared


def _updates(core: Core) -> list[str]:
    return [r.command for r in core.emulator.requests if r.command == "update_room_info"]


async def test_prepare_says_which_writes_need_approval_and_submit_asks_instead_of_running(
    core: Core,
) -> None:
    one = await _approved(core, "mute-all room-test")
    assert one.approval is None
    two = await _approved(core, "mute-all room-test room-2")
    assert two.approval == ("it changes 2 rooms (more than 1) and needs a second person's approval")
    delivery = RecordingDelivery()
    pending = await core.service.submit(core.service.plan(two), delivery)
    assert isinstance(pending, ApprovalPending)
    assert pending.approvers == (BOB,)
    assert _updates(core) == []
    assert delivery.kinds() == []
    record = await core.store.get_request(pending.request_key)
    assert record is not None
    assert record.state is RequestState.AWAITING_APPROVAL
    approvals = core.service.approvals
    assert approvals is not None
    run = await approvals.approve(pending.request_key, actor(BOB, source=Source.BUTTON))
    assert isinstance(run, RunResult)
    assert _updates(core) == ["update_room_info", "update_room_info"]


async def test_a_dry_run_never_needs_approval(core: Core) -> None:
    dry = await core.service.prepare("mute-all room-test room-2 --dry-run", actor())
    assert isinstance(dry, DryRun)


async def test_confirmation_comes_before_approval(core: Core) -> None:
    needs = await core.service.prepare("lockdown room-test", actor())
    assert isinstance(needs, NeedsConfirmation)
    confirmed = await core.service.confirm(needs.key, actor(source=Source.BUTTON))
    assert isinstance(confirmed, Approved)
    assert confirmed.approval == "`lockdown` needs a second person's approval"
    pending = await core.service.submit(core.service.plan(confirmed), RecordingDelivery())
    assert isinstance(pending, ApprovalPending)
    assert _updates(core) == []


async def test_the_console_refuses_a_request_that_needs_approval_and_says_how_to_ask(
    core: Core,
) -> None:
    refused = await core.service.prepare("mute-all room-test room-2", actor(source=Source.CONSOLE))
    assert isinstance(refused, Rejected)
    assert refused.message.startswith("`mute-all` was not run: it changes 2 rooms")
    assert "the console cannot ask for it. Ask in Slack instead" in refused.message
    assert "/room mute-all room-test room-2" in refused.message
    rows = await core.rows()
    assert {r.outcome for r in rows} == {Outcome.DENIED}
    assert all((r.detail or "").startswith("needs approval: ") for r in rows)
    # A console request reaching submit (an undo typed there) is refused too, not asked.
    plan = core.service.plan(await _approved(core, "mute-all room-test room-2"))
    console_plan = Plan(
        command=plan.command,
        actor=actor(source=Source.CONSOLE),
        calls=plan.calls,
        raw_text=plan.raw_text,
    )
    run = await core.service.submit(console_plan, RecordingDelivery())
    assert isinstance(run, RunResult)
    assert run.refused is not None
    assert "Ask in Slack" in run.refused
    assert _updates(core) == []


async def test_an_undo_needs_approval_when_it_matches_a_rule_itself(core: Core) -> None:
    approvals = core.service.approvals
    assert approvals is not None
    small = await core.service.submit(
        core.service.plan(await _approved(core, "mute-all room-test")), RecordingDelivery()
    )
    assert isinstance(small, RunResult)
    undo_small = await core.service.plan_undo(small.request_key, actor(source=Source.BUTTON))
    assert isinstance(undo_small, Plan)
    assert approvals.why(undo_small) is None  # one room: runs at once
    big = await core.service.submit(
        core.service.plan(await _approved(core, "mute-all room-2 room-3")), RecordingDelivery()
    )
    assert isinstance(big, ApprovalPending)
    run = await approvals.approve(big.request_key, actor(BOB, source=Source.BUTTON))
    assert isinstance(run, RunResult)
    undo_big = await core.service.plan_undo(run.request_key, actor(source=Source.BUTTON))
    assert isinstance(undo_big, Plan)
    again = await core.service.submit(undo_big, RecordingDelivery())
    assert isinstance(again, ApprovalPending)  # a mass unmute needs approval too
