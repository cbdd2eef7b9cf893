"""`RoomService`'s use cases for Slack-native surfaces (issue #17): what a user may run and where
(`access`), what they did lately (`activity`), and which verbs a `show` may offer as buttons.

Over the emulator and an in-memory audit store (`tests.bot.corekit`), as the other service tests.
"""

from __future__ import annotations

from bot.audit import Outcome, Source
from bot.outcomes import Approved
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import ALICE, BOB, GENERAL, INCIDENT, MALLORY, Core, actor

ROLES = f"""
[roles.viewers]
verbs = ["show", "history"]
users = ["{BOB}"]

[roles.responders]
verbs = ["lockdown", "lift-lockdown", "mute-all", "show"]
users = ["{BOB}"]
channels = ["{INCIDENT}"]

[roles.elsewhere]
verbs = ["rename"]
users = ["{MALLORY}"]
channels = ["C0OTHER001"]
"""


async def _run(core: Core, text: str, who: str = ALICE) -> None:
    prepared = await core.service.prepare(text, actor(who))
    if isinstance(prepared, Approved):
        await core.service.execute(prepared)


# -- access --------------------------------------------------------------------------------------


async def test_access_lists_verbs_everywhere_and_those_a_guardrail_allows_only_in_a_channel(
    make_core: CoreFactory,
) -> None:
    core = await make_core(policy_toml=ROLES)

    bob = await core.service.access(BOB)
    assert bob.everywhere == ("show", "history")
    assert bob.only_in == ((INCIDENT, ("mute-all", "lockdown", "lift-lockdown")),)
    assert not bob.nothing

    mallory = await core.service.access(MALLORY)
    assert mallory.everywhere == ()
    assert mallory.only_in == (("C0OTHER001", ("rename",)),)


async def test_access_of_an_allow_listed_user_is_every_verb_and_of_a_stranger_nothing(
    core: Core,
) -> None:
    alice = await core.service.access(ALICE)
    assert alice.everywhere[:2] == ("mute-all", "unmute-all")
    assert "help" not in alice.everywhere
    assert {"destroy", "ban", "show", "history"} <= set(alice.everywhere)
    assert alice.only_in == ()

    stranger = await core.service.access("U0NOBODY1")
    assert stranger.nothing
    assert stranger.user_id == "U0NOBODY1"


# -- activity ------------------------------------------------------------------------------------


async def test_activity_groups_rows_into_requests_newest_first_with_their_outcomes(
    core: Core,
) -> None:
    await _run(core, "mute-all room-test --reason drill")
    await _run(core, "disable-chat room-2 room-3")
    await _run(core, "set-capacity room-3 lots")  # invalid
    await _run(core, "mute-all ghost-room")  # failed
    await _run(core, "disable-video room-3 --dry-run")
    await _run(core, "mute-all room-test", who=MALLORY)  # denied, and not ALICE's

    activity = await core.service.activity(ALICE)

    assert activity.problem is None
    verbs = [r.verb for r in activity.requests]
    assert verbs == ["disable-video", "mute-all", None, "disable-chat", "mute-all"]
    dry, failed, invalid, chat, mute = activity.requests
    assert dry.outcomes == {Outcome.DRY_RUN: 1}
    assert failed.outcomes == {Outcome.FAILED: 1}
    assert failed.rooms == ("ghost-room",)
    assert invalid.outcomes == {Outcome.INVALID: 1}
    assert invalid.text == "set-capacity room-3 lots"
    assert chat.rooms == ("room-2", "room-3")
    assert chat.outcomes == {Outcome.OK: 2}
    assert mute.source == Source.SLASH
    assert mute.created_at <= chat.created_at
    # Touched: a call was made or tried, newest first (the dry run and the refusals touch none).
    assert activity.rooms == ("ghost-room", "room-2", "room-3", "room-test")


async def test_activity_keeps_the_newest_requests_and_rooms(core: Core) -> None:
    for i in range(12):
        await _run(core, f"mute-all room-{i}")  # unknown rooms: failed calls, still touched

    activity = await core.service.activity(ALICE, requests=10, rooms=3)

    assert len(activity.requests) == 10
    assert activity.requests[0].rooms == ("room-11",)
    assert activity.rooms == ("room-11", "room-10", "room-9")


async def test_activity_of_a_user_who_did_nothing_is_empty(core: Core) -> None:
    activity = await core.service.activity(MALLORY)
    assert activity.requests == ()
    assert activity.rooms == ()
    assert activity.problem is None


async def test_activity_says_why_it_has_nothing(make_core: CoreFactory) -> None:
    unaudited = await make_core(with_audit=False)
    assert (await unaudited.service.activity(ALICE)).problem == "the audit trail is not configured"

    broken = await make_core()
    await broken.store.close()
    activity = await broken.service.activity(ALICE)
    assert activity.requests == ()
    assert activity.problem is not None


# -- show's buttons ------------------------------------------------------------------------------


async def test_show_says_which_verbs_the_asker_may_run_where_they_asked(
    make_core: CoreFactory,
) -> None:
    core = await make_core(policy_toml=ROLES)
    here = await core.service.prepare("show room-test", actor(BOB, channel_id=INCIDENT))
    assert isinstance(here, Approved)
    [view] = await core.service.show(here)
    assert {"mute-all", "lockdown", "show"} <= view.allowed_verbs
    assert "unmute-all" not in view.allowed_verbs

    elsewhere = await core.service.prepare("show room-test ghost", actor(BOB, channel_id=GENERAL))
    assert isinstance(elsewhere, Approved)
    room, ghost = await core.service.show(elsewhere)
    assert "mute-all" not in room.allowed_verbs  # the guardrail holds for buttons too
    assert ghost.failure is not None
    assert ghost.allowed_verbs == room.allowed_verbs


async def test_the_local_operator_may_run_everything(core: Core) -> None:
    operator = actor(MALLORY, is_operator=True)
    assert {"mute-all", "destroy", "help"} <= await core.service.allowed_verbs(operator)
    assert core.service.max_rooms == 500
