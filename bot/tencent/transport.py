"""The transport under every Room Engine call: signing, the rate budget, retries, parsing.

`RoomEngineTransport` owns one pooled connection to Room Engine (a `Wire`: aiohttp, or httpx
over a transport tests give), signs (and re-signs) the admin UserSig, runs every attempt inside a
slot of its rate budget for that API (a `CallBudget`: the process's, or the one all replicas share
on PostgreSQL), retries under a `RetryPolicy`, and turns each answer into an `Envelope` or one of
the typed errors of `bot.tencent.errors`. It knows no API: the API families
(`bot.tencent.client_rooms`, `client_members`, `client_callbacks`, `client_seats`) build on it,
and `bot.tencent.client.RoomEngineClient` puts them together. Whether a call is retried after a
failure whose effect is unknown is each method's choice (`idempotent=`); see `bot.tencent.client`.

A UserSig or secret key never appears in a message, a log line or a repr.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from bot import metrics
from bot.budget import CallBudget, process_budget
from bot.config import Settings
from bot.models.apis import SERVICE_PATH
from bot.redact import protect_loggers
from bot.tencent.errors import (
    RATE_LIMIT_CODES,
    RETRYABLE_CODES,
    ApiError,
    MalformedResponse,
    NotSent,
    RequestTimeout,
    RoomEngineError,
    TransportError,
    metric_code,
    redact,
)
from bot.tencent.usersig import UserSigSigner
from bot.tencent.wire import AiohttpWire, HttpxWire, Wire, WireFailure, WireResponse, WireTimeout

logger = logging.getLogger(__name__)

#: Asked after a write call's turn comes (its rate-budget slot): a reason to withdraw it, or
#: None to send it. A withdrawn call raises `NotSent` and reaches nobody.
Abort = Callable[[], str | None]


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


class Envelope(BaseModel):
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


_M = TypeVar("_M", bound=BaseModel)


class RoomEngineTransport:
    """Sends Room Engine REST calls as the App administrator `admin_id` (no API of its own:
    the API families subclass it, and `RoomEngineClient` combines them).

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
        # A given httpx transport (tests) is used as it is; roombot itself runs on aiohttp
        # (`bot.tencent.wire` says why).
        self._wire: Wire = (
            AiohttpWire(timeout_s) if transport is None else HttpxWire(transport, timeout_s)
        )
        _install_log_redaction()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, rate_budget: CallBudget | None = None, **overrides: Any
    ) -> Self:
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
            f"{type(self).__name__}(base_url={self._base_url!r}, sdkappid={self._sdkappid}, "
            f"admin_id={self._admin_id!r})"
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._wire.aclose()

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
    ) -> tuple[Envelope, ApiResult]:
        try:
            answer = await self._call_with_retries(
                command, body, idempotent=idempotent, service=service, abort=abort
            )
        except RoomEngineError as exc:
            if self._count_calls:
                metrics.count_tencent_call(command, metric_code(exc))
            raise
        if self._count_calls:
            metrics.count_tencent_call(command, metric_code(None))
        return answer

    async def _call_with_retries(
        self,
        command: str,
        body: dict[str, Any],
        *,
        idempotent: bool,
        service: str,
        abort: Abort | None,
    ) -> tuple[Envelope, ApiResult]:
        started = self._monotonic()
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        last_request_id: str | None = None
        attempt = 0
        count = self._count_calls
        while True:
            attempt += 1
            waiting = time.perf_counter()
            async with self._budget.slot(command):
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
            if isinstance(outcome, Envelope):
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

    async def _attempt(self, command: str, payload: bytes, service: str) -> Envelope | _Failure:
        params = {
            "sdkappid": str(self._sdkappid),
            "identifier": self._admin_id,
            "usersig": self._signer.current(self._clock()),
            "random": str(secrets.randbits(32)),
            "contenttype": "json",
        }
        url = f"{self._base_url}{service}/{command}"
        # Errors are built inside `except` but raised by the caller, outside it, so the
        # library's exception (whose text quotes the URL, UserSig included) is not chained onto
        # ours.
        try:
            response = await self._wire.post(url, params, payload)
        except WireTimeout as exc:
            return _Failure(
                RequestTimeout(f"{command}: no answer within {self._timeout_s:g} s ({exc.kind})"),
                sent=exc.sent,
            )
        except WireFailure as exc:
            detail = _os_reason(exc, url) or redact(exc.detail, self._secret_key, params["usersig"])
            return _Failure(
                TransportError(f"{command}: {exc.kind}: {detail or 'network error'}"),
                sent=exc.sent,
            )
        return self._parse(command, response, params["usersig"])

    def _parse(self, command: str, response: WireResponse, usersig: str) -> Envelope | _Failure:
        data: Any = None
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        request_id = _request_id_of(data)
        if response.status != 200:
            return _Failure(
                TransportError(
                    f"{command}: HTTP {response.status} {response.reason}".rstrip(),
                    status=response.status,
                    request_id=request_id,
                )
            )
        if not isinstance(data, dict):
            return _Failure(MalformedResponse(f"{command}: the answer is not a JSON object"))
        try:
            envelope = Envelope.model_validate(data)
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


def _os_reason(exc: BaseException, url: str) -> str | None:
    """The operating system's word for why a connection to `url` failed ("connection
    refused"), found under the HTTP library's wrappers ("All connection attempts failed"), or
    None."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        # A resolver's error: its number is getaddrinfo's (negative, as aiohttp passes it on),
        # not the operating system's.
        if isinstance(cause, socket.gaierror) or (
            isinstance(cause, OSError) and cause.errno is not None and cause.errno < 0
        ):
            return f"could not resolve host {urlsplit(url).hostname or ''}".rstrip()
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return None


def parse_response(model: type[_M], envelope: Envelope, result: ApiResult, command: str) -> _M:
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


def _install_log_redaction() -> None:
    # The HTTP libraries may log a request's URL, UserSig included: scrubbed by the one
    # registry of secrets.
    protect_loggers("httpx", "httpcore", "aiohttp.client")
