"""Who may run which `/room` verb, and where: the rules and the decisions they give.

Deny by default. Two things grant verbs:

* `ROOMBOT_ALLOWED_USERS`: the listed user IDs may run every verb in every channel.
* roles from `ROOMBOT_POLICY_FILE` (see `bot.policy.loader`): a role grants its verbs (`"*"` for
  all) to its members, listed by Slack user ID and by Slack user group ID, optionally only in
  some channels (a guardrail).

`help` is always allowed; it is never a policy verb (help output is filtered by `allowed_verbs`).

Decisions are made about the user ID Slack put in the request envelope, passed in as a parameter;
this module never reads command text, so naming someone in a command grants nothing.

A refusal is data, not prose: `Decision.denial` says what was refused, for whom, where, and what
might explain it (a guardrail, a user group that could not be checked). Each adapter words it for
its own medium; `Decision.reason` is a plain one-line summary for the audit trail.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final

from bot.policy.approval import ApprovalRule
from bot.policy.groups import GroupDirectory, GroupLookupError

#: The verb everyone may always run; it is never granted or refused by the policy.
HELP_VERB: Final = "help"

#: A role's `verbs = ["*"]`: every verb the command parser knows.
WILDCARD: Final = "*"


@dataclass(frozen=True)
class Role:
    """A named grant: `verbs` (canonical names, or `{"*"}` for all) to `users` and members of
    `usergroups`, only in `channels` when that is not None."""

    name: str
    verbs: frozenset[str]
    users: frozenset[str] = frozenset()
    usergroups: frozenset[str] = frozenset()
    channels: frozenset[str] | None = None

    def grants(self, verb: str) -> bool:
        """True if this role's verbs include `verb` (a canonical name)."""
        return WILDCARD in self.verbs or verb in self.verbs

    def applies_in(self, channel_id: str | None) -> bool:
        """True unless a channel guardrail excludes `channel_id` (None: no channel, excluded)."""
        return self.channels is None or (channel_id is not None and channel_id in self.channels)


@dataclass(frozen=True)
class Denial:
    """Why `user_id` may not run `verb` in `channel_id`, as data an adapter words.

    * `unknown_verb`: the policy does not know the verb at all (fails closed).
    * `guardrail_roles` / `guardrail_channels`: roles the user holds that allow the verb, but only
      in those channels.
    * `group_problems`: user groups whose membership could not be checked (one line each).
    * `groups_unavailable`: group-based roles could not be checked here at all.
    """

    verb: str
    user_id: str
    channel_id: str | None
    unknown_verb: bool = False
    guardrail_roles: tuple[str, ...] = ()
    guardrail_channels: tuple[str, ...] = ()
    group_problems: tuple[str, ...] = ()
    groups_unavailable: bool = False

    def summary(self) -> str:
        """One plain line for the audit trail (no markup): what was refused and why."""
        if self.unknown_verb:
            return f"{self.verb} is not a verb this policy knows"
        where = f" in {self.channel_id}" if self.channel_id else ""
        text = f"{self.user_id} may not run {self.verb}{where}"
        if self.guardrail_roles:
            text += (
                f"; role(s) {', '.join(self.guardrail_roles)} allow it only in "
                f"{', '.join(self.guardrail_channels)}"
            )
        else:
            text += "; no role grants it"
        for problem in self.group_problems:
            text += f"; {problem}"
        if self.groups_unavailable:
            text += "; user groups cannot be checked here"
        return text


@dataclass(frozen=True)
class Decision:
    """Whether `user_id` may run `verb`, and why.

    `reason` is a plain line for the audit trail: the grant that allowed it, or the denial's
    summary. `denial` is set exactly when the decision is a refusal. `role` is the granting role.
    """

    allowed: bool
    verb: str
    user_id: str
    reason: str
    role: str | None = None
    denial: Denial | None = None

    @classmethod
    def allow(cls, verb: str, user_id: str, reason: str, role: str | None = None) -> Decision:
        """An allowing decision with `reason` naming the grant."""
        return cls(True, verb, user_id, reason, role=role)

    @classmethod
    def deny(cls, denial: Denial) -> Decision:
        """A refusal carrying `denial`."""
        return cls(False, denial.verb, denial.user_id, denial.summary(), denial=denial)


class Policy:
    """Who may run which verb, where: the allow-list plus the roles of the policy file.

    Build it with `bot.policy.load_policy`, which validates the file.
    """

    def __init__(
        self,
        *,
        allowed_users: Iterable[str] = (),
        roles: Iterable[Role] = (),
        verbs: Iterable[str] = (),
        approval: ApprovalRule | None = None,
    ) -> None:
        """`verbs` are the canonical verbs the command parser knows, in display order; a `"*"`
        role or an allow-listed user gets all of them. `approval` is the `[approval]` table
        (None: no write needs a second person)."""
        self.allowed_users: frozenset[str] = frozenset(allowed_users)
        self.roles: tuple[Role, ...] = tuple(roles)
        self.approval = approval
        self._verbs = tuple(dict.fromkeys(verb for verb in verbs if verb != HELP_VERB))

    @property
    def verbs(self) -> tuple[str, ...]:
        """Every canonical verb the policy can grant (help excluded), in display order."""
        return self._verbs

    @property
    def is_empty(self) -> bool:
        """True when nobody can run anything but help (worth a start-up warning)."""
        return not self.allowed_users and not self.roles

    @property
    def usergroups(self) -> frozenset[str]:
        """Every user group ID some role, or the `[approval]` table's approvers, names."""
        approvers = self.approval.usergroups if self.approval is not None else frozenset()
        return frozenset(group for role in self.roles for group in role.usergroups) | approvers

    async def decide(
        self, *, user_id: str, verb: str, channel_id: str | None, groups: GroupDirectory | None
    ) -> Decision:
        """May `user_id` (from the request envelope, never from command text) run the canonical
        `verb` in `channel_id`?

        User groups are looked up only when no direct grant decides, and only for roles that
        grant `verb` in this channel. `groups=None` means lookups are unavailable: group-based
        roles grant nothing. A group whose lookup fails grants nothing and the denial says why.
        """
        if verb == HELP_VERB:
            return Decision.allow(verb, user_id, "help is always allowed")
        if verb not in self._verbs:
            # Fail closed: a verb the policy was not told about cannot be granted, even by "*".
            return Decision.deny(Denial(verb, user_id, channel_id, unknown_verb=True))
        if user_id in self.allowed_users:
            return Decision.allow(verb, user_id, "allowed by ROOMBOT_ALLOWED_USERS")
        granting = [role for role in self.roles if role.grants(verb)]
        here = [role for role in granting if role.applies_in(channel_id)]
        for role in here:
            if user_id in role.users:
                return Decision.allow(verb, user_id, f"allowed by role `{role.name}`", role.name)
        membership = _Membership(groups)
        for role in here:
            group_id = await membership.group_granting(role, user_id)
            if group_id is not None:
                reason = f"allowed by role `{role.name}` (member of user group {group_id})"
                return Decision.allow(verb, user_id, reason, role.name)
        # Roles that would grant the verb elsewhere: judged without new Slack calls, only to
        # explain the guardrail in the denial.
        elsewhere = [
            role
            for role in granting
            if not role.applies_in(channel_id) and membership.known_member(role, user_id)
        ]
        return Decision.deny(
            Denial(
                verb,
                user_id,
                channel_id,
                guardrail_roles=tuple(role.name for role in elsewhere),
                guardrail_channels=tuple(
                    sorted({c for role in elsewhere for c in role.channels or ()})
                ),
                group_problems=tuple(membership.problems),
                groups_unavailable=membership.unavailable,
            )
        )

    async def allowed_verbs(
        self, *, user_id: str, channel_id: str | None, groups: GroupDirectory | None
    ) -> frozenset[str]:
        """The canonical verbs `user_id` may run in `channel_id`, always including help.

        Used to filter help output. A group is looked up only if its role would add a verb
        the user does not already have.
        """
        if user_id in self.allowed_users:
            return frozenset((*self._verbs, HELP_VERB))
        granted = {HELP_VERB}
        here = [role for role in self.roles if role.applies_in(channel_id)]
        for role in here:
            if user_id in role.users:
                granted |= self._expand(role)
        membership = _Membership(groups)
        for role in here:
            if self._expand(role) <= granted:
                continue
            if await membership.group_granting(role, user_id) is not None:
                granted |= self._expand(role)
        return frozenset(granted)

    def describe(self) -> list[str]:
        """Human lines saying who may run what, and where (for `roombot check`)."""
        lines: list[str] = []
        if self.allowed_users:
            lines.append(
                f"ROOMBOT_ALLOWED_USERS: {_listing('user', self.allowed_users)} "
                "may run every verb in every channel"
            )
        for role in self.roles:
            members = []
            if role.users:
                members.append(_listing("user", role.users))
            if role.usergroups:
                members.append("members of " + _listing("user group", role.usergroups))
            if WILDCARD in role.verbs:
                verbs = "every verb"
            else:
                ordered = [verb for verb in self._verbs if verb in role.verbs]
                verbs = ", ".join(ordered + sorted(role.verbs - set(ordered)))
            where = (
                "in every channel"
                if role.channels is None
                else "only in " + _listing("channel", role.channels)
            )
            lines.append(f"role {role.name}: {' and '.join(members)} may run {verbs} {where}")
        if self.is_empty:
            lines.append(
                "nobody may run any verb (deny by default): "
                "set ROOMBOT_ALLOWED_USERS or ROOMBOT_POLICY_FILE"
            )
        lines.append("everyone may run help")
        if self.approval is not None:
            lines.extend(self.approval.describe())
        return lines

    def _expand(self, role: Role) -> frozenset[str]:
        return frozenset(self._verbs) if WILDCARD in role.verbs else role.verbs


class _Membership:
    """One request's view of user groups: each group looked up at most once, failures kept."""

    def __init__(self, groups: GroupDirectory | None) -> None:
        self._groups = groups
        self._seen: dict[str, frozenset[str] | None] = {}
        self.problems: list[str] = []
        self.unavailable = False

    async def group_granting(self, role: Role, user_id: str) -> str | None:
        """The first of `role`'s user groups that has `user_id` as a member, or None."""
        if not role.usergroups:
            return None
        if self._groups is None:
            self.unavailable = True
            return None
        for group_id in sorted(role.usergroups):
            if group_id not in self._seen:
                try:
                    self._seen[group_id] = await self._groups.members(group_id)
                except GroupLookupError as exc:
                    self._seen[group_id] = None
                    self.problems.append(str(exc))
            members = self._seen[group_id]
            if members is not None and user_id in members:
                return group_id
        return None

    def known_member(self, role: Role, user_id: str) -> bool:
        """True if `user_id` is in `role` directly or by a cached group answer (no fetching)."""
        if user_id in role.users:
            return True
        if self._groups is None:
            return False
        for group_id in role.usergroups:
            members = self._seen.get(group_id) or self._groups.cached(group_id)
            if members is not None and user_id in members:
                return True
        return False


def _listing(noun: str, ids: Collection[str]) -> str:
    return f"{noun}{'s' if len(ids) > 1 else ''} {', '.join(sorted(ids))}"
