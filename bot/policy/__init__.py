"""Who may run what, where: rules and decisions (`rules`), Slack user-group membership
(`groups`), and the validated policy file (`loader`).

Import from here: `from bot.policy import Policy, Decision, policy_from_settings`.
"""

from bot.policy.approval import ApprovalRule, ApproverCheck
from bot.policy.groups import GroupDirectory, GroupFetcher, GroupLookupError
from bot.policy.loader import (
    CHANNEL_ID_RE,
    GROUP_ID_RE,
    PolicyError,
    known_verbs,
    load_policy,
    policy_from_settings,
)
from bot.policy.rules import HELP_VERB, WILDCARD, Decision, Denial, Policy, Role

__all__ = [
    "CHANNEL_ID_RE",
    "GROUP_ID_RE",
    "HELP_VERB",
    "WILDCARD",
    "ApprovalRule",
    "ApproverCheck",
    "Decision",
    "Denial",
    "GroupDirectory",
    "GroupFetcher",
    "GroupLookupError",
    "Policy",
    "PolicyError",
    "Role",
    "known_verbs",
    "load_policy",
    "policy_from_settings",
]
