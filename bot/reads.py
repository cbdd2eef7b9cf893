"""What the read verbs and the user-facing surfaces read: rooms from Room Engine (`show`, `members`,
`banned`, `seats`), the audit trail (`history`, a user's `activity`) and the policy (a user's
`access`). Nothing here changes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from typing import Final

from bot.audit import AuditEntry, AuditError, Outcome
from bot.audit.approvals import approval_summary
from bot.commands import VERBS, VerbKind
from bot.failures import describe_failure
from bot.models import BANNED_PAGE_MAX, SeatList
from bot.outcomes import (
    Access,
    Activity,
    Actor,
    Approved,
    BannedView,
    Failure,
    HistoryView,
    MembersView,
    RequestSummary,
    RoomView,
    SeatsView,
)
from bot.policy import GroupDirectory, Policy
from bot.requests.recorder import AuditRecorder
from bot.tencent.client import RoomEngineClient

#: How many audit entries `history` shows.
HISTORY_LIMIT: Final = 10
#: A `show` of at most this many rooms reads their seats too (`get_seat_list`, one call each):
#: what Slack draws as room cards, which list the seats. A bigger `show` reads rooms only.
SHOW_SEATS_MAX_ROOMS: Final = 10
#: Most members `members` lists; most bans `banned` lists (each is "… and N more" beyond).
MEMBERS_LIMIT: Final = 500
BANNED_LIMIT: Final = 500
#: How many requests and rooms `activity` returns, and how many audit rows it reads to find them.
RECENT_REQUESTS: Final = 10
RECENT_ROOMS: Final = 10
_ACTIVITY_ROWS: Final = 2_000
#: Outcomes of rows that called nothing: their rooms were not "touched".
_UNTOUCHED: Final = frozenset({Outcome.DENIED, Outcome.INVALID, Outcome.CANCELLED, Outcome.DRY_RUN})


class Reads:
    """Reads for the service: Room Engine through `client`, the trail through `audit`, the
    policy (as it is now: `policy()`) with `groups`; `allowed_verbs` says what an actor may run
    (the card buttons `show` offers)."""

    def __init__(
        self,
        client: RoomEngineClient,
        audit: AuditRecorder,
        policy: Callable[[], Policy],
        groups: GroupDirectory | None,
        allowed_verbs: Callable[[Actor], Awaitable[frozenset[str]]],
    ) -> None:
        self._client = client
        self._audit = audit
        self._policy_now = policy
        self._groups = groups
        self._allowed_verbs = allowed_verbs

    async def show(self, approved: Approved) -> list[RoomView]:
        """Read each named room with `get_room_info`, and, for at most `SHOW_SEATS_MAX_ROOMS`
        rooms, its seats with `get_seat_list` at the same time (a seat list that cannot be read
        leaves the room's view as it is, with `seats_failure` saying why)."""

        allowed = await self._allowed_verbs(approved.actor)
        with_seats = len(approved.command.rooms) <= SHOW_SEATS_MAX_ROOMS

        async def seats(room_id: str) -> SeatList | Failure | None:
            if not with_seats:
                return None
            try:
                return await self._client.get_seat_list(room_id)
            except Exception as exc:
                return describe_failure(exc, room_id=room_id, reading=True)

        async def one(room_id: str) -> RoomView:
            read_seats = asyncio.ensure_future(seats(room_id))
            try:
                snapshot = await self._client.get_room_info(room_id)
            except Exception as exc:
                read_seats.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await read_seats
                failure = describe_failure(exc, room_id=room_id, reading=True)
                return RoomView(room_id=room_id, failure=failure, allowed_verbs=allowed)
            listed = await read_seats
            return RoomView(
                room_id=room_id,
                snapshot=snapshot,
                allowed_verbs=allowed,
                seats=listed if isinstance(listed, SeatList) else None,
                seats_failure=listed if isinstance(listed, Failure) else None,
            )

        return list(await asyncio.gather(*(one(r) for r in approved.command.rooms)))

    async def members(self, approved: Approved) -> MembersView:
        """`members ROOM`: every member, page after page up to `MEMBERS_LIMIT`, and the total."""
        room_id = approved.command.rooms[0]
        try:
            listing = await self._client.get_room_members(room_id, max_members=MEMBERS_LIMIT)
            total = len(listing.members)
            if listing.truncated:
                total = (await self._client.get_room_info(room_id)).room.member_count
        except Exception as exc:
            return MembersView(
                room_id=room_id, failure=describe_failure(exc, room_id=room_id, reading=True)
            )
        return MembersView(
            room_id=room_id,
            members=listing.members,
            total=max(total, len(listing.members)),
            truncated=listing.truncated,
            request_ids=listing.request_ids,
        )

    async def banned(self, approved: Approved) -> BannedView:
        """`banned ROOM`: every ban with its end time, page after page up to `BANNED_LIMIT`."""
        room_id = approved.command.rooms[0]
        try:
            listing = await self._client.get_banned_members(
                room_id, max_members=BANNED_LIMIT, page_size=BANNED_PAGE_MAX
            )
        except Exception as exc:
            return BannedView(
                room_id=room_id, failure=describe_failure(exc, room_id=room_id, reading=True)
            )
        return BannedView(
            room_id=room_id,
            banned=listing.members,
            truncated=listing.truncated,
            request_ids=listing.request_ids,
        )

    async def seats(self, approved: Approved) -> SeatsView:
        """`seats ROOM`: the room's seats with `get_seat_list`."""
        room_id = approved.command.rooms[0]
        try:
            listed = await self._client.get_seat_list(room_id)
        except Exception as exc:
            return SeatsView(room_id=room_id, failure=describe_failure(exc, room_id=room_id))
        return SeatsView(room_id=room_id, seats=listed)

    async def history(self, approved: Approved) -> HistoryView:
        """The newest audit entries for the room named in a `history` command."""
        room_id = approved.command.rooms[0]
        store = self._audit.store
        if store is None:
            return HistoryView(room_id=room_id, problem="the audit trail is not configured")
        try:
            entries = await store.query(room=room_id, limit=HISTORY_LIMIT)
        except AuditError as exc:
            return HistoryView(room_id=room_id, problem=self._audit.failed("history", exc))
        try:
            decided = await store.approval_decisions([e.request_key for e in entries])
        except AuditError as exc:
            self._audit.failed("history", exc)
            decided = {}
        approvals = {
            key: summary
            for key, record in decided.items()
            if (summary := approval_summary(record)) is not None
        }
        return HistoryView(room_id=room_id, entries=tuple(entries), approvals=approvals)

    async def access(self, user_id: str) -> Access:
        """What `user_id` may run everywhere, and what more only in guardrailed channels."""
        groups = self._groups
        everywhere = await self._policy_now().allowed_verbs(
            user_id=user_id, channel_id=None, groups=groups
        )
        channels = sorted({c for role in self._policy_now().roles for c in role.channels or ()})
        only_in: list[tuple[str, tuple[str, ...]]] = []
        for channel in channels:
            here = await self._policy_now().allowed_verbs(
                user_id=user_id, channel_id=channel, groups=groups
            )
            if here - everywhere:
                only_in.append((channel, _in_help_order(here - everywhere)))
        return Access(
            user_id=user_id, everywhere=_in_help_order(everywhere), only_in=tuple(only_in)
        )

    async def activity(
        self, user_id: str, *, requests: int = RECENT_REQUESTS, rooms: int = RECENT_ROOMS
    ) -> Activity:
        """`user_id`'s newest `requests` requests and the `rooms` rooms they touched lately,
        from the audit trail (the newest few thousand of their rows)."""
        store = self._audit.store
        if store is None:
            return Activity(user_id=user_id, problem="the audit trail is not configured")
        try:
            rows = await store.query(user=user_id, limit=_ACTIVITY_ROWS)
        except AuditError as exc:
            return Activity(user_id=user_id, problem=self._audit.failed("activity", exc))
        by_request: dict[str, list[AuditEntry]] = {}
        for row in rows:  # newest first, so requests come out newest first too
            by_request.setdefault(row.request_key, []).append(row)
        touched: dict[str, None] = {}  # newest request first; its rooms in the order named
        for group in by_request.values():
            for row in sorted(group, key=lambda r: r.id):
                if row.room_id and row.outcome not in _UNTOUCHED:
                    touched.setdefault(row.room_id)
        return Activity(
            user_id=user_id,
            requests=tuple(
                _summary(key, group) for key, group in list(by_request.items())[:requests]
            ),
            rooms=tuple(touched)[:rooms],
        )


def _in_help_order(verbs: Collection[str]) -> tuple[str, ...]:
    return tuple(verb for verb in VERBS if verb in verbs and VERBS[verb].kind is not VerbKind.HELP)


def _summary(request_key: str, rows: list[AuditEntry]) -> RequestSummary:
    """One request from its rows (given newest first)."""
    ordered = sorted(rows, key=lambda r: r.id)
    return RequestSummary(
        request_key=request_key,
        verb=next((r.verb for r in ordered if r.verb), None),
        rooms=tuple(dict.fromkeys(r.room_id for r in ordered if r.room_id)),
        outcomes=dict(Counter(r.outcome for r in ordered)),
        created_at=ordered[0].created_at,
        source=ordered[0].source,
        text=ordered[0].raw_text,
    )
