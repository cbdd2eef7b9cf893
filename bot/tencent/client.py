"""The async Room Engine REST client: signed requests, parsed answers, retries, a rate budget.

One `RoomEngineClient` (one pooled `httpx.AsyncClient`) per process is the intended use; every
attempt runs inside a slot of the shared `RateBudget`. Failures are raised as the typed errors
of `bot.tencent.errors`; a UserSig or secret key never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from bot.config import Settings
from bot.models import RoomInfo, RoomPatch
from bot.tencent.errors import (
    RATE_LIMIT_CODES,
    RETRYABLE_CODES,
    ApiError,
    MalformedResponse,
    RequestTimeout,
    RoomEngineError,
    TransportError,
    redact,
)
from bot.tencent.ratelimit import RateBudget, process_budget
from bot.tencent.usersig import UserSigSigner

logger = logging.getLogger(__name__)

#: The path prefix of every Room Engine room API.
SERVICE_PATH: Final = "/v4/room_engine_http_srv"
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


class _Envelope(BaseModel):
    """The JSON every Room Engine answer is wrapped in."""

    model_config = ConfigDict(extra="ignore")

    action_status: StrictStr = Field(alias="ActionStatus")
    error_code: StrictInt = Field(alias="ErrorCode")
    error_info: StrictStr = Field(default="", alias="ErrorInfo")
    request_id: StrictStr = Field(default="", alias="RequestId")
    response: dict[str, Any] | None = Field(default=None, alias="Response")


@dataclass(frozen=True)
class _Failure:
    """One failed attempt; `sent` is False when the request certainly never reached Tencent."""

    error: RoomEngineError
    sent: bool = True


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
    """

    def __init__(
        self,
        *,
        base_url: str,
        sdkappid: int,
        secret_key: str,
        admin_id: str,
        rate_budget: RateBudget,
        timeout_s: float = 5.0,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
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
    def from_settings(cls, settings: Settings, **overrides: Any) -> RoomEngineClient:
        """A client for the configured app, sharing this process's rate budget.

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
            "rate_budget": process_budget(settings.roombot_rate_limit),
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

    async def update_room_info(self, patch: RoomPatch) -> ApiResult:
        """Change exactly the fields `patch` names. Idempotent, so every failure kind is retried."""
        _, result = await self._call("update_room_info", patch.body(), idempotent=True)
        return result

    async def get_room_info(self, room_id: str) -> RoomSnapshot:
        """The room's current settings. Raises `ApiError` 100004 when it does not exist."""
        envelope, result = await self._call("get_room_info", {"RoomId": room_id}, idempotent=True)
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

    async def destroy_room(self, room_id: str) -> ApiResult:
        """Destroy a room. Raises `ApiError` 100004 when it does not exist."""
        _, result = await self._call("destroy_room", {"RoomId": room_id}, idempotent=True)
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
        self, command: str, body: dict[str, Any], *, idempotent: bool
    ) -> tuple[_Envelope, ApiResult]:
        started = self._monotonic()
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        last_request_id: str | None = None
        attempt = 0
        while True:
            attempt += 1
            async with self._budget.slot():
                outcome = await self._attempt(command, payload)
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
            await self._sleep(pause)

    async def _attempt(self, command: str, payload: bytes) -> _Envelope | _Failure:
        params = {
            "sdkappid": str(self._sdkappid),
            "identifier": self._admin_id,
            "usersig": self._signer.current(self._clock()),
            "random": str(secrets.randbits(32)),
            "contenttype": "json",
        }
        url = f"{self._base_url}{SERVICE_PATH}/{command}"
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
            detail = redact(str(exc), self._secret_key, params["usersig"])
            return _Failure(
                TransportError(f"{command}: {type(exc).__name__}: {detail or 'network error'}"),
                sent=not isinstance(exc, _NOT_SENT),
            )
        return self._parse(command, response)

    def _parse(self, command: str, response: httpx.Response) -> _Envelope | _Failure:
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
            info = redact(envelope.error_info, self._secret_key)
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
