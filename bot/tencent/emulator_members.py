"""Who is in each emulated room and who is banned from it: the state behind the member APIs.

`RoomMembers` holds one room's members, in the order they entered, and its bans. It knows
nothing of HTTP; the emulator validates requests with the `*_of` helpers here and answers a
`Refusal` (`bot.tencent.emulator_errors`) with its code. Paging follows the reference (§6):

* `get_room_member_list` pages with an opaque cursor (`Next`, "" = done). The cursor names the
  position after the last member returned (members are numbered as they enter), so a member who
  stays in the room is listed exactly once however the room changes between pages, and members
  who enter meanwhile appear at the end.
* `get_banned_member_list` pages by `Offset`/`Limit` over the bans that have not expired, in the
  order they were made (`NextOffset` 0 = done). Like any offset paging it can skip or repeat a
  ban when bans are lifted between pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bot.models import (
    BANNED_PAGE_MAX,
    MEMBER_PAGE_DEFAULT,
    MEMBER_PAGE_MAX,
    MemberRole,
    accounts_problem,
    duration_problem,
    reason_problem,
)
from bot.tencent.emulator_errors import invalid

_CURSOR: Final = re.compile(r"^m([0-9a-f]{1,16})$")
_ROLES: Final = frozenset(role.value for role in MemberRole)


@dataclass
class _Member:
    account: str
    name_card: str
    role: str
    marks: list[int]
    custom_info: str
    seq: int

    def as_api(self) -> dict[str, Any]:
        return {
            "Member_Account": self.account,
            "NameCard": self.name_card,
            "Role": self.role,
            "Marks": list(self.marks),
            "CustomInfo": self.custom_info,
        }


@dataclass
class RoomMembers:
    """One room's members (entry order) and bans (account → BannedUntil, unix seconds)."""

    owner: str
    members: dict[str, _Member] = field(default_factory=dict)
    bans: dict[str, int] = field(default_factory=dict)
    _seq: int = 0

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, account: object) -> bool:
        return account in self.members

    def accounts(self) -> list[str]:
        """Member accounts in the order they entered."""
        return list(self.members)

    def add(
        self,
        account: str,
        *,
        name_card: str = "",
        role: str | None = None,
        marks: Sequence[int] = (),
        custom_info: str = "",
    ) -> None:
        """Add a member. The room owner's role is always Owner; others are Admin or Member.

        Raises `ValueError` (not a `Refusal`: this is set-up, not an API answer) for a bad role.
        """
        if not isinstance(account, str) or not account:
            raise ValueError("a member needs a non-empty account ID")
        if account in self.members:
            raise ValueError(f"{account!r} is already a member")
        if role is None:
            role = MemberRole.OWNER.value if account == self.owner else MemberRole.MEMBER.value
        if role not in _ROLES:
            raise ValueError(f"role must be one of {sorted(_ROLES)}, not {role!r}")
        if (role == MemberRole.OWNER.value) != (account == self.owner):
            raise ValueError(
                f"only the room owner ({self.owner!r}) has role Owner, and always has it"
            )
        self._seq += 1
        self.members[account] = _Member(
            account, name_card, role, [int(mark) for mark in marks], custom_info, self._seq
        )

    def remove(self, accounts: Iterable[str]) -> None:
        """Remove these members (each must be one)."""
        for account in accounts:
            del self.members[account]

    def page(self, count: int, cursor: str) -> tuple[list[dict[str, Any]], str]:
        """Up to `count` members after `cursor` ("" = from the start), and the next cursor."""
        after = _cursor_position(cursor)
        rest = [member for member in self.members.values() if member.seq > after]
        page = rest[:count]
        more = len(rest) > count
        return [member.as_api() for member in page], (f"m{page[-1].seq:x}" if more else "")

    def active_bans(self, now: float) -> list[tuple[str, int]]:
        """Bans that have not expired at `now`, in the order they were made (expired ones go)."""
        for account in [a for a, until in self.bans.items() if until <= now]:
            del self.bans[account]
        return list(self.bans.items())

    def is_banned(self, account: str, now: float) -> bool:
        """Whether `account` may not enter at `now`."""
        until = self.bans.get(account)
        return until is not None and until > now


def seed_members(room: RoomMembers, seeded: Iterable[str | Mapping[str, Any]]) -> None:
    """Add members given as account IDs or as `get_room_member_list`-style objects."""
    for item in seeded:
        if isinstance(item, str):
            room.add(item)
            continue
        data = dict(item)
        account = data.pop("Member_Account", None)
        if not isinstance(account, str):
            raise ValueError(f"a seeded member needs a string Member_Account: {item!r}")
        room.add(
            account,
            name_card=str(data.pop("NameCard", "")),
            role=data.pop("Role", None),
            marks=data.pop("Marks", ()),
            custom_info=str(data.pop("CustomInfo", "")),
        )
        if data:
            raise ValueError(f"unknown member fields {sorted(data)} for {account!r}")


# -- request validation -----------------------------------------------------------------------


def accounts_of(body: Mapping[str, Any]) -> list[str]:
    """`MemberList_Account`: 1-20 distinct non-empty account IDs (100002 otherwise)."""
    accounts = body.get("MemberList_Account")
    if accounts is None:
        raise invalid("MemberList_Account", "is required")
    if not isinstance(accounts, list):
        raise invalid("MemberList_Account", "must be a list of account IDs")
    problem = accounts_problem(accounts)
    if problem:
        raise invalid("MemberList_Account", problem)
    return accounts


def reason_of(body: Mapping[str, Any]) -> str:
    """`Reason`: required, 1-1000 UTF-8 bytes (100002 otherwise)."""
    reason = body.get("Reason")
    if reason is None:
        raise invalid("Reason", "is required")
    problem = reason_problem(reason)
    if problem:
        raise invalid("Reason", problem)
    assert isinstance(reason, str)
    return reason


def duration_of(body: Mapping[str, Any]) -> int:
    """`Duration`: required, a positive whole number of seconds (100002 otherwise)."""
    duration = body.get("Duration")
    if duration is None:
        raise invalid("Duration", "is required")
    problem = duration_problem(duration)
    if problem:
        raise invalid("Duration", problem)
    assert isinstance(duration, int)
    return duration


def member_page_of(body: Mapping[str, Any]) -> tuple[int, str]:
    """`Count` (default 50, 1-100) and `Next` ("" or a cursor this emulator gave out)."""
    count = body.get("Count", MEMBER_PAGE_DEFAULT)
    if isinstance(count, bool) or not isinstance(count, int):
        raise invalid("Count", "must be an integer")
    if not 1 <= count <= MEMBER_PAGE_MAX:
        raise invalid("Count", f"must be from 1 to {MEMBER_PAGE_MAX}, not {count}")
    cursor = body.get("Next", "")
    if not isinstance(cursor, str):
        raise invalid("Next", "must be a string")
    _cursor_position(cursor)
    return count, cursor


def banned_page_of(body: Mapping[str, Any]) -> tuple[int, int]:
    """`Limit` (default and maximum 100) and `Offset` (default 0, not negative)."""
    limit = body.get("Limit", BANNED_PAGE_MAX)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise invalid("Limit", "must be an integer")
    if not 1 <= limit <= BANNED_PAGE_MAX:
        raise invalid("Limit", f"must be from 1 to {BANNED_PAGE_MAX}, not {limit}")
    offset = body.get("Offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise invalid("Offset", "must be an integer")
    if offset < 0:
        raise invalid("Offset", f"must not be negative, not {offset}")
    return limit, offset


def _cursor_position(cursor: str) -> int:
    if cursor == "":
        return 0
    match = _CURSOR.match(cursor)
    if match is None:
        raise invalid("Next", "is not a value an earlier get_room_member_list answer gave")
    return int(match.group(1), 16)
