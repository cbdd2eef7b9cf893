"""The Room Engine side of a run: one call sent (with the answer per target), a withdrawn call's
results, and the seat hook that turns seat changes into `lock_seat` calls from the seat list
read first (`bot.seats`).

Every call goes through the client with the run's `abort`: asked after the call's turn has come
(its rate-budget slot) and right before sending, so a withdrawn call reaches nobody.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from bot.failures import describe_failure
from bot.models import (
    Call,
    DestroyCall,
    LockSeatCall,
    MemberApi,
    MemberCall,
    RoomPatch,
    SeatChange,
    SeatKickCall,
    SeatList,
)
from bot.outcomes import Failure, RoomResult
from bot.requests.recorder import targets_of
from bot.seats import resolve_all, unread_seats
from bot.tencent.client import Abort, ApiResult, RoomEngineClient
from bot.tencent.errors import NotSent

#: Room Engine's "not a room member": a member call that names one changes nothing at all.
NOT_A_MEMBER: Final = 100005


class Withdrawal(Protocol):
    """What the seat hook needs of a run's withdrawal: it is an `Abort`, and it hears of each
    failure (a configuration error withdraws the rest)."""

    def __call__(self) -> str | None:
        """The reason to withdraw a call, or None to send it."""

    def note(self, failure: Failure | None) -> None:
        """Hear of a failure."""


def withdrawn(call: Call, why: str) -> list[RoomResult]:
    """The results of a call withdrawn before it was queued: not attempted, for `why`."""
    failure = describe_failure(NotSent(why), room_id=call.room_id)
    return [
        RoomResult(t.room_id, t.changes, failure=failure, account=t.account)
        for t in targets_of(call)
    ]


class CallSender:
    """Sends a run's calls through `client`."""

    def __init__(self, client: RoomEngineClient) -> None:
        self._client = client

    async def send(self, call: Call, abort: Abort) -> list[RoomResult]:
        """Make one call; one result per target (a member call refused with 100005 is retried
        account by account, so the members among them are still acted on)."""
        started = time.monotonic()
        try:
            outcome = await self._invoke(call, abort)
        except Exception as exc:
            failure = describe_failure(exc, room_id=call.room_id)
            if (
                isinstance(call, MemberCall)
                and len(call.accounts) > 1
                and failure.code == NOT_A_MEMBER
            ):
                singles = [call.model_copy(update={"accounts": (a,)}) for a in call.accounts]
                return [r for single in singles for r in await self.send(single, abort)]
            elapsed = time.monotonic() - started
            return [
                RoomResult(
                    t.room_id,
                    t.changes,
                    failure=failure,
                    request_id=failure.request_id,
                    elapsed_s=elapsed,
                    account=t.account,
                )
                for t in targets_of(call)
            ]
        elapsed = time.monotonic() - started
        return [
            RoomResult(
                t.room_id,
                t.changes,
                request_id=outcome.request_id,
                attempts=outcome.attempts,
                elapsed_s=elapsed,
                account=t.account,
            )
            for t in targets_of(call)
        ]

    async def _invoke(self, call: Call, abort: Abort) -> ApiResult:
        client = self._client
        if isinstance(call, RoomPatch):
            return await client.update_room_info(call, abort=abort)
        if isinstance(call, DestroyCall):
            return await client.destroy_room(call.room_id, abort=abort)
        if call.api is MemberApi.KICK:
            assert call.reason is not None
            return await client.kick_user_out(call.room_id, call.accounts, call.reason, abort=abort)
        if call.api is MemberApi.BAN:
            assert call.reason is not None
            assert call.duration_s is not None
            return await client.ban_room_member(
                call.room_id, call.accounts, call.reason, call.duration_s, abort=abort
            )
        if isinstance(call, MemberCall):
            return await client.unban_room_member(call.room_id, call.accounts, abort=abort)
        if isinstance(call, LockSeatCall):
            flags = call.flags
            return await client.lock_seat(
                call.room_id,
                call.index,
                forbid_taken=flags["ForbidTaken"],
                forbid_video=flags["ForbidVideo"],
                forbid_audio=flags["ForbidAudio"],
                abort=abort,
            )
        if isinstance(call, SeatKickCall):
            return await client.kick_user_off_seat(
                call.room_id, call.account, call.data, abort=abort
            )
        # A SeatChange is never sent: the seat hook resolves it into a LockSeatCall first.
        raise TypeError(f"{call.api} for seat {call.index} was not resolved before sending")

    async def resolve_seats(
        self,
        calls: tuple[Call, ...],
        turn: Callable[[], Awaitable[None]],
        abort: Withdrawal,
    ) -> tuple[tuple[Call, ...], dict[int, Failure]]:
        """The seat hook: read each room's seat list once (concurrently), then resolve every
        seat change against it (`bot.seats.resolve`). Returns the calls with each resolvable
        `SeatChange` replaced by its `LockSeatCall`, and the failure of each that is not (by
        index): a seat the room lacks, a ban on an empty seat, an undo's conflict, or a seat
        list that could not be read."""
        rooms = dict.fromkeys(call.room_id for call in calls if isinstance(call, SeatChange))
        lists: dict[str, SeatList | Failure] = {}

        async def read(room_id: str) -> None:
            try:
                await turn()
                lists[room_id] = await self._client.get_seat_list(room_id, abort=abort)
            except Exception as exc:
                failure = describe_failure(exc, room_id=room_id)
                abort.note(failure)
                lists[room_id] = unread_seats(failure)

        await asyncio.gather(*(read(room_id) for room_id in rooms))
        return resolve_all(calls, lists)
