"""Policy decisions: allow-list, roles by user and by group, wildcard, guardrails, deny by default,
help, fail-closed group lookups, only-needed Slack calls, allowed_verbs and describe()."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from bot.policy import Decision, GroupDirectory, Policy, load_policy
from bot.wording import denial_sentence
from handlers.blocks import SLACK
from tests.bot.policy.fakes import KNOWN_VERBS, POLICY_VERBS, FakeClock, FakeGroups

ADMIN = "U0ADMIN"  # in ROOMBOT_ALLOWED_USERS
MOD = "U0MOD"  # moderators, directly
GROUP_MOD = "U0GMOD"  # moderators, through user group S0MODS
COMMANDER = "U0IC"  # incident (every verb, only in #incident), directly
ONCALL = "U0ONCALL"  # incident, through user group S0ONCALL
VIEWER = "W0VIEW"  # viewers (listed by aliases and odd case in the file)
STRANGER = "U0NOBODY"

INCIDENT = "C0INCIDENT"
GENERAL = "C0GENERAL"

POLICY_TOML = """
[roles.moderators]
verbs = ["mute-all", "unmute-all", "disable-chat", "enable-chat", "show", "history"]
users = ["U0MOD"]
usergroups = ["S0MODS"]

[roles.incident]
verbs = ["*"]
users = ["U0IC"]
usergroups = ["S0ONCALL"]
channels = ["C0INCIDENT"]

[roles.viewers]
verbs = ["SHOW", "mute-audio"]
users = ["W0VIEW"]
"""

MODERATOR_VERBS = {"mute-all", "unmute-all", "disable-chat", "enable-chat", "show", "history"}


def said(decision: Decision) -> str:
    """A refusal as Slack words it (the policy returns the reasons; the adapter words them)."""
    assert decision.denial is not None, "not a refusal"
    return denial_sentence(SLACK, decision.denial)


def _policy_from(text: str, allowed_users: tuple[str, ...] = ()) -> Policy:
    Path("policy.toml").write_text(text, encoding="utf-8")
    return load_policy(
        allowed_users=allowed_users, policy_file=Path("policy.toml"), known_verbs=KNOWN_VERBS
    )


@pytest.fixture
def policy() -> Policy:
    return _policy_from(POLICY_TOML, (ADMIN,))


@pytest.fixture
def slack() -> FakeGroups:
    return FakeGroups({"S0MODS": [GROUP_MOD, "U0OTHER"], "S0ONCALL": [ONCALL]})


@pytest.fixture
def groups(slack: FakeGroups) -> GroupDirectory:
    return GroupDirectory(slack, clock=FakeClock())


# -- who is allowed ----------------------------------------------------------------------------


@pytest.mark.parametrize("channel", [GENERAL, INCIDENT, None])
async def test_allow_listed_users_may_run_every_verb_everywhere(
    policy: Policy, groups: GroupDirectory, slack: FakeGroups, channel: str | None
) -> None:
    for verb in sorted(POLICY_VERBS):
        decision = await policy.decide(user_id=ADMIN, verb=verb, channel_id=channel, groups=groups)
        assert decision.allowed, verb
        assert decision.reason == "allowed by ROOMBOT_ALLOWED_USERS"
        assert decision.role is None
    assert slack.calls == []


async def test_a_role_grants_its_verbs_to_a_listed_user_without_asking_slack(
    policy: Policy, groups: GroupDirectory, slack: FakeGroups
) -> None:
    decision = await policy.decide(user_id=MOD, verb="mute-all", channel_id=GENERAL, groups=groups)
    assert decision.allowed
    assert (decision.verb, decision.user_id, decision.role) == ("mute-all", MOD, "moderators")
    assert decision.reason == "allowed by role `moderators`"
    assert slack.calls == []  # a direct grant decides; no user group lookup


async def test_a_role_does_not_grant_verbs_it_does_not_list(
    policy: Policy, groups: GroupDirectory, slack: FakeGroups
) -> None:
    decision = await policy.decide(user_id=MOD, verb="rename", channel_id=GENERAL, groups=groups)
    assert not decision.allowed
    assert said(decision) == (
        "You (<@U0MOD>, `U0MOD`) are not allowed to run `rename` in this channel. "
        "Ask an admin to add you to a role that allows it."
    )
    # The only role granting `rename` is guarded to #incident: nothing worth looking up here.
    assert slack.calls == []


async def test_a_role_grants_its_verbs_to_members_of_its_user_groups(
    policy: Policy, groups: GroupDirectory, slack: FakeGroups
) -> None:
    decision = await policy.decide(
        user_id=GROUP_MOD, verb="disable-chat", channel_id=GENERAL, groups=groups
    )
    assert decision.allowed
    assert decision.role == "moderators"
    assert decision.reason == "allowed by role `moderators` (member of user group S0MODS)"
    assert slack.calls == ["S0MODS"]


async def test_a_wildcard_role_grants_every_verb(
    policy: Policy, groups: GroupDirectory, slack: FakeGroups
) -> None:
    for verb in sorted(POLICY_VERBS):
        decision = await policy.decide(
            user_id=COMMANDER, verb=verb, channel_id=INCIDENT, groups=groups
        )
        assert decision.allowed, verb
        assert decision.role == "incident"
    assert slack.calls == []


async def test_aliases_in_the_file_grant_the_canonical_verb(
    policy: Policy, groups: GroupDirectory
) -> None:
    for verb in ("show", "mute-all"):
        decision = await policy.decide(user_id=VIEWER, verb=verb, channel_id=GENERAL, groups=groups)
        assert decision.allowed, verb
        assert decision.role == "viewers"
    denied = await policy.decide(
        user_id=VIEWER, verb="unmute-all", channel_id=GENERAL, groups=groups
    )
    assert not denied.allowed


# -- channel guardrails ---------------------------------------------------------------------------


async def test_a_guarded_role_applies_inside_its_channels(
    policy: Policy, groups: GroupDirectory
) -> None:
    by_user = await policy.decide(
        user_id=COMMANDER, verb="lockdown", channel_id=INCIDENT, groups=groups
    )
    by_group = await policy.decide(
        user_id=ONCALL, verb="lockdown", channel_id=INCIDENT, groups=groups
    )
    assert by_user.allowed
    assert by_group.allowed
    assert by_group.reason == "allowed by role `incident` (member of user group S0ONCALL)"


async def test_a_guarded_role_grants_nothing_outside_its_channels_and_says_so(
    policy: Policy, groups: GroupDirectory, slack: FakeGroups
) -> None:
    decision = await policy.decide(
        user_id=COMMANDER, verb="lockdown", channel_id=GENERAL, groups=groups
    )
    assert not decision.allowed
    assert said(decision) == (
        "You (<@U0IC>, `U0IC`) are not allowed to run `lockdown` in this channel. "
        "Your role `incident` allows it only in <#C0INCIDENT> (a channel guardrail): "
        "run it there, or ask an admin for a role that allows it here."
    )
    assert slack.calls == []  # the guarded role cannot apply here, so its group is not fetched


async def test_a_guarded_role_grants_nothing_without_a_channel(
    policy: Policy, groups: GroupDirectory
) -> None:
    decision = await policy.decide(
        user_id=COMMANDER, verb="lockdown", channel_id=None, groups=groups
    )
    assert not decision.allowed
    assert "`lockdown` here." in said(decision)
    assert "only in <#C0INCIDENT>" in said(decision)


async def test_the_guardrail_is_explained_for_a_group_member_only_from_the_cache(
    policy: Policy, groups: GroupDirectory, slack: FakeGroups
) -> None:
    # Not yet cached: explaining the denial must not cost a Tier 2 Slack call.
    first = await policy.decide(user_id=ONCALL, verb="lockdown", channel_id=GENERAL, groups=groups)
    assert not first.allowed
    assert "guardrail" not in said(first)
    assert slack.calls == []
    # Once known (from a lookup in #incident), the denial can say why.
    await policy.decide(user_id=ONCALL, verb="lockdown", channel_id=INCIDENT, groups=groups)
    second = await policy.decide(user_id=ONCALL, verb="lockdown", channel_id=GENERAL, groups=groups)
    assert not second.allowed
    assert "only in <#C0INCIDENT> (a channel guardrail)" in said(second)
    assert slack.calls == ["S0ONCALL"]


# -- deny by default ----------------------------------------------------------------------------


async def test_a_stranger_is_denied_with_the_verb_and_their_user_id(
    policy: Policy, groups: GroupDirectory
) -> None:
    decision = await policy.decide(user_id=STRANGER, verb="show", channel_id=GENERAL, groups=groups)
    assert not decision.allowed
    assert (decision.verb, decision.user_id, decision.role) == ("show", STRANGER, None)
    assert said(decision) == (
        "You (<@U0NOBODY>, `U0NOBODY`) are not allowed to run `show` in this channel. "
        "Ask an admin to add you to a role that allows it."
    )


async def test_with_nothing_configured_nobody_may_run_anything_but_help() -> None:
    empty = load_policy(allowed_users=(), policy_file=None, known_verbs=KNOWN_VERBS)
    assert empty.is_empty
    for verb in sorted(POLICY_VERBS):
        decision = await empty.decide(user_id=ADMIN, verb=verb, channel_id=GENERAL, groups=None)
        assert not decision.allowed, verb
    helped = await empty.decide(user_id=ADMIN, verb="help", channel_id=GENERAL, groups=None)
    assert helped.allowed


async def test_help_is_always_allowed_without_any_lookup(
    policy: Policy, groups: GroupDirectory, slack: FakeGroups
) -> None:
    for channel in (GENERAL, INCIDENT, None):
        decision = await policy.decide(
            user_id=STRANGER, verb="help", channel_id=channel, groups=groups
        )
        assert decision.allowed
        assert decision.reason == "help is always allowed"
    assert slack.calls == []


async def test_an_unknown_verb_is_denied_even_to_the_allow_list(
    policy: Policy, groups: GroupDirectory
) -> None:
    for user in (ADMIN, COMMANDER):
        decision = await policy.decide(
            user_id=user, verb="self-destruct", channel_id=INCIDENT, groups=groups
        )
        assert not decision.allowed
        assert "`self-destruct`" in said(decision)
        assert f"`{user}`" in said(decision)


# -- user IDs from the envelope only ------------------------------------------------------------


def test_decisions_take_the_callers_id_as_a_parameter_and_never_command_text() -> None:
    for method in (Policy.decide, Policy.allowed_verbs):
        parameters = set(inspect.signature(method).parameters) - {"self"}
        assert "text" not in parameters
        assert parameters <= {"user_id", "verb", "channel_id", "groups"}


@pytest.mark.parametrize(
    ("user_id", "verb"),
    [
        ("<@U0ADMIN>", "lockdown"),  # a mention copied from the command text
        ("<@U0ADMIN|admin>", "lockdown"),
        (f"{STRANGER} <@U0ADMIN>", "lockdown"),
        (STRANGER, "lockdown <@U0ADMIN>"),  # the rest of the line passed as the verb
        (STRANGER, "lockdown U0ADMIN"),
    ],
)
async def test_a_user_id_mentioned_in_command_text_grants_nothing(
    policy: Policy, groups: GroupDirectory, user_id: str, verb: str
) -> None:
    decision = await policy.decide(user_id=user_id, verb=verb, channel_id=GENERAL, groups=groups)
    assert not decision.allowed
    assert decision.user_id == user_id
    # Only a well-formed caller ID is rendered as a mention; echoed input stays inert code text.
    assert "U0ADMIN" not in re.sub(r"`[^`]*`", "", said(decision))
    verbs = await policy.allowed_verbs(user_id=user_id, channel_id=GENERAL, groups=groups)
    assert verbs == {"help"}


# -- user groups: fail closed, and only the calls that matter -----------------------------------


async def test_a_failed_group_lookup_grants_nothing_and_the_denial_says_why(
    policy: Policy, slack: FakeGroups
) -> None:
    slack.fail["S0MODS"] = RuntimeError("plan_upgrade_required")
    groups = GroupDirectory(slack, clock=FakeClock())
    decision = await policy.decide(
        user_id=GROUP_MOD, verb="mute-all", channel_id=GENERAL, groups=groups
    )
    assert not decision.allowed
    assert said(decision) == (
        "You (<@U0GMOD>, `U0GMOD`) are not allowed to run `mute-all` in this channel. "
        "Ask an admin to add you to a role that allows it. "
        "Note: could not check membership of user group S0MODS: plan_upgrade_required; "
        "try again in a minute."
    )


async def test_a_failed_group_lookup_does_not_block_a_direct_grant(
    policy: Policy, slack: FakeGroups
) -> None:
    slack.fail["S0MODS"] = RuntimeError("internal_error")
    groups = GroupDirectory(slack, clock=FakeClock())
    decision = await policy.decide(user_id=MOD, verb="mute-all", channel_id=GENERAL, groups=groups)
    assert decision.allowed
    assert slack.calls == []


async def test_without_a_group_directory_group_roles_grant_nothing(policy: Policy) -> None:
    denied = await policy.decide(
        user_id=GROUP_MOD, verb="mute-all", channel_id=GENERAL, groups=None
    )
    assert not denied.allowed
    assert said(denied).endswith("Note: roles granted through user groups cannot be checked here.")
    allowed = await policy.decide(user_id=MOD, verb="mute-all", channel_id=GENERAL, groups=None)
    assert allowed.allowed


async def test_only_groups_of_roles_that_could_grant_the_verb_here_are_fetched(
    policy: Policy, groups: GroupDirectory, slack: FakeGroups
) -> None:
    # `lockdown` in #incident: only `incident` grants it; `moderators` (S0MODS) cannot.
    decision = await policy.decide(
        user_id=STRANGER, verb="lockdown", channel_id=INCIDENT, groups=groups
    )
    assert not decision.allowed
    assert slack.calls == ["S0ONCALL"]


async def test_group_lookups_stop_at_the_first_group_that_grants() -> None:
    policy = _policy_from(
        '[roles.a]\nverbs = ["show"]\nusergroups = ["S0FIRST", "S0SECOND"]\n'
        '[roles.b]\nverbs = ["show"]\nusergroups = ["S0THIRD"]\n'
    )
    slack = FakeGroups({"S0FIRST": ["U0ALICE"], "S0SECOND": ["U0BOB"], "S0THIRD": ["U0ALICE"]})
    groups = GroupDirectory(slack, clock=FakeClock())
    decision = await policy.decide(
        user_id="U0ALICE", verb="show", channel_id=GENERAL, groups=groups
    )
    assert decision.allowed
    assert slack.calls == ["S0FIRST"]


async def test_a_group_shared_by_roles_is_fetched_once_per_decision_even_uncached() -> None:
    policy = _policy_from(
        '[roles.a]\nverbs = ["show"]\nusergroups = ["S0SHARED"]\n'
        '[roles.b]\nverbs = ["show"]\nusergroups = ["S0SHARED"]\n'
    )
    slack = FakeGroups()
    slack.fail["S0SHARED"] = RuntimeError("timeout")
    groups = GroupDirectory(slack, failure_ttl_s=0, clock=FakeClock())  # nothing cached
    decision = await policy.decide(
        user_id="U0ALICE", verb="show", channel_id=GENERAL, groups=groups
    )
    assert not decision.allowed
    assert slack.calls == ["S0SHARED"]
    assert said(decision).count("could not check membership of user group S0SHARED") == 1


# -- allowed_verbs (filters help output) --------------------------------------------------------


async def test_allowed_verbs_per_user_and_channel(
    policy: Policy, groups: GroupDirectory, slack: FakeGroups
) -> None:
    async def verbs(user: str, channel: str | None) -> frozenset[str]:
        return await policy.allowed_verbs(user_id=user, channel_id=channel, groups=groups)

    assert await verbs(ADMIN, None) == POLICY_VERBS | {"help"}
    assert await verbs(MOD, GENERAL) == MODERATOR_VERBS | {"help"}
    assert await verbs(COMMANDER, INCIDENT) == POLICY_VERBS | {"help"}
    # Direct grants already cover what S0MODS (and, for MOD, S0ONCALL outside #incident)
    # could add, so no group was fetched.
    assert slack.calls == []
    assert await verbs(COMMANDER, GENERAL) == {"help"}
    assert slack.calls == ["S0MODS"]  # `moderators` could add verbs here: worth one lookup

    assert await verbs(VIEWER, GENERAL) == {"show", "mute-all", "help"}
    assert await verbs(STRANGER, None) == {"help"}
    assert await verbs(GROUP_MOD, GENERAL) == MODERATOR_VERBS | {"help"}
    assert await verbs(ONCALL, INCIDENT) == POLICY_VERBS | {"help"}
    assert await verbs(ONCALL, GENERAL) == {"help"}
    assert slack.calls == ["S0MODS", "S0ONCALL"]  # each fetched once, then cached


async def test_allowed_verbs_fail_closed_and_without_a_directory(
    policy: Policy, slack: FakeGroups
) -> None:
    slack.fail["S0MODS"] = RuntimeError("internal_error")
    failing = GroupDirectory(slack, clock=FakeClock())
    assert await policy.allowed_verbs(user_id=GROUP_MOD, channel_id=GENERAL, groups=failing) == {
        "help"
    }
    assert await policy.allowed_verbs(user_id=GROUP_MOD, channel_id=GENERAL, groups=None) == {
        "help"
    }
    assert await policy.allowed_verbs(user_id=MOD, channel_id=GENERAL, groups=None) == (
        MODERATOR_VERBS | {"help"}
    )


async def test_allowed_verbs_agree_with_decide(policy: Policy, groups: GroupDirectory) -> None:
    for user in (ADMIN, MOD, GROUP_MOD, COMMANDER, ONCALL, VIEWER, STRANGER):
        for channel in (GENERAL, INCIDENT, None):
            allowed = await policy.allowed_verbs(user_id=user, channel_id=channel, groups=groups)
            for verb in sorted(POLICY_VERBS | {"help"}):
                decision = await policy.decide(
                    user_id=user, verb=verb, channel_id=channel, groups=groups
                )
                assert decision.allowed == (verb in allowed), (user, channel, verb)


# -- describe() ------------------------------------------------------------------------------------


def test_describe_says_who_may_do_what_where(policy: Policy) -> None:
    assert policy.describe() == [
        "ROOMBOT_ALLOWED_USERS: user U0ADMIN may run every verb in every channel",
        "role moderators: user U0MOD and members of user group S0MODS may run "
        "mute-all, unmute-all, disable-chat, enable-chat, show, history in every channel",
        "role incident: user U0IC and members of user group S0ONCALL may run every verb "
        "only in channel C0INCIDENT",
        "role viewers: user W0VIEW may run mute-all, show in every channel",
        "everyone may run help",
    ]


def test_describe_lists_several_ids_and_warns_when_empty() -> None:
    ops = _policy_from(
        '[roles.ops]\nverbs = ["show"]\nusergroups = ["S0B", "S0A"]\nchannels = ["C0B", "C0A"]\n',
        ("U0B", "U0A"),
    )
    assert ops.describe() == [
        "ROOMBOT_ALLOWED_USERS: users U0A, U0B may run every verb in every channel",
        "role ops: members of user groups S0A, S0B may run show only in channels C0A, C0B",
        "everyone may run help",
    ]
    empty = load_policy(allowed_users=(), policy_file=None, known_verbs=KNOWN_VERBS)
    assert empty.describe() == [
        "nobody may run any verb (deny by default): set ROOMBOT_ALLOWED_USERS or "
        "ROOMBOT_POLICY_FILE",
        "everyone may run help",
    ]
