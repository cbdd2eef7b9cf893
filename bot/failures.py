"""Exceptions from a Room Engine call → `Failure`, the one place this translation happens.

Expected failures (Tencent's error codes, timeouts, transport errors, unreadable answers) become a
`Failure` with a hint. Anything else is a bug: it is logged with a fresh short correlation id, and
the `Failure` carries that id so the user can report it.
"""

from __future__ import annotations

import logging

from bot.budget import RateBudgetUnavailable
from bot.logs import log_unexpected
from bot.outcomes import Failure, FailureKind
from bot.tencent.errors import (
    ApiError,
    MalformedResponse,
    NotSent,
    RequestTimeout,
    RoomEngineError,
    TransportError,
)

log = logging.getLogger(__name__)


def describe_failure(
    exc: BaseException, *, room_id: str | None = None, reading: bool = False
) -> Failure:
    """Turn any exception from a Room Engine call into a `Failure` (the one place this happens).

    `reading`: the call only read (`show`, `members`, `banned`), so a timeout changed nothing.
    Unexpected exceptions are logged with a fresh correlation id, which the `Failure` carries.
    """
    if isinstance(exc, RateBudgetUnavailable):
        # The call never left: the shared budget's database granted no slot in time.
        return Failure(
            kind=FailureKind.NOT_ATTEMPTED,
            message="not sent: the shared Room Engine rate budget (kept in the audit database) "
            "did not answer in time",
            hint="check the database behind `ROOMBOT_AUDIT_DB` (`roombot check`), then retry",
        )
    if isinstance(exc, NotSent):
        return Failure(kind=FailureKind.NOT_ATTEMPTED, message=exc.message, hint="")
    if isinstance(exc, ApiError):
        return Failure(
            kind=FailureKind.API,
            message=exc.info or f"error {exc.code}",
            hint=exc.hint,
            code=exc.code,
            request_id=exc.request_id,
        )
    if isinstance(exc, RequestTimeout):
        return Failure(
            kind=FailureKind.TIMEOUT,
            message="Room Engine did not answer in time",
            hint="nothing was changed; try again shortly" if reading else exc.hint,
            request_id=exc.request_id,
        )
    if isinstance(exc, MalformedResponse):
        return Failure(
            kind=FailureKind.MALFORMED,
            message="Room Engine sent a reply roombot could not read",
            hint=exc.hint,
            request_id=exc.request_id,
        )
    if isinstance(exc, TransportError | RoomEngineError):
        return Failure(
            kind=FailureKind.TRANSPORT, message=str(exc), hint=exc.hint, request_id=exc.request_id
        )
    correlation_id = log_unexpected(
        log, "unexpected error, room=%s: %s", room_id, type(exc).__name__, exc=exc
    )
    return Failure(
        kind=FailureKind.INTERNAL,
        message="unexpected error inside roombot",
        hint=f"report error id {correlation_id} to the roombot maintainers",
        correlation_id=correlation_id,
    )
