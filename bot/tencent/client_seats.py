"""Room Engine's seat APIs (`v4/room_engine_http_mic/`): the seat list, `lock_seat`,
`kick_user_off_seat` and `pick_user_on_seat`.

`lock_seat` takes all three flags, always: the reference does not say what Tencent does with a
flag left out (keep it, or reset it to false), so this client never leaves one out, and its
callers copy the flags they do not mean to change from `get_seat_list` (`bot.seats`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from bot.models import (
    REASON_MAX_BYTES,
    Seat,
    SeatList,
    account_id_problem,
    lenient_bool,
    utf8_len,
)
from bot.models.apis import MIC_PATH
from bot.tencent.transport import Abort, ApiResult, RoomEngineTransport, parse_response


class _SeatModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    index: StrictInt = Field(alias="Index", ge=0)
    # Typed String, yet some samples carry a bare number; an empty seat leaves it out or "".
    account: str | int | None = Field(default=None, alias="Member_Account")
    locked: bool = Field(default=False, alias="IsTakenDisabled")
    video_forbidden: bool = Field(default=False, alias="IsVideoDisabled")
    audio_forbidden: bool = Field(default=False, alias="IsAudioDisabled")

    _bools = field_validator("locked", "video_forbidden", "audio_forbidden", mode="before")(
        lenient_bool
    )


class _SeatListModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # A room without seats may well answer without a list.
    seats: list[_SeatModel] = Field(default_factory=list, alias="SeatList")


class SeatCalls(RoomEngineTransport):
    """The seat APIs; retry semantics per method (see `bot.tencent.client`)."""

    async def get_seat_list(self, room_id: str, *, abort: Abort | None = None) -> SeatList:
        """The room's seats in index order (an empty list for a room without seats).

        A read: every transient failure is retried.
        """
        envelope, result = await self._call(
            "get_seat_list", {"RoomId": room_id}, idempotent=True, service=MIC_PATH, abort=abort
        )
        listed = parse_response(_SeatListModel, envelope, result, "get_seat_list")
        seats = tuple(
            Seat(
                index=s.index,
                account=str(s.account) if s.account not in (None, "") else None,
                locked=s.locked,
                video_forbidden=s.video_forbidden,
                audio_forbidden=s.audio_forbidden,
            )
            for s in sorted(listed.seats, key=lambda s: s.index)
        )
        return SeatList(room_id, seats, result.request_id, result.attempts, result.elapsed_s)

    async def lock_seat(
        self,
        room_id: str,
        index: int,
        *,
        forbid_taken: bool,
        forbid_video: bool,
        forbid_audio: bool,
        abort: Abort | None = None,
    ) -> ApiResult:
        """Set seat `index`'s three flags: locked (locking removes whoever sits there), video
        forbidden, audio forbidden. All three are required (see the module docstring).

        It sets values, so repeating it leaves the same seat and the same answer: every
        transient failure is retried.
        """
        _check_index(index)
        flags = {
            "ForbidTaken": forbid_taken,
            "ForbidVideo": forbid_video,
            "ForbidAudio": forbid_audio,
        }
        if not all(isinstance(flag, bool) for flag in flags.values()):
            raise ValueError("the seat flags must be True or False")
        body = {"RoomId": room_id, "Index": index, **flags}
        _, result = await self._call(
            "lock_seat", body, idempotent=True, service=MIC_PATH, abort=abort
        )
        return result

    async def kick_user_off_seat(
        self, room_id: str, account: str, data: str, *, abort: Abort | None = None
    ) -> ApiResult:
        """Take `account` off its seat (it stays in the room); `data` is the API's mandatory
        `Data`, the text its clients show (at most 1000 UTF-8 bytes here; none documented).
        Raises `ApiError` 100206 when `account` is not on a seat.

        Once it worked, a repeat answers 100206: retried only when certainly not applied.
        """
        _check_account(account)
        if not isinstance(data, str) or utf8_len(data) > REASON_MAX_BYTES:
            raise ValueError(f"data must be a string of at most {REASON_MAX_BYTES} UTF-8 bytes")
        body = {"RoomId": room_id, "Member_Account": account, "Data": data}
        _, result = await self._call(
            "kick_user_off_seat", body, idempotent=False, service=MIC_PATH, abort=abort
        )
        return result

    async def pick_user_on_seat(
        self, room_id: str, index: int, account: str, *, abort: Abort | None = None
    ) -> ApiResult:
        """Put member `account` on seat `index`. Raises `ApiError` 100200 (locked), 100203
        (already on a seat), 100205 (seats full), 100210 (taken), 100005 (not a member), ...

        Once it worked, a repeat answers 100203: retried only when certainly not applied.
        """
        _check_index(index)
        _check_account(account)
        body = {"RoomId": room_id, "Member_Account": account, "Index": index}
        _, result = await self._call(
            "pick_user_on_seat", body, idempotent=False, service=MIC_PATH, abort=abort
        )
        return result


def _check_index(index: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"a seat index is a whole number from 0, not {index!r}")


def _check_account(account: str) -> None:
    problem = account_id_problem(account) if isinstance(account, str) else "must be a string"
    if problem:
        raise ValueError(problem)
