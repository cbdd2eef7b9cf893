"""Members: the kick / ban / unban calls, and members and bans as the list APIs report them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from bot.models.limits import (
    BAN_DURATION_MAX_S,
    MAX_ACCOUNTS_PER_CALL,
    account_id_problem,
    reason_problem,
    room_id_problem,
)


class MemberRole(StrEnum):
    """A room member's role as `get_room_member_list` reports it."""

    OWNER = "Owner"
    ADMIN = "Admin"
    MEMBER = "Member"


class MemberApi(StrEnum):
    """The Room Engine commands that act on some members of a room."""

    KICK = "kick_user_out"
    BAN = "ban_room_member"
    UNBAN = "unban_room_member"


class MemberCall(BaseModel):
    """One kick, ban or unban request: a room, 1-20 distinct accounts, and what the API requires.

    Kick and ban carry a `reason` (required by the API, 1-1000 bytes); a ban also carries
    `duration_s` (seconds, 1 or more); unban carries neither. Construction checks all of it
    (raises `pydantic.ValidationError`, a `ValueError`), so a built call is one the API accepts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    api: MemberApi
    room_id: str
    accounts: tuple[str, ...]
    reason: str | None = None
    duration_s: int | None = None

    @model_validator(mode="after")
    def _check(self) -> MemberCall:
        problems = [room_id_problem(self.room_id)]
        if not 1 <= len(self.accounts) <= MAX_ACCOUNTS_PER_CALL:
            problems.append(
                f"a call carries 1-{MAX_ACCOUNTS_PER_CALL} accounts, not {len(self.accounts)}"
            )
        if len(set(self.accounts)) != len(self.accounts):
            problems.append("the accounts of a call must be distinct")
        problems += [account_id_problem(account) for account in self.accounts]
        if self.api is MemberApi.UNBAN:
            if self.reason is not None or self.duration_s is not None:
                problems.append("unban_room_member takes no Reason and no Duration")
        else:
            problems.append(
                f"{self.api.value} requires a Reason"
                if self.reason is None
                else reason_problem(self.reason)
            )
        if self.api is MemberApi.BAN:
            if self.duration_s is None or not 1 <= self.duration_s <= BAN_DURATION_MAX_S:
                problems.append(
                    f"ban_room_member requires a Duration of 1-{BAN_DURATION_MAX_S} seconds"
                )
        elif self.api is MemberApi.KICK and self.duration_s is not None:
            problems.append("kick_user_out takes no Duration")
        found = [problem for problem in problems if problem is not None]
        if found:
            raise ValueError("; ".join(found))
        return self

    def body(self) -> dict[str, Any]:
        """The exact JSON body: `RoomId`, `MemberList_Account`, then `Reason`/`Duration` if any."""
        body: dict[str, Any] = {"RoomId": self.room_id, "MemberList_Account": list(self.accounts)}
        if self.reason is not None:
            body["Reason"] = self.reason
        if self.duration_s is not None:
            body["Duration"] = self.duration_s
        return body


@dataclass(frozen=True)
class RoomMember:
    """One member as `get_room_member_list` reports it.

    `role` is "Owner", "Admin" or "Member" (a Tencent sample's "RoomOwner" is read as "Owner";
    any other value is kept as sent).
    """

    account: str
    name_card: str = ""
    role: str = "Member"
    marks: tuple[int, ...] = ()
    custom_info: str = ""


@dataclass(frozen=True)
class MemberPage:
    """One page of `get_room_member_list`; `next_cursor` is "" when there is no more."""

    members: tuple[RoomMember, ...]
    next_cursor: str
    request_id: str
    attempts: int = 1
    elapsed_s: float = 0.0

    @property
    def done(self) -> bool:
        """True when this was the last page."""
        return not self.next_cursor


@dataclass(frozen=True)
class MemberList:
    """A room's members gathered over pages, up to a cap.

    `truncated` is True when the cap was reached and Tencent had more; how many more, cursor
    paging cannot tell (`get_room_info`'s `MemberCount` can). `next_cursor` continues where the
    list stopped ("" when complete, and when a page longer than asked for overflowed the cap,
    as continuing from it would skip members).
    `request_ids` has one per page.
    """

    members: tuple[RoomMember, ...]
    truncated: bool
    next_cursor: str
    request_ids: tuple[str, ...]


@dataclass(frozen=True)
class BannedMember:
    """One ban: the account and when it ends (`banned_until`, unix seconds)."""

    account: str
    banned_until: int


@dataclass(frozen=True)
class BannedPage:
    """One page of `get_banned_member_list`; `next_offset` is 0 when there is no more."""

    members: tuple[BannedMember, ...]
    next_offset: int
    request_id: str
    attempts: int = 1
    elapsed_s: float = 0.0

    @property
    def done(self) -> bool:
        """True when this was the last page."""
        return self.next_offset == 0


@dataclass(frozen=True)
class BannedList:
    """A room's bans gathered over pages, up to a cap; fields as in `MemberList`
    (`next_offset` 0 when complete)."""

    members: tuple[BannedMember, ...]
    truncated: bool
    next_offset: int
    request_ids: tuple[str, ...]
