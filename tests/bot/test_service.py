"""`RoomService` in-process: what `prepare` decides and audits, confirmations, undo and retry
planning, reads, and one-shot event delivery.

The service runs over the Room Engine emulator and an in-memory audit store (`tests.bot.corekit`);
policies are loaded from TOML files as in production.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any

import pytest

from bot.audit import Outcome
from bot.callbacks import CallbackProcessor, Handling, parse_callback
from bot.commands import GENERAL_USAGE, VERBS, Command, parse_command
from bot.defaults import CONFIRMATION_TTL_S
from bot.models import RoomPatch
from bot.outcomes import (
    Approved,
    DryRun,
    FailureKind,
    HelpReply,
    NeedsConfirmation,
    Plan,
    Rejected,
    RunKind,
    RunResult,
    Source,
)
from bot.requests.delivery import LoggedDelivery
from bot.tencent.emulator_callbacks import update_room_info_body
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import (
    ADMIN,
    ALICE,
    BOB,
    GENERAL,
    INCIDENT,
    MALLORY,
    BrokenStore,
    Core,
    actor,
)

VIEWERS = """
[roles.viewers]
verbs = ["show", "history"]
users = ["U0VIEWER1"]
"""
MUTERS = """
[roles.muters]
verbs = ["mute-all"]
users = ["U0MUTER01"]
"""
INCIDENT_ONLY = f"""
[roles.responders]
verbs = ["lockdown", "lift-lockdown", "mute-all"]
users = ["{BOB}"]
channels = ["{INCIDENT}"]
"""


class Deferred:
    """A `Deferrer` that keeps the coroutines it is handed until the test runs them."""

    def __init__(self) -> None:
        self.pending: list[Coroutine[Any, Any, None]] = []

    def __call__(self, work: Coroutine[Any, Any, None]) -> object:
        self.pending.append(work)
        return None

    async def run(self) -> None:
        for work in self.pending:
            await work
        self.pending.clear()


async def _approved(core: Core, text: str, who: str = ALICE) -> Approved:
    prepared = await core.service.prepare(text, actor(who))
    assert isinstance(prepared, Approved), prepared
    return prepared


async def _needs(core: Core, text: str, who: str = ALICE, **where: Any) -> NeedsConfirmation:
    prepared = await core.service.prepare(text, actor(who, **where))
    assert isinstance(prepared, NeedsConfirmation), prepared
    return prepared


async def _executed(core: Core, text: str, who: str = ALICE) -> str:
    """Run `text` as `who`; the request key its rows carry."""
    run = await core.service.execute(await _approved(core, text, who))
    return run.request_key


# -- prepare: refusals and invalid input ----------------------------------------------------------


async def test_a_parse_error_is_rejected_with_usage_and_audited(core: Core) -> None:
    prepared = await core.service.prepare("frobnicate room-test", actor())
    assert isinstance(prepared, Rejected)
    assert "unknown command `frobnicate`" in prepared.message
    assert prepared.usage == GENERAL_USAGE
    assert prepared.denied is False
    assert prepared.denial is None
    [row] = await core.rows()
    assert row.outcome is Outcome.INVALID
    assert row.detail == prepared.message
    assert row.raw_text == "frobnicate room-test"
    assert row.verb is None
    assert row.user_id == ALICE
    assert core.emulator.requests == []


async def test_a_parse_error_names_the_verbs_usage(core: Core) -> None:
    prepared = await core.service.prepare("rename room-test", actor())
    assert isinstance(prepared, Rejected)
    assert prepared.usage == VERBS["rename"].usage


async def test_a_policy_refusal_carries_a_structured_denial_and_is_audited(core: Core) -> None:
    prepared = await core.service.prepare("mute-all room-test room-2", actor(MALLORY))
    assert isinstance(prepared, Rejected)
    assert prepared.denied is True
    denial = prepared.denial
    assert denial is not None
    assert (denial.verb, denial.user_id, denial.channel_id) == ("mute-all", MALLORY, GENERAL)
    assert denial.guardrail_roles == ()
    assert prepared.message == denial.summary()
    rows = await core.rows()
    assert [(r.room_id, r.outcome) for r in rows] == [
        ("room-test", Outcome.DENIED),
        ("room-2", Outcome.DENIED),
    ]
    assert len({r.request_key for r in rows}) == 1
    assert all(r.patch == {"IsAudioDisabled": True} for r in rows)
    assert all(r.detail == denial.summary() and MALLORY in (r.detail or "") for r in rows)
    assert core.emulator.requests == []


async def test_a_guardrail_refusal_names_the_role_and_its_channels(make_core: CoreFactory) -> None:
    core = await make_core(policy_toml=INCIDENT_ONLY)
    prepared = await core.service.prepare("mute-all room-test", actor(BOB, channel_id=GENERAL))
    assert isinstance(prepared, Rejected)
    assert prepared.denial is not None
    assert prepared.denial.guardrail_roles == ("responders",)
    assert prepared.denial.guardrail_channels == (INCIDENT,)
    allowed = await core.service.prepare("mute-all room-test", actor(BOB, channel_id=INCIDENT))
    assert isinstance(allowed, Approved)
    assert allowed.decision.role == "responders"


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("frobnicate room-test", Outcome.INVALID),
        ("mute-all room-test", Outcome.DENIED),
        ("mute-all room-test --dry-run", Outcome.DENIED),
    ],
)
async def test_with_defer_the_audit_write_waits_for_the_adapter(
    core: Core, text: str, outcome: Outcome
) -> None:
    defer = Deferred()
    prepared = await core.service.prepare(text, actor(MALLORY), defer=defer)
    assert isinstance(prepared, Rejected)
    assert await core.rows() == []  # nothing written yet: the adapter answers first
    assert len(defer.pending) == 1
    await defer.run()
    assert [r.outcome for r in await core.rows()] == [outcome]


async def test_with_defer_a_dry_run_is_audited_later(core: Core) -> None:
    defer = Deferred()
    prepared = await core.service.prepare("disable-chat room-2 --dry-run", actor(), defer=defer)
    assert isinstance(prepared, DryRun)
    assert await core.rows() == []
    await defer.run()
    [row] = await core.rows()
    assert row.outcome is Outcome.DRY_RUN
    assert row.patch == {"IsMessageDisabled": True}


# -- prepare: help --------------------------------------------------------------------------------


async def test_help_lists_only_what_the_caller_may_run(make_core: CoreFactory) -> None:
    core = await make_core(policy_toml=VIEWERS)
    viewer = await core.service.prepare("help", actor("U0VIEWER1"))
    assert isinstance(viewer, HelpReply)
    assert "`/room show ROOM...`" in viewer.text
    assert "`/room history ROOM`" in viewer.text
    assert "/room mute-all" not in viewer.text
    assert "--dry-run" not in viewer.text  # options only matter to someone who may change rooms

    everyone = await core.service.prepare("help", actor(ALICE))
    assert isinstance(everyone, HelpReply)
    assert "`/room mute-all ROOM...`" in everyone.text
    assert "--dry-run" in everyone.text

    nobody = await core.service.prepare("help", actor(MALLORY))
    assert isinstance(nobody, HelpReply)
    assert "/room show" not in nobody.text
    assert "/room help" in nobody.text

    operator = await core.service.prepare("", actor(MALLORY, is_operator=True))
    assert isinstance(operator, HelpReply)
    assert operator.text == everyone.text
    assert await core.rows() == []  # help is not a request to audit


async def test_help_for_one_verb_explains_it_whoever_asks(core: Core) -> None:
    prepared = await core.service.prepare("help mute-audio", actor(MALLORY))
    assert isinstance(prepared, HelpReply)
    assert prepared.text.startswith(f"`{VERBS['mute-all'].usage}`")
    assert "`IsAudioDisabled: true`" in prepared.text


# -- prepare: dry run, confirmation, approval -----------------------------------------------------


async def test_a_dry_run_shows_the_exact_bodies_and_calls_nothing(core: Core) -> None:
    prepared = await core.service.prepare(
        'set room-test room-2 audio=off name="Incident bridge" --dry-run', actor()
    )
    assert isinstance(prepared, DryRun)
    assert prepared.bodies == (
        {
            "RoomInfo": {
                "RoomId": "room-test",
                "RoomName": "Incident bridge",
                "IsAudioDisabled": True,
            }
        },
        {"RoomInfo": {"RoomId": "room-2", "RoomName": "Incident bridge", "IsAudioDisabled": True}},
    )
    assert prepared.command.dry_run
    assert core.emulator.requests == []
    rows = await core.rows()
    assert [(r.room_id, r.outcome) for r in rows] == [
        ("room-test", Outcome.DRY_RUN),
        ("room-2", Outcome.DRY_RUN),
    ]
    assert rows[0].patch == {"RoomName": "Incident bridge", "IsAudioDisabled": True}


async def test_a_dry_run_of_a_lockdown_needs_no_confirmation(core: Core) -> None:
    prepared = await core.service.prepare("lockdown room-test --dry-run", actor())
    assert isinstance(prepared, DryRun)
    [body] = prepared.bodies
    assert body["RoomInfo"] == {
        "RoomId": "room-test",
        "IsVideoDisabled": True,
        "IsAudioDisabled": True,
        "IsMessageDisabled": True,
        "IsScreenSharingDisabled": True,
    }


async def test_lockdown_needs_confirmation_and_nothing_is_called(core: Core) -> None:
    needs = await _needs(core, "lockdown room-test --reason raid")
    assert needs.reason == "`lockdown` changes several settings at once"
    assert needs.actor.user_id == ALICE
    assert needs.command.reason == "raid"
    assert needs.key
    assert core.emulator.requests == []
    assert await core.rows() == []


async def test_more_rooms_than_the_threshold_need_confirmation(make_core: CoreFactory) -> None:
    core = await make_core(confirm_above=2)
    needs = await _needs(core, "mute-all room-test room-2 room-3")
    assert needs.reason == "it changes 3 rooms (more than 2)"
    at_threshold = await core.service.prepare("mute-all room-test room-2", actor())
    assert isinstance(at_threshold, Approved)


async def test_a_threshold_of_zero_never_asks(make_core: CoreFactory) -> None:
    core = await make_core(confirm_above=0)
    rooms = " ".join(f"r{i}" for i in range(30))
    assert isinstance(await core.service.prepare(f"mute-all {rooms}", actor()), Approved)


async def test_reads_never_need_confirmation(make_core: CoreFactory) -> None:
    core = await make_core(confirm_above=1)
    assert isinstance(await core.service.prepare("show room-test room-2", actor()), Approved)


async def test_a_confirmation_without_a_working_store_is_refused(core: Core) -> None:
    await core.store.close()
    prepared = await core.service.prepare("lockdown room-test", actor())
    assert isinstance(prepared, Rejected)
    assert "nothing was done" in prepared.message
    assert core.emulator.requests == []


async def test_an_allowed_write_is_approved_and_planned_exactly(core: Core) -> None:
    approved = await _approved(core, "disable-chat room-test room-2 --reason spam")
    assert approved.decision.allowed
    assert approved.decision.reason == "allowed by ROOMBOT_ALLOWED_USERS"
    assert approved.command.verb == "disable-chat"
    plan = core.service.plan(approved)
    assert plan.kind is RunKind.REQUEST
    assert plan.raw_text == approved.command.canonical_text()
    assert [p.body() for p in plan.calls] == [
        {"RoomInfo": {"RoomId": "room-test", "IsMessageDisabled": True}},
        {"RoomInfo": {"RoomId": "room-2", "IsMessageDisabled": True}},
    ]
    assert core.emulator.requests == []  # prepare and plan call nothing
    run = await core.service.execute(approved)
    assert all(r.ok for r in run.results)
    assert core.emulator.rooms["room-2"]["IsMessageDisabled"] is True


# -- confirm and cancel ---------------------------------------------------------------------------


async def test_confirm_approves_the_prompted_command_once(core: Core) -> None:
    needs = await _needs(core, "lockdown room-test --reason raid")
    first = await core.service.confirm(needs.key, actor(source=Source.BUTTON))
    assert isinstance(first, Approved)
    assert first.command == needs.command
    assert first.actor.source is Source.BUTTON
    second = await core.service.confirm(needs.key, actor(source=Source.BUTTON))
    assert isinstance(second, Rejected)
    assert "already confirmed or cancelled" in second.message


async def test_only_the_requester_can_confirm_or_cancel(make_core: CoreFactory) -> None:
    core = await make_core(allowed_users=(ALICE, BOB))
    needs = await _needs(core, "lockdown room-test")
    for attempt in (core.service.confirm, core.service.cancel):
        refused = await attempt(needs.key, actor(BOB))
        assert isinstance(refused, Rejected)
        assert "only the person who ran the command" in refused.message
    assert isinstance(await core.service.confirm(needs.key, actor(ALICE)), Approved)


async def test_confirm_checks_the_policy_again_at_click_time(make_core: CoreFactory) -> None:
    core = await make_core(allowed_users=(), policy_toml=INCIDENT_ONLY)
    needs = await _needs(core, "lockdown room-test", BOB, channel_id=INCIDENT)
    core.service.set_policy(core.load_policy('[roles.r]\nverbs = ["show"]\nusers = ["U0BOB0001"]'))

    refused = await core.service.confirm(needs.key, actor(BOB, channel_id=INCIDENT))
    assert isinstance(refused, Rejected)
    assert refused.denied
    assert refused.denial is not None
    assert refused.denial.verb == "lockdown"
    [row] = await core.rows()
    assert row.outcome is Outcome.DENIED
    assert row.user_id == BOB
    assert core.emulator.requests == []


async def test_confirm_decides_for_the_channel_the_prompt_was_made_in(
    make_core: CoreFactory,
) -> None:
    core = await make_core(allowed_users=(), policy_toml=INCIDENT_ONLY)
    needs = await _needs(core, "lockdown room-test", BOB, channel_id=INCIDENT)
    # a click's envelope may name another channel (or none); the prompt's channel decides
    approved = await core.service.confirm(needs.key, actor(BOB, channel_id=None))
    assert isinstance(approved, Approved)
    assert approved.actor.channel_id == INCIDENT


async def test_a_prompt_expires(core: Core) -> None:
    on_time = await _needs(core, "lockdown room-test")
    late = await _needs(core, "lift-lockdown room-test")
    core.clock.advance(CONFIRMATION_TTL_S)
    assert isinstance(await core.service.confirm(on_time.key, actor()), Approved)
    core.clock.advance(1)
    expired = await core.service.confirm(late.key, actor())
    assert isinstance(expired, Rejected)
    assert "expired" in expired.message
    assert "10 minutes" in expired.message
    again = await core.service.confirm(late.key, actor())
    assert isinstance(again, Rejected)
    assert "expired" in again.message


async def test_an_unknown_prompt_is_refused(core: Core) -> None:
    refused = await core.service.confirm("no-such-key", actor())
    assert isinstance(refused, Rejected)
    assert "unknown" in refused.message


async def test_cancel_spends_the_prompt_and_is_audited(core: Core) -> None:
    needs = await _needs(core, "lift-lockdown room-test room-2 --reason over")
    cancelled = await core.service.cancel(needs.key, actor())
    assert isinstance(cancelled, Command)
    assert cancelled == needs.command
    rows = await core.rows()
    assert [(r.room_id, r.outcome) for r in rows] == [
        ("room-test", Outcome.CANCELLED),
        ("room-2", Outcome.CANCELLED),
    ]
    assert all(r.detail == "cancelled by the requester" and r.reason == "over" for r in rows)
    for late in (core.service.confirm, core.service.cancel):
        refused = await late(needs.key, actor())
        assert isinstance(refused, Rejected)
        assert "already confirmed or cancelled" in refused.message
    assert core.emulator.requests == []


async def test_without_an_audit_store_prompts_cannot_be_resolved(
    make_core: CoreFactory,
) -> None:
    core = await make_core(with_audit=False)
    for attempt in (core.service.confirm, core.service.cancel):
        refused = await attempt("any-key", actor())
        assert isinstance(refused, Rejected)
        assert "without the audit store" in refused.message


# -- undo -----------------------------------------------------------------------------------------


async def test_undo_restores_exactly_the_changed_fields(core: Core) -> None:
    core.emulator.rooms["room-2"]["IsVideoDisabled"] = True  # unrelated state must survive
    core.emulator.rooms["room-3"]["IsAudioDisabled"] = True  # a no-op: nothing to undo there
    key = await _executed(core, "mute-all room-test room-2 room-3")
    originals = {r.room_id: r.id for r in await core.rows()}

    plan = await core.service.plan_undo(key, actor(source=Source.BUTTON))
    assert isinstance(plan, Plan)
    assert plan.kind is RunKind.UNDO
    assert [p.body() for p in plan.calls] == [
        {"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": False}},
        {"RoomInfo": {"RoomId": "room-2", "IsAudioDisabled": False}},
    ]
    assert plan.expected == {
        "room-test": {"IsAudioDisabled": True},
        "room-2": {"IsAudioDisabled": True},
    }
    assert plan.undo_of == {
        ("room-test", None): originals["room-test"],
        ("room-2", None): originals["room-2"],
    }
    assert plan.command.rooms == ("room-test", "room-2")
    assert plan.command.reason == f"undo of mute-all run by {ALICE}"

    before = len(core.calls())
    run = await core.service.run(plan)
    assert all(r.ok for r in run.results)
    assert sorted(c.body["RoomInfo"]["RoomId"] for c in core.calls()[before:]) == [
        "room-2",
        "room-test",
    ]
    assert core.emulator.rooms["room-test"]["IsAudioDisabled"] is False
    assert core.emulator.rooms["room-2"]["IsAudioDisabled"] is False
    assert core.emulator.rooms["room-2"]["IsVideoDisabled"] is True
    assert core.emulator.rooms["room-3"]["IsAudioDisabled"] is True
    undos = [r for r in await core.rows() if r.undo_of is not None]
    assert {(r.room_id, None): r.undo_of for r in undos} == plan.undo_of
    assert all(r.source == "button" and r.outcome is Outcome.OK for r in undos)


async def test_undo_of_several_fields_restores_each_previous_value(core: Core) -> None:
    key = await _executed(core, 'set room-test audio=off name="Incident bridge" max-members=200')
    plan = await core.service.plan_undo(key, actor())
    assert isinstance(plan, Plan)
    [patch] = plan.calls
    assert isinstance(patch, RoomPatch)
    assert patch.changes() == {
        "RoomName": "room-test",
        "MaxMemberCount": 300,
        "IsAudioDisabled": False,
    }
    await core.service.run(plan)
    room = core.emulator.rooms["room-test"]
    assert (room["RoomName"], room["MaxMemberCount"], room["IsAudioDisabled"]) == (
        "room-test",
        300,
        False,
    )


async def test_undo_acts_once(core: Core) -> None:
    key = await _executed(core, "mute-all room-test")
    first = await core.service.plan_undo(key, actor())
    second = await core.service.plan_undo(key, actor())  # a click racing the first
    assert isinstance(first, Plan)
    assert isinstance(second, Plan)
    assert (await core.service.run(first)).succeeded
    calls = len(core.calls())
    # The racing click's request is a repeat of the one on record: it runs nothing.
    assert await core.service.submit(second, LoggedDelivery({"adapter": "log"})) is None
    assert len(core.calls()) == calls
    again = await core.service.plan_undo(key, actor())
    assert isinstance(again, Rejected)
    assert "already undone" in again.message


async def test_undo_needs_permission_for_every_restored_field(make_core: CoreFactory) -> None:
    core = await make_core(policy_toml=MUTERS)
    key = await _executed(core, "mute-all room-test")
    refused = await core.service.plan_undo(key, actor("U0MUTER01"))
    assert isinstance(refused, Rejected)
    assert refused.denied
    assert "`U0MUTER01`" in refused.message
    assert "`unmute-all`" in refused.message
    assert "`set`" in refused.message
    # Several verbs would each do: the refusal says one is enough (issue 27, item 9).
    assert "needs permission for any one of `" in refused.message
    # the refusal spent nothing: someone allowed can still undo
    assert isinstance(await core.service.plan_undo(key, actor(ALICE)), Plan)


async def test_undo_of_a_request_that_changed_nothing_is_refused(core: Core) -> None:
    core.emulator.rooms["room-test"]["IsAudioDisabled"] = True
    noop = await _executed(core, "mute-all room-test")
    failed = await _executed(core, "mute-all ghost-room")
    for key in (noop, failed):
        refused = await core.service.plan_undo(key, actor())
        assert isinstance(refused, Rejected)
        assert "nothing to undo" in refused.message


async def test_undo_of_a_request_too_big_to_read_first_is_refused(make_core: CoreFactory) -> None:
    rooms = [f"r-{i:02d}" for i in range(25)]
    core = await make_core(rooms=rooms, confirm_above=0)
    key = await _executed(core, "mute-all " + " ".join(rooms))
    refused = await core.service.plan_undo(key, actor())
    assert isinstance(refused, Rejected)
    assert "nothing to undo" in refused.message


async def test_undo_or_retry_of_an_unknown_request_is_refused(core: Core) -> None:
    for plan in (core.service.plan_undo, core.service.plan_retry):
        refused = await plan("0" * 32, actor())
        assert isinstance(refused, Rejected)
        assert "not in the audit trail" in refused.message


async def test_undo_of_a_seat_mode_first_set_is_refused_not_raised(core: Core) -> None:
    # get_room_info reads a new room's seat mode as "None", which update_room_info cannot set.
    assert core.emulator.rooms["room-test"]["TakeSeatMode"] == "None"
    key = await _executed(core, "seat-mode room-test apply")
    before = len(core.calls())
    refused = await core.service.plan_undo(key, actor())
    assert isinstance(refused, Rejected)
    assert refused.message == "there is nothing to undo for this request"
    assert core.calls()[before:] == []
    again = await core.service.plan_undo(key, actor())
    assert isinstance(again, Rejected)
    assert "already undone" not in again.message  # nothing was claimed


async def test_a_failed_undo_claim_is_not_reported_as_already_undone(
    make_core: CoreFactory,
) -> None:
    core = await make_core(store_class=BrokenStore)
    key = await _executed(core, "mute-all room-test")
    assert isinstance(core.store, BrokenStore)
    core.store.fail_claim = True
    plan = await core.service.plan_undo(key, actor())
    assert isinstance(plan, Plan)
    calls = len(core.calls())
    refused = await core.service.run(plan)
    assert refused.refused is not None
    assert "already undone" not in refused.refused
    assert "audit trail could not be written" in refused.refused
    assert "nothing was changed" in refused.refused
    assert len(core.calls()) == calls


async def _callback(core: Core, room: str, operator: str, platform: str) -> Handling:
    """Room Engine's UpdateRoomInfo callback for `room` as it stands, handled by roombot."""
    body = update_room_info_body(operator, core.emulator.rooms[room], 1, bools_as_strings=True)
    delivery = parse_callback(
        {"CallbackCommand": body["CallbackCommand"], "OptPlatform": platform},
        json.dumps(body).encode(),
    )
    processor = CallbackProcessor(core.store, admin_id=ADMIN, clock=core.clock)
    return (await processor.handle(delivery)).handling


async def _executed_and_echoed(core: Core, text: str) -> str:
    """Run `text`; Room Engine's callbacks about it reach roombot (its own change, echoed)."""
    key = await _executed(core, text)
    for room in parse_command(text).rooms:
        assert await _callback(core, room, ADMIN, "RESTAPI") is Handling.ECHO
    return key


async def _changed_outside(core: Core, room: str, **fields: Any) -> None:
    """Someone changes `room` in the Tencent console; the callback reaches roombot."""
    core.emulator.rooms[room].update(fields)
    assert await _callback(core, room, "ops-console", "Web") is Handling.OUTSIDE


async def test_undo_refuses_rooms_changed_outside_since_without_reading_them(core: Core) -> None:
    key = await _executed_and_echoed(core, "mute-all room-test room-2")
    await _changed_outside(core, "room-2", IsAudioDisabled=False)
    await _changed_outside(core, "room-test", RoomName="Renamed")  # not a field undo restores
    plan = await core.service.plan_undo(key, actor())
    assert isinstance(plan, Plan)
    assert set(plan.conflicts or {}) == {"room-2"}
    conflict = (plan.conflicts or {})["room-2"]
    assert conflict.kind is FailureKind.CONFLICT
    assert conflict.message.startswith("changed outside roombot since by `ops-console` at ")
    assert conflict.message.endswith("(audio unmuted)")

    before = len(core.calls("get_room_info"))
    run = await core.service.run(plan)
    reads = core.calls("get_room_info")[before:]
    assert [r.body for r in reads] == [{"RoomId": "room-test"}]  # room-2 is not even read
    by_room = {r.room_id: r for r in run.results}
    assert by_room["room-test"].ok
    assert by_room["room-2"].failure == conflict
    assert core.emulator.rooms["room-test"]["IsAudioDisabled"] is False
    assert core.emulator.rooms["room-2"]["IsAudioDisabled"] is False


async def test_undo_of_rooms_all_changed_outside_is_refused_naming_who(core: Core) -> None:
    key = await _executed_and_echoed(core, "mute-all room-test")
    await _changed_outside(core, "room-test", IsAudioDisabled=False)
    before = len(core.emulator.requests)
    refused = await core.service.plan_undo(key, actor())
    assert isinstance(refused, Rejected)
    assert refused.message.startswith(
        "not undone: changed outside roombot since this request — `room-test` by `ops-console` at "
    )
    assert "(audio unmuted)" in refused.message
    assert core.emulator.requests[before:] == []  # no read was needed
    again = await core.service.plan_undo(key, actor())
    assert isinstance(again, Rejected)
    assert "already undone" not in again.message  # nothing was claimed


async def test_an_outside_change_before_the_request_does_not_block_its_undo(core: Core) -> None:
    await _changed_outside(core, "room-test", IsAudioDisabled=True)
    key = await _executed_and_echoed(core, "unmute-all room-test")
    plan = await core.service.plan_undo(key, actor())
    assert isinstance(plan, Plan)
    assert not plan.conflicts


# -- retry ----------------------------------------------------------------------------------------


async def test_retry_plans_only_the_failed_rooms_once(core: Core) -> None:
    core.emulator.script("update_room_info", ["ok", 100006])  # room-2 is refused, not retried
    key = await _executed(core, "disable-chat room-test room-2 room-3")
    assert [r.outcome for r in await core.rows()] == [Outcome.OK, Outcome.FAILED, Outcome.OK]

    plan = await core.service.plan_retry(key, actor(source=Source.BUTTON))
    assert isinstance(plan, Plan)
    assert plan.kind is RunKind.RETRY
    assert [p.body() for p in plan.calls] == [
        {"RoomInfo": {"RoomId": "room-2", "IsMessageDisabled": True}}
    ]
    assert plan.command.verb == "disable-chat"
    run = await core.service.run(plan)
    assert all(r.ok for r in run.results)
    assert core.emulator.rooms["room-2"]["IsMessageDisabled"] is True

    again = await core.service.plan_retry(key, actor())
    assert isinstance(again, Rejected)
    assert "already retried" in again.message


async def test_retry_with_nothing_failed_is_refused(core: Core) -> None:
    key = await _executed(core, "disable-chat room-test")
    refused = await core.service.plan_retry(key, actor())
    assert isinstance(refused, Rejected)
    assert "nothing to retry" in refused.message


async def test_retry_needs_the_requests_verb(make_core: CoreFactory) -> None:
    core = await make_core(policy_toml=VIEWERS)
    core.emulator.script("update_room_info", [100006])  # refused: worth trying again later
    key = await _executed(core, "mute-all room-test")
    refused = await core.service.plan_retry(key, actor("U0VIEWER1"))
    assert isinstance(refused, Rejected)
    assert refused.denial is not None
    assert refused.denial.verb == "mute-all"
    assert isinstance(await core.service.plan_retry(key, actor(ALICE)), Plan)  # not spent


async def test_a_failed_retry_claim_is_not_reported_as_already_retried(
    make_core: CoreFactory,
) -> None:
    core = await make_core(store_class=BrokenStore)
    core.emulator.script("update_room_info", [100006])
    key = await _executed(core, "mute-all room-test")
    assert isinstance(core.store, BrokenStore)
    core.store.fail_claim = True
    plan = await core.service.plan_retry(key, actor())
    assert isinstance(plan, Plan)
    refused = await core.service.run(plan)
    assert refused.refused is not None
    assert "already retried" not in refused.refused
    assert "audit trail could not be written" in refused.refused


# -- reads ----------------------------------------------------------------------------------------


async def test_show_reads_each_room_or_says_why_not(core: Core) -> None:
    core.emulator.rooms["room-2"]["IsAudioDisabled"] = True
    views = await core.service.show(await _approved(core, "show room-2 ghost-room"))
    room, ghost = views
    assert room.room_id == "room-2"
    assert room.snapshot is not None
    assert room.snapshot.room.is_audio_disabled is True
    [read] = core.calls_for("room-2", "get_room_info")
    assert room.snapshot.request_id == read.request_id
    assert ghost.snapshot is None
    assert ghost.failure is not None
    assert ghost.failure.kind is FailureKind.API
    assert ghost.failure.code == 100004
    [miss] = core.calls_for("ghost-room", "get_room_info")
    assert ghost.failure.request_id == miss.request_id
    assert await core.rows() == []  # reads are not audited


async def test_history_lists_the_newest_entries_of_one_room(core: Core) -> None:
    for _ in range(6):
        await _executed(core, "mute-all room-test")
        await _executed(core, "unmute-all room-test")
    await _executed(core, "mute-all room-2")
    view = await core.service.history(await _approved(core, "history room-test"))
    assert view.problem is None
    assert view.room_id == "room-test"
    assert len(view.entries) == 10
    assert {e.room_id for e in view.entries} == {"room-test"}
    ids = [e.id for e in view.entries]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert view.entries[0].verb == "unmute-all"


async def test_history_says_why_it_has_nothing(make_core: CoreFactory) -> None:
    unaudited = await make_core(with_audit=False)
    view = await unaudited.service.history(await _approved(unaudited, "history room-test"))
    assert view.entries == ()
    assert view.problem == "the audit trail is not configured"

    broken = await make_core()
    approved = await _approved(broken, "history room-test")
    await broken.store.close()
    view = await broken.service.history(approved)
    assert view.entries == ()
    assert view.problem is not None
    assert "closed" in view.problem


# -- one-shot deliveries --------------------------------------------------------------------------


async def test_first_delivery_is_true_once_per_key(core: Core) -> None:
    assert await core.service.first_delivery("Ev0001") is True
    assert await core.service.first_delivery("Ev0001") is False
    assert await core.service.first_delivery("Ev0002") is True


async def test_first_delivery_without_a_store_is_always_true(make_core: CoreFactory) -> None:
    core = await make_core(with_audit=False)
    assert await core.service.first_delivery("Ev0001") is True
    assert await core.service.first_delivery("Ev0001") is True


async def test_event_keys_do_not_collide_with_undo_claims(core: Core) -> None:
    key = await _executed(core, "mute-all room-test")
    assert await core.service.first_delivery(key) is True
    assert isinstance(await core.service.plan_undo(key, actor()), Plan)


async def test_a_broken_claim_store_does_not_swallow_deliveries(make_core: CoreFactory) -> None:
    core = await make_core(store_class=BrokenStore)
    assert isinstance(core.store, BrokenStore)
    core.store.fail_claim = True
    assert await core.service.first_delivery("Ev0001") is True


async def test_what_undo_needs_is_one_of_several_verbs_per_field(core: Core) -> None:
    from bot.followups import undo_needs

    async def run(text: str) -> RunResult:
        prepared = await core.service.prepare(text, actor())
        assert isinstance(prepared, Approved)
        return await core.service.execute(prepared)

    muted = await run("mute-all room-test")
    assert undo_needs(muted) == (frozenset({"unmute-all", "lift-lockdown", "set"}),)
    core.emulator.member_enter("room-test", "dave")
    assert undo_needs(await run("ban room-test dave --for 1h")) == (frozenset({"unban"}),)
    assert undo_needs(await run("kick room-test dave")) == ()


async def test_retry_failed_skips_what_cannot_succeed_by_trying_again(core: Core) -> None:
    """Issue 27, item 10: retry-failed was offered for permanent errors like 100004."""
    key = await _executed(core, "mute-all ghost-room")
    refused = await core.service.plan_retry(key, actor())
    assert isinstance(refused, Rejected)
    assert "100004" in refused.message
    assert "would fail the same way" in refused.message
