"""The emulator's member APIs (`get_room_member_list`, `kick_user_out`, `ban_room_member`,
`unban_room_member`, `get_banned_member_list`) and members entering and leaving as client SDKs
would make them (`member_enter`, `member_leave`: no REST API makes anyone join).

Where the reference is silent the emulator is strict and says so:

* kick/ban/unban are all-or-nothing: if any account named is not a member (kick, ban) or not
  banned (unban), the whole call fails with 100005 naming them and nothing changes. The API
  reports no per-account results, so a partial success could not be told apart from a full one;
* kicking or banning the room owner is refused with 100006;
* banning someone who is not in the room is refused (100005), like kicking them; a ban removes
  the member (`CallbackAfterMemberLeave`, Type `Kicked`, like a kick) and blocks re-entry until
  `BannedUntil` = now + `Duration`; expired bans drop out of the banned list;
* members who leave the room (left, kicked, banned) leave their seats too: the seat change is
  posted before the leave;
* `Reason` must not be empty; `Count` is at most 100 (no documented maximum); empty or
  duplicate `MemberList_Account` entries are refused (100002); `get_banned_member_list` reads
  its offset from `Offset` (the sample's name; the field table says `Next`).
"""

from __future__ import annotations

from typing import Any

from bot.models import LeaveType
from bot.tencent.emulator_base import Caller, EmulatorCore, Events, platform_of
from bot.tencent.emulator_callbacks import member_enter_body, member_leave_body
from bot.tencent.emulator_errors import Refusal, invalid
from bot.tencent.emulator_members import (
    accounts_of,
    banned_page_of,
    duration_of,
    member_page_of,
    reason_of,
)
from bot.tencent.emulator_rooms import room_id_of


class MemberCommands(EmulatorCore):
    """The member APIs and members entering and leaving (see the module docstring)."""

    def member_enter(
        self,
        room_id: str,
        account: str,
        *,
        name_card: str = "",
        role: str | None = None,
        platform: str = "Web",
        client_ip: str = "127.0.0.1",
    ) -> None:
        """`account` enters the room (as a client SDK would), posting MemberEnter.

        The owner's role is Owner; others are Member unless `role` is "Admin". Raises `Refusal`:
        100004 for an unknown room, 100006 when the account is banned or the room is full,
        100002 when it is already a member.
        """
        caller = Caller(account, client_ip, platform_of(platform))
        room = self._room(room_id)
        members = self._members_of(room_id)
        now = self._clock()
        if account in members:
            raise invalid("Member_Account", f"{account!r} is already in room {room_id!r}")
        if members.is_banned(account, now):
            until = members.bans[account]
            raise Refusal(100006, f"{account!r} is banned from room {room_id!r} until {until}")
        if len(members) >= room["MaxMemberCount"]:
            raise Refusal(100006, f"room {room_id!r} is full ({room['MaxMemberCount']} members)")
        try:
            members.add(account, name_card=name_card, role=role)
        except ValueError as exc:
            raise invalid("Member_Account", str(exc)) from None
        room["MemberCount"] = len(members)
        body = member_enter_body(account, room_id, [account], len(members), self._event_ms())
        self._emit(body, caller)

    def member_leave(
        self,
        room_id: str,
        account: str,
        *,
        leave_type: str = LeaveType.LEAVE.value,
        reason: str = "",
        platform: str = "Web",
        client_ip: str = "127.0.0.1",
    ) -> None:
        """`account` leaves (Type `Leave`) or its heartbeat is lost (`Expired`); posts MemberLeave.

        Raises `Refusal` 100004 for an unknown room, 100005 when the account is not a member.
        """
        if leave_type not in {LeaveType.LEAVE.value, LeaveType.EXPIRED.value}:
            raise ValueError("leave_type must be Leave or Expired (kicks go through the API)")
        caller = Caller(account, client_ip, platform_of(platform))
        room = self._room(room_id)
        members = self._members_of(room_id)
        if account not in members:
            raise Refusal(100005, f"{account!r} is not a member of room {room_id!r}")
        members.remove([account])
        room["MemberCount"] = len(members)
        for event, event_caller in self._vacate(room_id, [account], caller):
            self._emit(event, event_caller)
        body = member_leave_body(
            account,
            room_id,
            [account],
            len(members),
            self._event_ms(),
            leave_type=leave_type,
            reason=reason,
        )
        self._emit(body, caller)

    def _get_room_member_list(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        count, cursor = member_page_of(body)
        self._room(room_id)
        page, next_cursor = self._members_of(room_id).page(count, cursor)
        return {"Next": next_cursor, "MemberList": page}

    def _kick_user_out(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        accounts = accounts_of(body)
        reason = reason_of(body)
        events.extend(self._remove(room_id, accounts, reason, caller, verb="kicked out"))
        return None

    def _ban_room_member(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        accounts = accounts_of(body)
        reason = reason_of(body)
        duration = duration_of(body)
        events.extend(self._remove(room_id, accounts, reason, caller, verb="banned"))
        until = int(self._clock()) + duration
        bans = self._members_of(room_id).bans
        for account in accounts:
            bans[account] = until
        return None

    def _remove(
        self, room_id: str, accounts: list[str], reason: str, caller: Caller, *, verb: str
    ) -> Events:
        """Kick (or ban) all of `accounts` or none: each must be a member, none the owner."""
        room = self._room(room_id)
        members = self._members_of(room_id)
        outsiders = [account for account in accounts if account not in members]
        if outsiders:
            raise Refusal(100005, f"not a member of room {room_id!r}: {', '.join(outsiders)}")
        owner = room["Owner_Account"]
        if owner in accounts:
            raise Refusal(100006, f"the room owner {owner!r} cannot be {verb}")
        members.remove(accounts)
        room["MemberCount"] = len(members)
        body = member_leave_body(
            caller.operator,
            room_id,
            accounts,
            len(members),
            self._event_ms(),
            leave_type=LeaveType.KICKED.value,
            reason=reason,
        )
        # Leaving the room, they leave their seats too (posted first, as they go).
        return [*self._vacate(room_id, accounts, caller), (body, caller)]

    def _unban_room_member(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        accounts = accounts_of(body)
        self._room(room_id)
        members = self._members_of(room_id)
        now = self._clock()
        not_banned = [account for account in accounts if not members.is_banned(account, now)]
        if not_banned:
            raise Refusal(100005, f"not banned from room {room_id!r}: {', '.join(not_banned)}")
        for account in accounts:
            del members.bans[account]
        return None

    def _get_banned_member_list(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        limit, offset = banned_page_of(body)
        self._room(room_id)
        bans = self._members_of(room_id).active_bans(self._clock())
        page = bans[offset : offset + limit]
        next_offset = offset + limit if offset + limit < len(bans) else 0
        return {
            "BannedAccountList": [
                {"Member_Account": account, "BannedUntil": until} for account, until in page
            ],
            "NextOffset": next_offset,
        }
