"""The async Room Engine REST client: signed requests, parsed answers, retries, a rate budget.

One `RoomEngineClient` (one pooled `httpx.AsyncClient`) per process is the intended use; every
attempt runs inside a slot of its rate budget (a `CallBudget`: the process's, or the one all
replicas share on PostgreSQL). Failures are raised as the typed errors of `bot.tencent.errors`
(and `RateBudgetUnavailable` when the budget grants nothing); a UserSig or secret key never
appears in a message, a log line or a repr.

Which calls are retried after a failure whose effect is unknown (a timeout, HTTP 5xx, 100001):

* reads (`get_*`) and calls that set values (`update_room_info`, `update_callback`): repeating
  them leaves the same state and gets the same answer, so every transient failure is retried;
* `create_room`, `destroy_room`, `kick_user_out`, `ban_room_member`, `unban_room_member`,
  `set_callback`, `delete_callback`: the state they leave is the same when repeated, but the
  answer is not. If the first attempt worked unseen, the repeat answers an error (the room exists
  (100003) or is gone (100004), the account is no longer a member or no longer banned (100005),
  the configuration exists (100300) or is gone (100301)) and a success would be reported as a
  failure. They are retried only when the request certainly had no effect: refused by a
  frequency limit (60007, 60011, 60018, 60019) or never sent (the connection was not made).
  Otherwise the caller gets the error and should look at the room before trying again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from bot import metrics
from bot.config import Settings
from bot.models import (
    BANNED_PAGE_MAX,
    MEMBER_PAGE_DEFAULT,
    RoomInfo,
    RoomPatch,
    accounts_problem,
    duration_problem,
    reason_problem,
)
from bot.tencent.apis import CONFIG_PATH, SERVICE_PATH
from bot.tencent.errors import (
    RATE_LIMIT_CODES,
    RETRYABLE_CODES,
    ApiError,
    MalformedResponse,
    NotSent,
    RequestTimeout,
    RoomEngineError,
    TransportError,
    redact,
)
from bot.tencent.ratelimit import CallBudget, process_budget
from bot.tencent.usersig import UserSigSigner

logger = logging.getLogger(__name__)

#: Asked after a write call's turn comes (its rate-budget slot): a reason to withdraw it, or
#: None to send it. A withdrawn call raises `NotSent` and reaches nobody.
Abort = Callable[[], str | None]

#: The only RoomType Room Engine's create_room accepts today.
CONFERENCE: Final = "Conference"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failed call.

    Retry n (1-based) waits a random time in `[d/2, d]` with `d = min(max_delay, base_delay·2ⁿ⁻¹)`
    ("equal jitter": spread out, yet never a near-zero pause). No retry starts once
    `total_budget_s` has passed since the first attempt began, nor when its pause would cross it,
    so a call gives up after at most `total_budget_s` plus one attempt's timeout.
    """

    max_attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 2.0
    total_budget_s: float = 12.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")
        if self.total_budget_s <= 0:
            raise ValueError("total_budget_s must be positive")

    def ceiling(self, retry: int) -> float:
        """The longest pause before retry number `retry` (1-based)."""
        return min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The pause before retry number `retry` (1-based), jittered with `rng`."""
        ceiling = self.ceiling(retry)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class ApiResult:
    """A successful call: Tencent's RequestId, how many attempts it took, and how long."""

    request_id: str
    attempts: int
    elapsed_s: float


@dataclass(frozen=True)
class RoomSnapshot:
    """A room as `get_room_info` reported it, with the RequestId of that answer."""

    room: RoomInfo
    request_id: str
    attempts: int = 1
    elapsed_s: float = 0.0


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


@dataclass(frozen=True)
class CallbackConfig:
    """The app's Room Engine callback configuration: the URL and the commands it receives."""

    url: str
    commands: tuple[str, ...]
    request_id: str


class _Envelope(BaseModel):
    """The JSON every Room Engine answer is wrapped in."""

    model_config = ConfigDict(extra="ignore")

    action_status: StrictStr = Field(alias="ActionStatus")
    error_code: StrictInt = Field(alias="ErrorCode")
    error_info: StrictStr = Field(default="", alias="ErrorInfo")
    request_id: StrictStr = Field(default="", alias="RequestId")
    response: dict[str, Any] | None = Field(default=None, alias="Response")


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


class _CallbackConfigModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: StrictStr = Field(default="", alias="Url")
    commands: list[StrictStr] = Field(default_factory=list, alias="CallbackCommandList")


@dataclass(frozen=True)
class _Failure:
    """One failed attempt; `sent` is False when the request certainly never reached Tencent."""

    error: RoomEngineError
    sent: bool = True


_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")

#: ErrorCode of the callback-configuration APIs when there is no configuration yet.
NO_CALLBACK_CONFIG: Final = 100301

# A page that adds no new member may happen while the room changes; this many in a row means
# the cursor is not getting anywhere.
_MAX_IDLE_PAGES: Final = 3

# "RoomOwner" appears in a Tencent sample where the field table says "Owner".
_ROLE_ALIASES: Final = {"RoomOwner": "Owner"}

# Connection never established: nothing reached the server, so even a non-idempotent call
# (create_room) may safely be sent again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class RoomEngineClient:
    """Calls the Room Engine REST API as the App administrator `admin_id`.

    It signs (and re-signs) the admin UserSig from `secret_key` itself, waits on `rate_budget`
    before every attempt, retries what is worth retrying under `retry`, and raises
    `RoomEngineError` subclasses. Use it as an async context manager, or call `aclose()`.

    `clock` (wall time, for signing), `sleep` (backoff pauses), `rng` (jitter) and `monotonic`
    (elapsed time) exist so tests can drive time; production code leaves them alone.
    `count_calls` False keeps this client's calls out of `bot.metrics` (a readiness probe's).
    """

    def __init__(
        self,
        *,
        base_url: str,
        sdkappid: int,
        secret_key: str,
        admin_id: str,
        rate_budget: CallBudget,
        timeout_s: float = 5.0,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        count_calls: bool = True,
    ) -> None:
        if not secret_key:
            raise ValueError("secret_key must not be empty")
        self._base_url = base_url.rstrip("/")
        self._sdkappid = sdkappid
        self._admin_id = admin_id
        self._secret_key = secret_key
        self._signer = UserSigSigner(sdkappid, secret_key, admin_id)
        self._budget = rate_budget
        self._timeout_s = timeout_s
        self._retry = retry
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._count_calls = count_calls
        # Jitter needs no cryptographic quality; tests pass a seeded one.
        self._rng = rng or random.Random()  # noqa: S311
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"Content-Type": "application/json; charset=utf-8"},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        )
        _install_httpx_log_redaction()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, rate_budget: CallBudget | None = None, **overrides: Any
    ) -> RoomEngineClient:
        """A client for the configured app, pacing its calls with `rate_budget`: pass the audit
        store's (`AuditStore.rate_budget(settings.roombot_rate_limit)`), which every replica on
        a PostgreSQL store shares; without one, this process's own budget.

        Raises `ConfigError` when TENCENT_SDKAPPID or TENCENT_SECRET_KEY is missing.
        """
        settings.require(
            "TENCENT_SDKAPPID", "TENCENT_SECRET_KEY", purpose="calling Tencent Room Engine"
        )
        assert settings.tencent_sdkappid is not None
        assert settings.tencent_secret_key is not None
        kwargs: dict[str, Any] = {
            "base_url": settings.tencent_base_url,
            "sdkappid": settings.tencent_sdkappid,
            "secret_key": settings.tencent_secret_key.get_secret_value(),
            "admin_id": settings.tencent_admin_id,
            "rate_budget": rate_budget or process_budget(settings.roombot_rate_limit),
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    # -- what callers read ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The base URL requests go to (for "talking to …" banners)."""
        return self._base_url

    @property
    def sdkappid(self) -> int:
        """The SDKAppID requests are made for."""
        return self._sdkappid

    @property
    def admin_id(self) -> str:
        """The App administrator identifier requests are signed as."""
        return self._admin_id

    def __repr__(self) -> str:
        return (
            f"RoomEngineClient(base_url={self._base_url!r}, sdkappid={self._sdkappid}, "
            f"admin_id={self._admin_id!r})"
        )

    # -- the API ------------------------------------------------------------------------------

    async def update_room_info(self, patch: RoomPatch, *, abort: Abort | None = None) -> ApiResult:
        """Change exactly the fields `patch` names. Idempotent, so every failure kind is retried."""
        _, result = await self._call("update_room_info", patch.body(), idempotent=True, abort=abort)
        return result

    async def get_room_info(self, room_id: str, *, abort: Abort | None = None) -> RoomSnapshot:
        """The room's current settings. Raises `ApiError` 100004 when it does not exist."""
        envelope, result = await self._call(
            "get_room_info", {"RoomId": room_id}, idempotent=True, abort=abort
        )
        data = (envelope.response or {}).get("RoomInfo")
        try:
            room = RoomInfo.model_validate(data)
        except ValidationError:
            raise MalformedResponse(
                "get_room_info: the answer has no valid Response.RoomInfo",
                request_id=result.request_id,
                attempts=result.attempts,
            ) from None
        return RoomSnapshot(room, result.request_id, result.attempts, result.elapsed_s)

    async def create_room(self, room_id: str, **fields: Any) -> ApiResult:
        """Create a Conference room; `fields` are extra `RoomInfo` fields by API name.

        Not idempotent, so only failures that certainly left the room uncreated are retried.
        """
        info = {"RoomId": room_id, "RoomType": CONFERENCE, **fields}
        _, result = await self._call("create_room", {"RoomInfo": info}, idempotent=False)
        return result

    async def destroy_room(self, room_id: str, *, abort: Abort | None = None) -> ApiResult:
        """Destroy a room. Raises `ApiError` 100004 when it does not exist.

        Not retried after a failure whose effect is unknown (a repeat would answer 100004).
        """
        _, result = await self._call(
            "destroy_room", {"RoomId": room_id}, idempotent=False, abort=abort
        )
        return result

    # -- members ------------------------------------------------------------------------------

    async def get_room_member_list(
        self, room_id: str, *, count: int = MEMBER_PAGE_DEFAULT, next_cursor: str = ""
    ) -> MemberPage:
        """One page of the room's members: up to `count` after `next_cursor` ("" = first page)."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        body = {"RoomId": room_id, "Count": count, "Next": next_cursor}
        envelope, result = await self._call("get_room_member_list", body, idempotent=True)
        page = _parse_response(_MemberPageModel, envelope, result, "get_room_member_list")
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
        into calls is the caller's job). Retried only when certainly not applied (see above).
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
        calling anything. Retried only when certainly not applied (see the module docstring).
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

        Retried only when certainly not applied (see the module docstring).
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
        page = _parse_response(_BannedPageModel, envelope, result, "get_banned_member_list")
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

    # -- callback configuration (v4/room_config/) -------------------------------------------

    async def set_callback(self, url: str, commands: Sequence[str]) -> ApiResult:
        """Create the app's callback configuration. Raises `ApiError` 100300 when one exists.

        Retried only when certainly not applied (see the module docstring).
        """
        body = _callback_body(url, commands)
        _, result = await self._call("set_callback", body, idempotent=False, service=CONFIG_PATH)
        return result

    async def update_callback(self, url: str, commands: Sequence[str]) -> ApiResult:
        """Replace the app's callback configuration. Raises `ApiError` 100301 when there is none.

        Idempotent (it sets values), so every transient failure is retried.
        """
        body = _callback_body(url, commands)
        _, result = await self._call("update_callback", body, idempotent=True, service=CONFIG_PATH)
        return result

    async def get_callback(self) -> CallbackConfig | None:
        """The app's callback configuration, or None when there is none.

        "None" is answered as 100301 (as update_callback does) or as a success without a URL:
        Tencent does not document which, so both are read as "no configuration".
        """
        try:
            envelope, result = await self._call(
                "get_callback", {}, idempotent=True, service=CONFIG_PATH
            )
        except ApiError as exc:
            if exc.code == NO_CALLBACK_CONFIG:
                return None
            raise
        if envelope.response is None:
            return None
        config = _parse_response(_CallbackConfigModel, envelope, result, "get_callback")
        if not config.url:
            return None
        return CallbackConfig(config.url, tuple(config.commands), result.request_id)

    async def delete_callback(self) -> ApiResult:
        """Delete the app's callback configuration. Raises `ApiError` 100301 when there is none.

        Retried only when certainly not applied (see the module docstring).
        """
        _, result = await self._call("delete_callback", {}, idempotent=False, service=CONFIG_PATH)
        return result

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the machinery --------------------------------------------------------------------------

    async def _call(
        self,
        command: str,
        body: dict[str, Any],
        *,
        idempotent: bool,
        service: str = SERVICE_PATH,
        abort: Abort | None = None,
    ) -> tuple[_Envelope, ApiResult]:
        try:
            answer = await self._call_with_retries(
                command, body, idempotent=idempotent, service=service, abort=abort
            )
        except RoomEngineError as exc:
            if self._count_calls:
                metrics.count_tencent_call(command, exc)
            raise
        if self._count_calls:
            metrics.count_tencent_call(command, None)
        return answer

    async def _call_with_retries(
        self,
        command: str,
        body: dict[str, Any],
        *,
        idempotent: bool,
        service: str,
        abort: Abort | None,
    ) -> tuple[_Envelope, ApiResult]:
        started = self._monotonic()
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        last_request_id: str | None = None
        attempt = 0
        count = self._count_calls
        while True:
            attempt += 1
            waiting = time.perf_counter()
            async with self._budget.slot():
                sending = time.perf_counter()
                if count:
                    metrics.observe_budget_wait(sending - waiting)
                # Asked only now, after the wait for a slot: a many-room request withdraws the
                # calls still queued once an earlier one proved the credentials wrong.
                withdrawn = abort() if abort is not None else None
                if withdrawn:
                    raise NotSent(withdrawn)
                outcome = await self._attempt(command, payload, service)
                if count:
                    metrics.observe_tencent_attempt(command, time.perf_counter() - sending)
            elapsed = self._monotonic() - started
            if isinstance(outcome, _Envelope):
                return outcome, ApiResult(outcome.request_id, attempt, elapsed)
            error = outcome.error
            last_request_id = error.request_id or last_request_id
            pause = self._retry.backoff(attempt, self._rng)
            if (
                not _worth_retrying(outcome, idempotent=idempotent)
                or attempt >= self._retry.max_attempts
                or elapsed + pause > self._retry.total_budget_s
            ):
                error.request_id = last_request_id
                error.attempts = attempt
                raise error
            logger.info(
                "%s: attempt %d failed (%s); retrying in %.2f s", command, attempt, error, pause
            )
            if count:
                metrics.count_tencent_retry(command)
            await self._sleep(pause)

    async def _attempt(self, command: str, payload: bytes, service: str) -> _Envelope | _Failure:
        params = {
            "sdkappid": str(self._sdkappid),
            "identifier": self._admin_id,
            "usersig": self._signer.current(self._clock()),
            "random": str(secrets.randbits(32)),
            "contenttype": "json",
        }
        url = f"{self._base_url}{service}/{command}"
        # Errors are built inside `except` but raised by the caller, outside it, so the httpx
        # exception (whose text quotes the URL, UserSig included) is not chained onto ours.
        try:
            response = await self._http.post(url, params=params, content=payload)
        except httpx.TimeoutException as exc:
            return _Failure(
                RequestTimeout(
                    f"{command}: no answer within {self._timeout_s:g} s ({type(exc).__name__})"
                ),
                sent=not isinstance(exc, _NOT_SENT),
            )
        except httpx.HTTPError as exc:
            detail = _os_reason(exc) or redact(str(exc), self._secret_key, params["usersig"])
            return _Failure(
                TransportError(f"{command}: {type(exc).__name__}: {detail or 'network error'}"),
                sent=not isinstance(exc, _NOT_SENT),
            )
        return self._parse(command, response, params["usersig"])

    def _parse(self, command: str, response: httpx.Response, usersig: str) -> _Envelope | _Failure:
        data: Any = None
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        request_id = _request_id_of(data)
        if response.status_code != 200:
            return _Failure(
                TransportError(
                    f"{command}: HTTP {response.status_code} {response.reason_phrase}".rstrip(),
                    status=response.status_code,
                    request_id=request_id,
                )
            )
        if not isinstance(data, dict):
            return _Failure(MalformedResponse(f"{command}: the answer is not a JSON object"))
        try:
            envelope = _Envelope.model_validate(data)
        except ValidationError as exc:
            fields = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
            return _Failure(
                MalformedResponse(
                    f"{command}: the answer lacks a valid {fields or 'envelope'}",
                    request_id=request_id,
                )
            )
        if envelope.error_code != 0:
            # Tencent may echo the request, UserSig included, in ErrorInfo: it must reach
            # neither Slack nor the audit trail nor the log.
            info = redact(envelope.error_info, self._secret_key, usersig)
            return _Failure(
                ApiError(
                    envelope.error_code,
                    info,
                    request_id=envelope.request_id,
                    command=command,
                )
            )
        if envelope.action_status != "OK":
            return _Failure(
                MalformedResponse(
                    f"{command}: ActionStatus {envelope.action_status!r} with ErrorCode 0",
                    request_id=envelope.request_id,
                )
            )
        return envelope


def _os_reason(exc: BaseException) -> str | None:
    """The operating system's word for why a connection failed ("connection refused"), found
    under httpx's and anyio's wrappers ("All connection attempts failed"), or None."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):  # its errno is no OS error number
            host = exc.request.url.host if isinstance(exc, httpx.RequestError) else ""
            return f"could not resolve host {host}".rstrip()
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return None


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


def _callback_body(url: str, commands: Sequence[str]) -> dict[str, Any]:
    if not url:
        raise ValueError("the callback URL must not be empty")
    if isinstance(commands, str):
        raise ValueError("commands must be a list of callback commands, not one string")
    return {"Url": url, "CallbackCommandList": list(commands)}


def _parse_response(model: type[_M], envelope: _Envelope, result: ApiResult, command: str) -> _M:
    """`Response` read as `model`; MalformedResponse when it is missing or does not fit."""
    try:
        if envelope.response is None:
            raise ValueError("no Response")
        return model.model_validate(envelope.response)
    except (ValidationError, ValueError):
        raise MalformedResponse(
            f"{command}: the answer has no valid Response",
            request_id=result.request_id,
            attempts=result.attempts,
        ) from None


def _request_id_of(data: Any) -> str | None:
    if isinstance(data, dict):
        value = data.get("RequestId")
        if isinstance(value, str) and value:
            return value
    return None


def _worth_retrying(failure: _Failure, *, idempotent: bool) -> bool:
    error = failure.error
    if isinstance(error, ApiError):
        if error.code in RATE_LIMIT_CODES:
            return True  # refused before any processing: safe even for create_room
        return idempotent and error.code in RETRYABLE_CODES
    if isinstance(error, TransportError):
        if not failure.sent:
            return True
        return idempotent and (error.status is None or error.status >= 500)
    return False  # a malformed answer will not improve by asking again


class _RedactUserSig(logging.Filter):
    """Scrubs `usersig=` values from httpx's own request log lines (it logs the full URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "usersig" in message.lower():
            record.msg = redact(message)
            record.args = None
        return True


_log_filter = _RedactUserSig()


def _install_httpx_log_redaction() -> None:
    for name in ("httpx", "httpcore"):
        target = logging.getLogger(name)
        if _log_filter not in target.filters:
            target.addFilter(_log_filter)
