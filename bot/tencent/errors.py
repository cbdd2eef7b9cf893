"""What can go wrong talking to Room Engine, as a small exception hierarchy with human hints.

Everything the client raises is a `RoomEngineError`::

    RoomEngineError            base; `.request_id` (Tencent's RequestId, when one was seen),
    │                          `.hint` (one short sentence a user can act on), `.attempts`
    ├── ApiError               Tencent answered `ActionStatus: FAIL` / `ErrorCode != 0`;
    │                          `.code` (ErrorCode) and `.info` (ErrorInfo)
    ├── TransportError         no usable HTTP answer: connection failed, or an HTTP status other
    │   │                      than 200 (`.status`, None when there was no response at all)
    │   └── RequestTimeout     no answer within the client's timeout
    └── MalformedResponse      HTTP 200, but the body is not the documented JSON envelope

`ERROR_HINTS` maps every error code the reference documents to a short hint; `hint_for()` also
answers for codes nobody documented. `RETRYABLE_CODES` are the codes worth trying again.

No message, `str()` or `repr()` of these errors carries a UserSig or a secret key: text that came
from httpx (whose exceptions quote the request URL, `usersig=` included) goes through `redact()`.
"""

from __future__ import annotations

from typing import Final

from bot import metrics
from bot.errors import RoombotError
from bot.redact import scrub

#: Codes that say the request itself cannot succeed as it is (no such room, a bad parameter,
#: not a member): trying it again would fail the same way, so Retry is not offered for them.
PERMANENT_CODES: Final = frozenset({100002, 100004, 100005})

#: ErrorCode → a short hint a Slack user can act on. Every code in the reference is here.
ERROR_HINTS: Final[dict[int, str]] = {
    # Room Engine's own codes (the update_room_info and member-moderation pages).
    100001: "Tencent had an internal error — it is safe to try again",
    100002: "Tencent rejected a parameter — the error text says which field",
    100004: "room does not exist or was destroyed — check the ID",
    100005: "the account is not a member of this room (for unban: it is not banned)",
    100006: "the admin account lacks permission for this operation",
    # The seat APIs (v4/room_engine_http_mic/).
    100200: "the seat is locked — unlock it (`/room unlock-seat ROOM INDEX`) or use another seat",
    100202: "the account is already waiting for a seat",
    100203: "the account is already on a seat — `/room seats ROOM` shows which",
    100205: "every seat of the room is taken or locked",
    100206: "the account is not on a seat, so there is nobody to take off — "
    "`/room seats ROOM` shows who sits where",
    100210: "someone else sits on that seat — `/room seats ROOM` shows who",
    100211: "this room has no seats (they are enabled when a room is created)",
    # The callback-configuration APIs (v4/room_config/): set_callback refuses a second
    # configuration (code from the Live set_callback page), the others need one.
    100300: "a callback configuration exists already — update it rather than create another",
    100301: "no callback configuration yet — create one first (`roombot callbacks install`)",
    # Common REST codes.
    60002: "Tencent could not parse the HTTP request — check TENCENT_API_URL and the query string",
    60003: "Tencent could not parse the JSON body of the request",
    60004: "the account or signature in the request is wrong — check TENCENT_ADMIN_ID",
    60005: "the account or signature in the request is wrong — check TENCENT_ADMIN_ID",
    60006: "the SDKAppID is invalid — check TENCENT_SDKAPPID",
    60007: "too many Room Engine calls per second — lower ROOMBOT_RATE_LIMIT or try again shortly",
    60008: "Tencent timed out or found the request malformed — try again",
    60009: "Tencent does not know this API path — check TENCENT_API_URL",
    60010: "this API needs an App administrator — TENCENT_ADMIN_ID must be one",
    60011: "the SDKAppID hit its call-frequency limit — try again shortly",
    60012: "the request carries no SDKAppID — check TENCENT_SDKAPPID",
    60013: "Tencent could not parse its own response JSON — try again",
    60014: "account switching timed out at Tencent — try again",
    60015: "the account type is wrong: account IDs must be strings",
    60016: "the SDKAppID is disabled — check the app in the Tencent console",
    60017: "this request is disabled for the app — check the app in the Tencent console",
    60018: "too many requests — try again shortly",
    60019: "too many requests — try again shortly",
    60020: "the app's professional plan has expired — renew it in the Tencent console",
    60021: "Tencent refused this source IP — check the app's IP allow-list",
    70001: "the UserSig expired — check the server clock (roombot re-signs automatically)",
    70002: "the UserSig is empty — check TENCENT_SECRET_KEY",
    70003: "the UserSig failed verification — check TENCENT_SECRET_KEY",
    70004: "the UserSig failed verification — check TENCENT_SECRET_KEY",
    70005: "the UserSig failed verification — check TENCENT_SECRET_KEY",
    70006: "the UserSig failed verification — check TENCENT_SECRET_KEY",
    70007: "the UserSig failed verification — check TENCENT_SECRET_KEY",
    70008: "the UserSig failed verification — check TENCENT_SECRET_KEY",
    70009: "the secret key belongs to another SDKAppID — check TENCENT_SECRET_KEY",
    70010: "the UserSig failed verification — check TENCENT_SECRET_KEY",
    70013: "the UserSig was made for another user — check TENCENT_ADMIN_ID",
    70014: "the UserSig was made for another SDKAppID — check TENCENT_SDKAPPID",
    70016: "Tencent has no public key for this app — check the app in the Tencent console",
    70020: "Tencent does not know this SDKAppID — check TENCENT_SDKAPPID and TENCENT_REGION",
    70050: "too many failed attempts — wait a while before trying again",
    70051: "the admin account is blacklisted — check the app in the Tencent console",
    70052: "the UserSig expired — check the server clock (roombot re-signs automatically)",
    70107: "the admin account does not exist — check TENCENT_ADMIN_ID",
    70169: "Tencent had an internal error — try again",
    70402: "Tencent rejected a parameter of the request",
    70403: "the operator is not an App administrator — TENCENT_ADMIN_ID must be one",
}

#: Codes that mean "not now" rather than "no": an internal error and the frequency limits.
RETRYABLE_CODES: Final = frozenset({100001, 60007, 60011, 60018, 60019})

#: The frequency-limit codes (a subset of `RETRYABLE_CODES`).
RATE_LIMIT_CODES: Final = frozenset({60007, 60011, 60018, 60019})

#: Codes that say roombot's own credentials or configuration are wrong (the URL, the SDKAppID,
#: the admin account, the secret key, the app's plan or IP allow-list): every further call made
#: with them fails the same way, so a many-room request stops at the first one.
CONFIGURATION_CODES: Final = frozenset(
    {60002, 60004, 60005, 60006, 60009, 60010, 60012, 60015, 60016, 60017, 60020, 60021}
    | {code for code in ERROR_HINTS if 70000 <= code <= 79999} - {70169, 70402}
)


def hint_for(code: int) -> str:
    """A short human hint for a Room Engine ErrorCode; undocumented codes still get a sentence."""
    hint = ERROR_HINTS.get(code)
    if hint is not None:
        return hint
    if 70000 <= code <= 79999:
        return f"Tencent rejected the credentials (code {code}) — check TENCENT_* settings"
    if 60000 <= code <= 69999:
        return f"Tencent rejected the request (code {code}) — see Tencent's REST error codes"
    return f"Tencent returned error code {code} — see the Room Engine error-code docs"


def redact(text: str, *secrets: str) -> str:
    """`text` with every `usersig=` value, each of `secrets` and every secret the process
    remembers (its keys and tokens, the UserSigs it signed: `bot.redact`) replaced by `***`."""
    return scrub(text, *secrets)


class RoomEngineError(RoombotError):
    """Base of everything the Room Engine client raises."""

    #: Tencent's RequestId of the (last) answer seen, when there was one.
    request_id: str | None
    #: One short sentence telling a user what this means or what to check.
    hint: str
    #: How many HTTP attempts were made before giving up (1 when none were retried).
    attempts: int

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        hint: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id or None
        self.hint = hint
        self.attempts = attempts

    def __str__(self) -> str:
        suffix = f" (RequestId {self.request_id})" if self.request_id else ""
        return f"{self.message}{suffix}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ApiError(RoomEngineError):
    """Tencent answered, and the answer is a failure: `ErrorCode` (`.code`) and `ErrorInfo`."""

    code: int
    info: str

    def __init__(
        self,
        code: int,
        info: str,
        *,
        request_id: str | None = None,
        command: str = "",
        attempts: int = 1,
    ) -> None:
        where = f"{command}: " if command else ""
        detail = f": {info}" if info else ""
        super().__init__(
            f"{where}Room Engine error {code}{detail}",
            request_id=request_id,
            hint=hint_for(code),
            attempts=attempts,
        )
        self.code = code
        self.info = info

    @property
    def retryable(self) -> bool:
        """True when trying the same request again may succeed."""
        return self.code in RETRYABLE_CODES


class TransportError(RoomEngineError):
    """No usable HTTP answer: a network failure (`.status` None) or an HTTP status but 200."""

    status: int | None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        hint: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(
            message,
            request_id=request_id,
            hint=hint or _transport_hint(status),
            attempts=attempts,
        )
        self.status = status


class RequestTimeout(TransportError):
    """No answer within the client's timeout; the change may or may not have applied."""

    def __init__(self, message: str, *, request_id: str | None = None, attempts: int = 1) -> None:
        super().__init__(
            message,
            request_id=request_id,
            hint="the change may or may not have applied; check the room before trying again",
            attempts=attempts,
        )


class MalformedResponse(RoomEngineError):
    """HTTP 200, but the body is not the documented `ActionStatus`/`ErrorCode` JSON envelope."""

    def __init__(self, message: str, *, request_id: str | None = None, attempts: int = 1) -> None:
        super().__init__(
            message,
            request_id=request_id,
            hint="Tencent's answer was not in the expected shape — check that TENCENT_API_URL "
            "points at the Room Engine REST API",
            attempts=attempts,
        )


class NotSent(RoomEngineError):
    """The call was never sent: the caller withdrew it before its turn (see `Abort`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="", attempts=0)


def _transport_hint(status: int | None) -> str:
    if status is None:
        return "could not reach Tencent Room Engine — check the network and TENCENT_API_URL"
    if status >= 500:
        return f"Tencent's gateway answered HTTP {status} — a temporary problem; try again shortly"
    return f"Tencent answered HTTP {status} — check TENCENT_API_URL"


def metric_code(error: BaseException | None) -> str:
    """The `code` label of a Room Engine call that ended with `error` (None: success): "0", a
    code this module knows (`ERROR_HINTS`), or one of `metrics.TENCENT_FAILURES`. A closed set,
    so the metric's series stay few whatever Tencent answers."""
    if error is None:
        return "0"
    if isinstance(error, ApiError):
        return str(error.code) if error.code in ERROR_HINTS else metrics.OTHER
    if isinstance(error, NotSent):
        return "not_sent"
    if isinstance(error, RequestTimeout):
        return "timeout"
    if isinstance(error, TransportError):
        if error.status is None:
            return "transport"
        return "http_5xx" if error.status >= 500 else "http_4xx"
    if isinstance(error, MalformedResponse):
        return "malformed"
    return metrics.OTHER
