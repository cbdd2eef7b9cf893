"""Two-person approval (DESIGN §2.12): which writes need a second person, and who may be it.

The policy file's `[approval]` table (validated by `bot.policy.loader`)::

    [approval]
    verbs = ["destroy", "ban"]     # these always need an approver
    above_rooms = 20               # any write on more rooms than this needs one
    approvers = ["S0ONCALLLEADS"]  # user IDs or user-group IDs
    channel = "C0APPROVALS"        # optional: requests are also posted here
    expire = "15m"                 # default 15m

Approvers are resolved like role members: a user ID directly, a user-group ID through the
`GroupDirectory`, fail-closed (a group whose members cannot be fetched approves nobody, and
the answer says why). Being an approver is not enough: the core also checks that the approver
is not the requester and that the normal policy lets them run the verb there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bot.policy.groups import GroupDirectory, GroupLookupError

#: How long a request waits for an approver unless `expire` says otherwise.
DEFAULT_EXPIRE_S: Final = 15 * 60
#: The shortest and longest `expire` the policy file may set.
MIN_EXPIRE_S: Final = 60
MAX_EXPIRE_S: Final = 7 * 86_400


@dataclass(frozen=True)
class ApproverCheck:
    """Whether someone is an approver; `problems` names groups that could not be checked."""

    ok: bool
    via: str | None = None  # the user ID or group ID that made them one
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalRule:
    """The `[approval]` table: `verbs` (canonical) always need an approver, and so does any
    write on more than `above_rooms` rooms (None: no room rule); approvers are `users` and the
    members of `usergroups`; requests are also posted in `channel`; they wait `expire_s`."""

    verbs: frozenset[str] = frozenset()
    above_rooms: int | None = None
    users: frozenset[str] = frozenset()
    usergroups: frozenset[str] = frozenset()
    channel: str | None = None
    expire_s: int = DEFAULT_EXPIRE_S

    def why(self, verb: str, rooms: int) -> str | None:
        """Why a write of `verb` (canonical) on `rooms` rooms needs an approver, or None."""
        if verb in self.verbs:
            return f"`{verb}` needs a second person's approval"
        if self.above_rooms is not None and rooms > self.above_rooms:
            return (
                f"it changes {rooms} rooms (more than {self.above_rooms}) and needs a second "
                "person's approval"
            )
        return None

    @property
    def approvers(self) -> tuple[str, ...]:
        """Every approver ID, users first (for people: "who may approve")."""
        return (*sorted(self.users), *sorted(self.usergroups))

    async def check(self, user_id: str, groups: GroupDirectory | None) -> ApproverCheck:
        """Is `user_id` an approver? Groups are looked up only when no user entry decides;
        a group that cannot be checked approves nobody (fail-closed)."""
        if user_id in self.users:
            return ApproverCheck(True, via=user_id)
        problems: list[str] = []
        if self.usergroups and groups is None:
            problems.append("user groups cannot be checked here")
            return ApproverCheck(False, problems=tuple(problems))
        for group_id in sorted(self.usergroups):
            assert groups is not None
            try:
                members = await groups.members(group_id)
            except GroupLookupError as exc:
                problems.append(str(exc))
                continue
            if user_id in members:
                return ApproverCheck(True, via=group_id)
        return ApproverCheck(False, problems=tuple(problems))

    def describe(self) -> list[str]:
        """Lines for `roombot check`: what needs approval, by whom, where, for how long."""
        rules = []
        if self.verbs:
            rules.append(", ".join(sorted(self.verbs)))
        if self.above_rooms is not None:
            rules.append(f"any write on more than {self.above_rooms} rooms")
        who = []
        if self.users:
            who.append("users " + ", ".join(sorted(self.users)))
        if self.usergroups:
            who.append("members of user groups " + ", ".join(sorted(self.usergroups)))
        return [
            f"approval: {' and '.join(rules)} need(s) a second person: {' or '.join(who)}",
            f"approval: requests wait {_duration(self.expire_s)} for an approver, then expire"
            + (f"; also posted in {self.channel}" if self.channel else ""),
        ]


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
