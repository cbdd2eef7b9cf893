"""Room Engine's member APIs (`v4/room_engine_http_srv/`): member and ban lists (one page, or
page after page up to a cap), kick, ban and unban."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from bot.models import (
    BANNED_PAGE_MAX,
    MEMBER_PAGE_DEFAULT,
    BannedList,
    BannedMember,
    BannedPage,
    MemberList,
    MemberPage,
    RoomMember,
    accounts_problem,
    duration_problem,
    reason_problem,
)
from bot.tencent.errors import MalformedResponse
from bot.tencent.transport import Abort, ApiResult, RoomEngineTransport, parse_response

_T = TypeVar("_T")

# A page that adds no new member may happen while the room changes; this many in a row means
# the cursor is not getting anywhere.
_MAX_IDLE_PAGES: Final = 3

# "RoomOwner" appears in a Tencent sample where the field table says "Owner".
_ROLE_ALIASES: Final = {"RoomOwner": "Owner"}


class _MemberModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    account: StrictStr = Field(alias="Member_Account", min_length=1)
    name_card: str = Field(default="", alias="NameCard")
    role: str = Field(default="", alias="Role")
    marks: list[int] = Field(default_factory=list, alias="Marks")
    custom_info: str = Field(default="", alias="CustomInfo")


class _MemberPageModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Missing means empty: an empty room or the last page may well leave them out.
    next_cursor: StrictStr = Field(default="", alias="Next")
    members: list[_MemberModel] = Field(default_factory=list, alias="MemberList")


class _BanModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    account: StrictStr = Field(alias="Member_Account", min_length=1)
    banned_until: int = Field(alias="BannedUntil")


class _BannedPageModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    members: list[_BanModel] = Field(default_factory=list, alias="BannedAccountList")
    next_offset: int = Field(default=0, alias="NextOffset", ge=0)


class MemberCalls(RoomEngineTransport):
    """The member APIs; retry semantics per method (see `bot.tencent.client`)."""

    async def get_room_member_list(
        self, room_id: str, *, count: int = MEMBER_PAGE_DEFAULT, next_cursor: str = ""
    ) -> MemberPage:
        """One page of the room's members: up to `count` after `next_cursor` ("" = first page)."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        body = {"RoomId": room_id, "Count": count, "Next": next_cursor}
        envelope, result = await self._call("get_room_member_list", body, idempotent=True)
        page = parse_response(_MemberPageModel, envelope, result, "get_room_member_list")
        members = tuple(
            RoomMember(
                account=m.account,
                name_card=m.name_card,
                role=_ROLE_ALIASES.get(m.role, m.role),
                marks=tuple(m.marks),
                custom_info=m.custom_info,
            )
            for m in page.members
        )
        return MemberPage(
            members, page.next_cursor, result.request_id, result.attempts, result.elapsed_s
        )

    async def get_room_members(
        self, room_id: str, *, max_members: int = 1000, page_size: int = MEMBER_PAGE_DEFAULT
    ) -> MemberList:
        """The room's members, page after page, stopping at `max_members`.

        A member listed on two pages (the room changed while paging) is kept once. Raises
        `MalformedResponse` when Tencent's cursor goes round in circles or stops advancing.
        """
        if max_members < 1 or page_size < 1:
            raise ValueError("max_members and page_size must be at least 1")
        seen: dict[str, RoomMember] = {}
        request_ids: list[str] = []
        cursors: set[str] = set()
        cursor = ""
        idle = 0
        while True:
            want = min(page_size, max_members - len(seen))
            page = await self.get_room_member_list(room_id, count=want, next_cursor=cursor)
            request_ids.append(page.request_id)
            before = len(seen)
            overflow = _keep(seen, ((m.account, m) for m in page.members), max_members)
            cursor = page.next_cursor
            if page.done or overflow:
                # Only a page longer than asked for overflows the cap; the cursor after it would
                # skip what did not fit, so there is then no place to continue from.
                return MemberList(tuple(seen.values()), overflow, "", tuple(request_ids))
            if len(seen) >= max_members:
                return MemberList(tuple(seen.values()), True, cursor, tuple(request_ids))
            idle = idle + 1 if len(seen) == before else 0
            if cursor in cursors or idle >= _MAX_IDLE_PAGES:
                raise MalformedResponse(
                    "get_room_member_list: the Next cursor does not advance",
                    request_id=page.request_id,
                )
            cursors.add(cursor)

    async def kick_user_out(
        self, room_id: str, accounts: Sequence[str], reason: str, *, abort: Abort | None = None
    ) -> ApiResult:
        """Remove `accounts` (1-20) from the room; `reason` (1-1000 UTF-8 bytes) is required.

        Raises `ValueError` for bad arguments before calling anything (splitting a longer list
        into calls is the caller's job). Retried only when certainly not applied (see
        `bot.tencent.client`).
        """
        names = _checked_accounts(accounts)
        _check(reason_problem(reason))
        body = {"RoomId": room_id, "MemberList_Account": names, "Reason": reason}
        _, result = await self._call("kick_user_out", body, idempotent=False, abort=abort)
        return result

    async def ban_room_member(
        self,
        room_id: str,
        accounts: Sequence[str],
        reason: str,
        duration_s: int,
        *,
        abort: Abort | None = None,
    ) -> ApiResult:
        """Ban `accounts` (1-20) for `duration_s` seconds: they are removed and cannot re-enter.

        `reason` (1-1000 UTF-8 bytes) is required. Raises `ValueError` for bad arguments before
        calling anything. Retried only when certainly not applied (see `bot.tencent.client`).
        """
        names = _checked_accounts(accounts)
        _check(reason_problem(reason))
        _check(duration_problem(duration_s), "duration_s")
        body = {
            "RoomId": room_id,
            "MemberList_Account": names,
            "Reason": reason,
            "Duration": duration_s,
        }
        _, result = await self._call("ban_room_member", body, idempotent=False, abort=abort)
        return result

    async def unban_room_member(
        self, room_id: str, accounts: Sequence[str], *, abort: Abort | None = None
    ) -> ApiResult:
        """Lift the bans of `accounts` (1-20). Raises `ValueError` for bad arguments first.

        Retried only when certainly not applied (see `bot.tencent.client`).
        """
        names = _checked_accounts(accounts)
        body = {"RoomId": room_id, "MemberList_Account": names}
        _, result = await self._call("unban_room_member", body, idempotent=False, abort=abort)
        return result

    async def get_banned_member_list(
        self, room_id: str, *, limit: int = BANNED_PAGE_MAX, offset: int = 0
    ) -> BannedPage:
        """One page of the room's bans: up to `limit` (1-100) from `offset` (0 = first page)."""
        if not 1 <= limit <= BANNED_PAGE_MAX:
            raise ValueError(f"limit must be from 1 to {BANNED_PAGE_MAX}, not {limit}")
        if offset < 0:
            raise ValueError(f"offset must not be negative, not {offset}")
        body = {"RoomId": room_id, "Limit": limit, "Offset": offset}
        envelope, result = await self._call("get_banned_member_list", body, idempotent=True)
        page = parse_response(_BannedPageModel, envelope, result, "get_banned_member_list")
        members = tuple(BannedMember(m.account, m.banned_until) for m in page.members)
        return BannedPage(
            members, page.next_offset, result.request_id, result.attempts, result.elapsed_s
        )

    async def get_banned_members(
        self, room_id: str, *, max_members: int = 1000, page_size: int = BANNED_PAGE_MAX
    ) -> BannedList:
        """The room's bans, page after page, stopping at `max_members`.

        An account listed twice (bans changed while paging) is kept once. Raises
        `MalformedResponse` when `NextOffset` does not move forward.
        """
        if max_members < 1 or not 1 <= page_size <= BANNED_PAGE_MAX:
            raise ValueError(f"max_members must be positive and page_size 1-{BANNED_PAGE_MAX}")
        seen: dict[str, BannedMember] = {}
        request_ids: list[str] = []
        offset = 0
        while True:
            want = min(page_size, max_members - len(seen))
            page = await self.get_banned_member_list(room_id, limit=want, offset=offset)
            request_ids.append(page.request_id)
            overflow = _keep(seen, ((b.account, b) for b in page.members), max_members)
            if page.done or overflow:
                return BannedList(tuple(seen.values()), overflow, 0, tuple(request_ids))
            if len(seen) >= max_members:
                return BannedList(tuple(seen.values()), True, page.next_offset, tuple(request_ids))
            if page.next_offset <= offset:
                raise MalformedResponse(
                    "get_banned_member_list: NextOffset does not move forward",
                    request_id=page.request_id,
                )
            offset = page.next_offset


def _keep(seen: dict[str, _T], items: Iterable[tuple[str, _T]], cap: int) -> bool:
    """Add items new to `seen` (by account) up to `cap`; True when a new one did not fit."""
    for account, item in items:
        if account in seen:
            continue
        if len(seen) >= cap:
            return True
        seen[account] = item
    return False


def _checked_accounts(accounts: Sequence[str]) -> list[str]:
    if isinstance(accounts, str):
        raise ValueError("accounts must be a list of account IDs, not one string")
    names = list(accounts)
    _check(accounts_problem(names), "accounts")
    return names


def _check(problem: str | None, name: str | None = None) -> None:
    # `name` prefixes the predicate-style problems ("must name at least one account").
    if problem:
        raise ValueError(f"{name} {problem}" if name else problem)
