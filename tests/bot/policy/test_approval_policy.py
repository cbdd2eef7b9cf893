"""The policy file's `[approval]` table (DESIGN §2.12): what a valid one becomes, one exact line
for every mistake, and who counts as an approver (user IDs, user groups, fail-closed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.policy import GroupDirectory, Policy, PolicyError, load_policy
from bot.policy.approval import DEFAULT_EXPIRE_S, ApprovalRule
from tests.bot.policy.fakes import KNOWN_VERBS

ROLE = '[roles.mods]\nverbs = ["*"]\nusers = ["U012ABCDEF"]\n'


def _load(text: str) -> Policy:
    path = Path("policy.toml")
    path.write_text(text, encoding="utf-8")
    return load_policy(allowed_users=(), policy_file=path, known_verbs=KNOWN_VERBS)


def test_the_documented_example_loads() -> None:
    policy = _load(
        ROLE
        + """
        [approval]
        verbs = ["lockdown", "mute-audio"]
        above_rooms = 20
        approvers = ["S0ONCALLLEADS", "U0LEAD0001"]
        channel = "C0APPROVALS"
        expire = "30m"
        """
    )
    assert policy.approval == ApprovalRule(
        verbs=frozenset({"lockdown", "mute-all"}),
        above_rooms=20,
        users=frozenset({"U0LEAD0001"}),
        usergroups=frozenset({"S0ONCALLLEADS"}),
        channel="C0APPROVALS",
        expire_s=1800,
    )
    assert policy.approval.why("lockdown", 1) is not None
    assert policy.approval.why("mute-all", 1) is not None
    assert policy.approval.why("disable-chat", 20) is None
    assert "21 rooms" in (policy.approval.why("disable-chat", 21) or "")
    lines = policy.describe()
    assert any("approval:" in line and "S0ONCALLLEADS" in line for line in lines)
    assert any("wait 30m" in line and "C0APPROVALS" in line for line in lines)


def test_without_an_approval_table_nothing_needs_approval() -> None:
    assert _load(ROLE).approval is None


def test_expire_defaults_to_fifteen_minutes_and_a_room_rule_alone_is_enough() -> None:
    policy = _load(ROLE + '[approval]\nabove_rooms = 0\napprovers = ["U0LEAD0001"]\n')
    assert policy.approval is not None
    assert policy.approval.expire_s == DEFAULT_EXPIRE_S == 900
    assert policy.approval.verbs == frozenset()
    assert policy.approval.why("rename", 1) is not None


def test_an_approval_table_may_stand_beside_the_allow_list_without_roles() -> None:
    path = Path("policy.toml")
    path.write_text('[approval]\nverbs = ["lockdown"]\napprovers = ["U0LEAD0001"]\n')
    policy = load_policy(allowed_users=("U0ME000001",), policy_file=path, known_verbs=KNOWN_VERBS)
    assert policy.roles == ()
    assert policy.approval is not None


A = "policy.toml: approval"
INVALID = [
    (
        "unknown key",
        '[approval]\nverbs = ["lockdown"]\napprovers = ["U0LEAD0001"]\nexpires = "5m"',
        f"{A}.expires: unknown key; did you mean 'expire'?",
    ),
    (
        "a name as approver",
        '[approval]\nverbs = ["lockdown"]\napprovers = ["alice"]',
        f"{A}.approvers[0]: malformed Slack user ID 'alice' (use user IDs like U012ABCDEF or "
        "user group IDs like S0123ABCD, not names or handles)",
    ),
    (
        "a channel as approver",
        '[approval]\nverbs = ["lockdown"]\napprovers = ["C0APPROVALS"]',
        f"{A}.approvers[0]: 'C0APPROVALS' is a Slack channel ID, not a user ID "
        "(put it in 'channels')",
    ),
    (
        "no approvers for a rule",
        '[approval]\nverbs = ["lockdown"]',
        f"{A}.approvers: empty or missing, so nobody could approve; list user IDs or user "
        "group IDs",
    ),
    (
        "an empty approver list",
        "[approval]\nabove_rooms = 5\napprovers = []",
        f"{A}.approvers: empty or missing, so nobody could approve; list user IDs or user "
        "group IDs",
    ),
    (
        "no rule",
        '[approval]\napprovers = ["U0LEAD0001"]',
        f"{A}: no rule; set 'verbs' and/or 'above_rooms' (or remove [approval])",
    ),
    (
        "a read verb",
        '[approval]\nverbs = ["show"]\napprovers = ["U0LEAD0001"]',
        f"{A}.verbs: 'show' changes nothing, so it needs no approval",
    ),
    (
        "an unknown verb",
        '[approval]\nverbs = ["lockdwn"]\napprovers = ["U0LEAD0001"]',
        f"{A}.verbs[0]: unknown verb 'lockdwn' (did you mean 'lockdown'?)",
    ),
    (
        "a negative room count",
        '[approval]\nabove_rooms = -1\napprovers = ["U0LEAD0001"]',
        f"{A}.above_rooms: must be a whole number of rooms, not -1",
    ),
    (
        "a bad channel",
        '[approval]\nabove_rooms = 1\napprovers = ["U0LEAD0001"]\nchannel = "#approvals"',
        f"{A}.channel: malformed Slack channel ID '#approvals' (use IDs like C0123ABCD, not names)",
    ),
    (
        "a bare number as expiry",
        '[approval]\nabove_rooms = 1\napprovers = ["U0LEAD0001"]\nexpire = 15',
        f'{A}.expire: must be a duration string like "15m", not an integer',
    ),
    (
        "an expiry out of range",
        '[approval]\nabove_rooms = 1\napprovers = ["U0LEAD0001"]\nexpire = "10s"',
        f"{A}.expire: '10s' is out of range: from 1m to 7d",
    ),
    (
        "not a table",
        'approval = "yes"',
        f"{A}: must be a table like [approval], not a string",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), [pytest.param(t, m, id=case) for case, t, m in INVALID]
)
def test_invalid_approval_tables_fail_with_one_exact_line(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(text + "\n" + ROLE)
    assert str(caught.value) == message


def test_every_mistake_of_one_run_is_reported_one_line_each() -> None:
    with pytest.raises(PolicyError) as caught:
        _load(ROLE + '[approval]\nverbs = ["show"]\napprovers = ["bob"]\nchanel = "C0APPROVALS"')
    assert len(caught.value.problems) == 3


async def test_approvers_are_users_or_members_of_groups_and_groups_fail_closed() -> None:
    rule = ApprovalRule(
        verbs=frozenset({"lockdown"}),
        users=frozenset({"U0LEAD0001"}),
        usergroups=frozenset({"S0LEADS", "S0BROKEN"}),
    )

    async def fetch(group_id: str) -> list[str]:
        if group_id == "S0BROKEN":
            raise RuntimeError("ratelimited")
        return ["U0MEMBER01"]

    groups = GroupDirectory(fetch)
    assert (await rule.check("U0LEAD0001", None)).ok  # a user entry needs no lookup
    member = await rule.check("U0MEMBER01", groups)
    assert (member.ok, member.via) == (True, "S0LEADS")
    stranger = await rule.check("U0STRANGER", groups)
    assert not stranger.ok
    assert stranger.problems == ("could not check membership of user group S0BROKEN: ratelimited",)
    unavailable = await rule.check("U0MEMBER01", None)
    assert not unavailable.ok
    assert unavailable.problems == ("user groups cannot be checked here",)
