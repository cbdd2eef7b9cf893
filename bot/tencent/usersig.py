"""TLSSigAPIv2 UserSigs: sign one from the secret key, and verify one (for the emulator).

A UserSig is a zlib-compressed JSON object, base64-encoded with `+/=` swapped for `*-_`, whose
`TLS.sig` field is an HMAC-SHA256 (keyed with the secret key's text, not its decoded hex) over the
identifier, SDKAppID, signing time and validity. Official implementations differ in key order,
spacing and zlib level, so verification decodes and recomputes the HMAC instead of comparing
strings.

The functions here are pure: the current time is always a parameter. `UserSigSigner` wraps them
into a small cache that re-signs well before expiry, so nobody ever pastes a UserSig anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from bot.redact import remember_usersig

#: The official libraries' default validity: 180 days.
DEFAULT_EXPIRE: Final = 180 * 86400

_VERSION: Final = "2.0"
# A UserSig is never anywhere near this long; refuse to inflate anything bigger (zip bombs).
_MAX_SIG_CHARS: Final = 8192
_MAX_JSON_BYTES: Final = 16384
_TO_URL_SAFE = str.maketrans({"+": "*", "/": "-", "=": "_"})
_FROM_URL_SAFE = str.maketrans({"*": "+", "-": "/", "_": "="})


class VerifyReason(StrEnum):
    """Why a UserSig was accepted or rejected (the emulator maps each to a 70xxx code)."""

    OK = "ok"
    EMPTY = "empty"
    MALFORMED = "malformed"
    BAD_VERSION = "bad_version"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    WRONG_SDKAPPID = "wrong_sdkappid"
    WRONG_IDENTIFIER = "wrong_identifier"


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of `verify_usersig`: a reason, and a detail sentence that holds no secret."""

    reason: VerifyReason
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the UserSig is valid for the expected app, identifier and time."""
        return self.reason is VerifyReason.OK


def _content(
    identifier: str, sdkappid: int, now: int, expire: int, userbuf_b64: str | None = None
) -> bytes:
    text = (
        f"TLS.identifier:{identifier}\n"
        f"TLS.sdkappid:{sdkappid}\n"
        f"TLS.time:{now}\n"
        f"TLS.expire:{expire}\n"
    )
    if userbuf_b64 is not None:
        text += f"TLS.userbuf:{userbuf_b64}\n"
    return text.encode("utf-8")


def _hmac_b64(secret_key: str, content: bytes) -> str:
    digest = hmac.new(secret_key.encode("utf-8"), content, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def gen_usersig(
    sdkappid: int,
    secret_key: str,
    identifier: str,
    expire: int = DEFAULT_EXPIRE,
    *,
    now: int,
) -> str:
    """A TLSSigAPIv2 UserSig for `identifier`, signed at unix time `now`, valid `expire` seconds."""
    if not secret_key:
        raise ValueError("a UserSig needs a non-empty secret key")
    if not identifier:
        raise ValueError("a UserSig needs a non-empty identifier")
    if expire <= 0:
        raise ValueError("a UserSig's validity must be a positive number of seconds")
    doc = {
        "TLS.ver": _VERSION,
        "TLS.identifier": identifier,
        "TLS.sdkappid": int(sdkappid),
        "TLS.expire": int(expire),
        "TLS.time": int(now),
        "TLS.sig": _hmac_b64(secret_key, _content(identifier, sdkappid, now, expire)),
    }
    packed = zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"))
    return base64.b64encode(packed).decode("ascii").translate(_TO_URL_SAFE)


def decode_usersig(sig: str) -> dict[str, Any]:
    """The JSON object inside a UserSig, unverified. Raises `ValueError` if it is not one."""
    if len(sig) > _MAX_SIG_CHARS:
        raise ValueError("too long to be a UserSig")
    try:
        packed = base64.b64decode(sig.translate(_FROM_URL_SAFE), validate=True)
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, _MAX_JSON_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("not a complete zlib stream")
        doc = json.loads(raw.decode("utf-8"))
    except (binascii.Error, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a UserSig ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise ValueError("not a UserSig (the JSON is not an object)")
    return doc


def _int_field(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        # Some implementations write numbers as strings; accept those, nothing else.
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise ValueError(f"{name} is missing or not an integer")
    return value


def verify_usersig(
    sig: str, *, sdkappid: int, secret_key: str, identifier: str, now: int
) -> VerifyResult:
    """Check that `sig` was signed with `secret_key` for `sdkappid`/`identifier` and is unexpired.

    Checks, in order: present, decodable, version, SDKAppID, HMAC, identifier, expiry; the first
    failure is the reason. The detail text never contains the sig or the key.
    """
    if not sig:
        return VerifyResult(VerifyReason.EMPTY, "the UserSig is empty")
    try:
        doc = decode_usersig(sig)
        signed_id = doc.get("TLS.identifier")
        if not isinstance(signed_id, str):
            raise ValueError("TLS.identifier is missing or not a string")
        signed_app = _int_field(doc, "TLS.sdkappid")
        signed_at = _int_field(doc, "TLS.time")
        valid_for = _int_field(doc, "TLS.expire")
        mac = doc.get("TLS.sig")
        if not isinstance(mac, str):
            raise ValueError("TLS.sig is missing or not a string")
        userbuf = doc.get("TLS.userbuf")
        if userbuf is not None and not isinstance(userbuf, str):
            raise ValueError("TLS.userbuf is not a string")
    except ValueError as exc:
        return VerifyResult(VerifyReason.MALFORMED, str(exc))

    if str(doc.get("TLS.ver")) != _VERSION:
        return VerifyResult(VerifyReason.BAD_VERSION, f"unsupported version {doc.get('TLS.ver')!r}")
    if signed_app != sdkappid:
        return VerifyResult(
            VerifyReason.WRONG_SDKAPPID,
            f"signed for SDKAppID {signed_app}, not {sdkappid}",
        )
    expected = _hmac_b64(secret_key, _content(signed_id, signed_app, signed_at, valid_for, userbuf))
    if not hmac.compare_digest(expected.encode("ascii"), mac.encode("utf-8", "replace")):
        return VerifyResult(
            VerifyReason.BAD_SIGNATURE,
            "the signature does not match this SDKAppID's secret key",
        )
    if signed_id != identifier:
        return VerifyResult(
            VerifyReason.WRONG_IDENTIFIER,
            f"signed for identifier {signed_id!r}, not {identifier!r}",
        )
    if now > signed_at + valid_for:
        return VerifyResult(
            VerifyReason.EXPIRED,
            f"expired at unix time {signed_at + valid_for} ({now - signed_at - valid_for} s ago)",
        )
    return VerifyResult(VerifyReason.OK)


class UserSigSigner:
    """Signs the admin UserSig and hands out a cached one until it is past half its validity.

    Re-signing at half-life keeps a wide margin against clock skew between us and Tencent, and
    a short validity (one day by default) limits what a leaked UserSig is worth.
    """

    def __init__(
        self, sdkappid: int, secret_key: str, identifier: str, *, expire: int = 86400
    ) -> None:
        if expire < 120:
            raise ValueError("a cached UserSig should be valid for at least two minutes")
        self._sdkappid = sdkappid
        self._secret_key = secret_key
        self._identifier = identifier
        self._expire = expire
        self._sig = ""
        self._signed_at = 0
        self._lock = threading.Lock()

    def current(self, now: float) -> str:
        """A valid UserSig at unix time `now`, re-signed once the cached one is half-way used."""
        stamp = int(now)
        with self._lock:
            age = stamp - self._signed_at
            if not self._sig or age >= self._expire // 2 or age < 0:
                self._sig = gen_usersig(
                    self._sdkappid, self._secret_key, self._identifier, self._expire, now=stamp
                )
                self._signed_at = stamp
                # Redacted by value from now on, wherever it shows up (an error Tencent echoes).
                remember_usersig(self._sig)
            return self._sig

    def __repr__(self) -> str:
        return f"UserSigSigner(sdkappid={self._sdkappid}, identifier={self._identifier!r})"
