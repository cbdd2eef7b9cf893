"""How the emulator posts Room Engine callbacks: where to (the configuration made through
`v4/room_config/`, validated here), the bodies, the URL, and delivery off the API path.

Bodies follow the reference (§5). The URL is the target with Tencent's query appended
(`SdkAppid`, `CallbackCommand`, `contenttype=json`, `ClientIP`, `OptPlatform`), keeping any query
the target already has (such as roombot's `?token=`). With a token configured, `Sign` =
hex(sha256(token + RequestTime)) and `RequestTime` (unix seconds) are appended too, the scheme of
Live and Chat callbacks, so a receiver's check of them can be tested; Room callbacks document none.

`CallbackSender` queues callbacks and posts them one at a time, in order, from a background task:
the API answer is never delayed or changed by a callback. No retry policy is documented, so a
receiver that is down or slow (past `timeout_s`) is logged and skipped. Every attempt is kept in
`sent` with the HTTP status the receiver gave (None when there was no answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

import aiohttp
from yarl import URL

from bot.models import BOOL_FIELDS, CALLBACK_COMMANDS, CallbackCommand
from bot.tencent.emulator_errors import invalid

logger = logging.getLogger(__name__)

#: `OptPlatform` of changes made through the REST API.
REST_PLATFORM: Final = "RESTAPI"
#: The values `OptPlatform` may take (reference §5).
PLATFORMS: Final = frozenset(
    {"RESTAPI", "Web", "Android", "iOS", "Windows", "Mac", "iPad", "Unknown"}
)

# The RoomInfo fields an UpdateRoomInfo callback carries (the reference's list, in its order).
_UPDATE_FIELDS: Final = (
    "RoomId",
    "RoomName",
    "Owner_Account",
    "TakeSeatMode",
    "MaxMemberCount",
    "IsVideoDisabled",
    "IsAudioDisabled",
    "IsMessageDisabled",
    "IsScreenSharingDisabled",
    "IsCloudRecordingDisabled",
    "CustomInfo",
)


@dataclass(frozen=True)
class CallbackConfiguration:
    """The callback configuration made through `v4/room_config/` (one per SDKAppID)."""

    url: str
    commands: tuple[str, ...]


@dataclass(frozen=True)
class SentCallback:
    """One callback the emulator tried to deliver.

    `target` is the URL without its query (so no token is shown when it is printed); `query`
    holds every query parameter sent, the target's own included. `status` is the receiver's
    HTTP status, None when it could not be reached or did not answer in time (`error` says
    which); `answer` is its body parsed as JSON, None when it was not JSON.
    """

    command: str
    target: str
    query: dict[str, str]
    body: dict[str, Any]
    status: int | None
    answer: Any = None
    error: str | None = None


@dataclass(frozen=True)
class _Pending:
    url: URL
    command: str
    body: dict[str, Any]


def url_problem(url: Any) -> str | None:
    """Why `url` cannot receive callbacks (it must be http(s) and name a host), or None."""
    if not isinstance(url, str) or not url:
        return "is required and must be a string"
    try:
        parsed = URL(url)
    except ValueError:
        return f"{url!r} is not a URL"
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        return "must start with http:// or https:// and name a host"
    return None


def callback_config_of(body: Mapping[str, Any]) -> CallbackConfiguration:
    """The configuration a set/update_callback body asks for; `Refusal` 100002 when invalid.

    Duplicate commands are kept once, in their first position.
    """
    url = body.get("Url")
    problem = url_problem(url)
    if problem:
        raise invalid("Url", problem)
    assert isinstance(url, str)
    commands = body.get("CallbackCommandList")
    if not isinstance(commands, list) or not commands:
        raise invalid("CallbackCommandList", "must be a non-empty list of callback commands")
    unknown = [c for c in commands if not isinstance(c, str) or c not in CALLBACK_COMMANDS]
    if unknown:
        raise invalid("CallbackCommandList", f"unknown callback command(s) {json.dumps(unknown)}")
    return CallbackConfiguration(url, tuple(dict.fromkeys(commands)))


def update_room_info_body(
    operator: str, room: Mapping[str, Any], event_ms: int, *, bools_as_strings: bool
) -> dict[str, Any]:
    """`Room.CallbackAfterUpdateRoomInfo`: every field of the reference's list, not only changes.

    Tencent's sample sends all eleven fields, so the emulator does too, with their values after
    the update. With `bools_as_strings` the booleans are sent as "true"/"false" (Tencent's
    sample does this for one of them); a receiver must accept both forms.
    """
    info = {name: room[name] for name in _UPDATE_FIELDS}
    if bools_as_strings:
        for name in BOOL_FIELDS:
            info[name] = "true" if info[name] else "false"
    return {
        "CallbackCommand": CallbackCommand.UPDATE_ROOM_INFO.value,
        "Operator_Account": operator,
        "RoomInfo": info,
        "EventTime": event_ms,
    }


def create_room_body(operator: str, room: Mapping[str, Any], event_ms: int) -> dict[str, Any]:
    """`Room.CallbackAfterCreateRoom`: the new room as get_room_info would report it."""
    return {
        "CallbackCommand": CallbackCommand.CREATE_ROOM.value,
        "Operator_Account": operator,
        "RoomInfo": dict(room),
        "EventTime": event_ms,
    }


def destroy_room_body(operator: str, room_id: str, event_ms: int) -> dict[str, Any]:
    """`Room.CallbackAfterDestroyRoom`."""
    return {
        "CallbackCommand": CallbackCommand.DESTROY_ROOM.value,
        "Operator_Account": operator,
        "RoomId": room_id,
        "EventTime": event_ms,
    }


def member_enter_body(
    operator: str, room_id: str, accounts: list[str], member_count: int, event_ms: int
) -> dict[str, Any]:
    """`Room.CallbackAfterMemberEnter` (`MemberCount` is the count after they entered)."""
    return {
        "CallbackCommand": CallbackCommand.MEMBER_ENTER.value,
        "Operator_Account": operator,
        "RoomId": room_id,
        "MemberCount": member_count,
        "Type": "Enter",
        "MemberList_Account": list(accounts),
        "EventTime": event_ms,
    }


def member_leave_body(
    operator: str,
    room_id: str,
    accounts: list[str],
    member_count: int,
    event_ms: int,
    *,
    leave_type: str,
    reason: str,
) -> dict[str, Any]:
    """`Room.CallbackAfterMemberLeave`; `leave_type` is Leave, Kicked or Expired."""
    return {
        "CallbackCommand": CallbackCommand.MEMBER_LEAVE.value,
        "Operator_Account": operator,
        "RoomId": room_id,
        "MemberCount": member_count,
        "Type": leave_type,
        "MemberList_Account": list(accounts),
        "Reason": reason,
        "EventTime": event_ms,
    }


def seat_info_changed_body(
    operator: str, room_id: str, seats: list[dict[str, Any]], event_ms: int
) -> dict[str, Any]:
    """`Mic.CallbackAfterSeatInfoChanged` with the seat list as given."""
    return {
        "CallbackCommand": CallbackCommand.SEAT_INFO_CHANGED.value,
        "Operator_Account": operator,
        "RoomId": room_id,
        "SeatList": [dict(seat) for seat in seats],
        "EventTime": event_ms,
    }


def callback_sign(token: str, request_time: int) -> str:
    """hex(sha256(token + RequestTime)): the token immediately followed by the decimal time."""
    return hashlib.sha256(f"{token}{request_time}".encode()).hexdigest()


class CallbackSender:
    """Delivers callbacks in the background, in order, one at a time; see the module docstring.

    `post()` only queues (it never blocks or fails the caller); `start()` and `close()` bound the
    background task's life. At most `max_pending` callbacks wait; beyond that new ones are
    dropped, logged and counted in `dropped`.
    """

    def __init__(
        self,
        *,
        sdkappid: int,
        token: str | None = None,
        clock: Callable[[], float],
        timeout_s: float = 2.0,
        max_pending: int = 10_000,
        max_recorded: int = 100_000,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("the callback timeout must be positive")
        self._sdkappid = sdkappid
        self._token = token or None
        self._clock = clock
        self._timeout_s = timeout_s
        self._max_pending = max_pending
        self._max_recorded = max_recorded
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._busy = False
        self.sent: list[SentCallback] = []
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Callbacks queued or being posted."""
        return self._queue.qsize() + (1 if self._busy else 0)

    def post(
        self,
        target: str,
        body: dict[str, Any],
        *,
        client_ip: str,
        platform: str,
    ) -> None:
        """Queue `body` for `target`, with Tencent's query (and `Sign`, given a token)."""
        if self._queue.qsize() >= self._max_pending:
            self.dropped += 1
            logger.warning(
                "callback %s dropped: %d already waiting",
                body["CallbackCommand"],
                self._max_pending,
            )
            return
        command = str(body["CallbackCommand"])
        params = {
            "SdkAppid": str(self._sdkappid),
            "CallbackCommand": command,
            "contenttype": "json",
            "ClientIP": client_ip,
            "OptPlatform": platform,
        }
        url = URL(target).extend_query(params)
        self._queue.put_nowait(_Pending(url, command, body))

    async def start(self) -> None:
        """Start the background task (idempotent); needs a running event loop."""
        if self._worker is not None:
            return
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        self._worker = asyncio.create_task(self._run(), name="emulator-callbacks")

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued callback has been posted (or given up on).

        Raises `TimeoutError` if that takes longer than `timeout_s`.
        """
        async with asyncio.timeout(timeout_s):
            await self._queue.join()

    async def close(self, grace_s: float = 1.0) -> None:
        """Give queued callbacks up to `grace_s` to go out, then cancel the rest and clean up."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await self.settle(grace_s)
        left = self.pending
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None
        self._busy = False
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if left:
            logger.warning("emulator stopping: %d callback(s) not delivered", left)

    async def _run(self) -> None:
        while True:
            pending = await self._queue.get()
            self._busy = True
            try:
                self._record(await self._deliver(pending))
            finally:
                self._busy = False
                self._queue.task_done()

    async def _deliver(self, pending: _Pending) -> SentCallback:
        assert self._session is not None
        payload = json.dumps(pending.body, ensure_ascii=False).encode("utf-8")
        url = pending.url
        if self._token is not None:
            # Signed when sent, not when queued, so a wait in the queue never makes it stale.
            request_time = int(self._clock())
            sign = callback_sign(self._token, request_time)
            url = url.extend_query({"Sign": sign, "RequestTime": str(request_time)})
        shown = str(url.with_query(None))
        record = SentCallback(
            command=pending.command,
            target=shown,
            query=dict(url.query),
            body=pending.body,
            status=None,
        )
        try:
            async with self._session.post(url, data=payload) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError:
            logger.warning(
                "callback %s to %s: no answer within %g s; skipped",
                pending.command,
                shown,
                self._timeout_s,
            )
            return replace(record, error=f"no answer within {self._timeout_s:g} s")
        except aiohttp.ClientError as exc:
            # The exception text may quote the URL and its token: name only its type.
            logger.warning(
                "callback %s to %s failed (%s); skipped", pending.command, shown, type(exc).__name__
            )
            return replace(record, error=type(exc).__name__)
        answer: Any = None
        with contextlib.suppress(ValueError):
            answer = json.loads(raw)
        if status != 200:
            logger.warning("callback %s to %s: HTTP %d", pending.command, shown, status)
        return replace(record, status=status, answer=answer)

    def _record(self, sent: SentCallback) -> None:
        if len(self.sent) >= self._max_recorded:
            del self.sent[: self._max_recorded // 2]
        self.sent.append(sent)
