"""UserSig signing and verification, checked against the official `tls-sig-api-v2` library."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any
from unittest import mock

import pytest
import TLSSigAPIv2
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.tencent.usersig import (
    DEFAULT_EXPIRE,
    UserSigSigner,
    VerifyReason,
    decode_usersig,
    gen_usersig,
    verify_usersig,
)

# The vector from the reference (computed with the official library, time patched).
VECTOR_APP = 1400000000
VECTOR_KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
VECTOR_ID = "xiaojun"
VECTOR_EXPIRE = 15552000
VECTOR_TIME = 1700000000
VECTOR_SIG = "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4="

OTHER_KEY = "0" * 64


def official_sig(
    sdkappid: int, key: str, identifier: str, expire: int, at: int, userbuf: bytes | None = None
) -> str:
    """A UserSig made by Tencent's own Python library at unix time `at`."""
    api = TLSSigAPIv2.TLSSigAPIv2(sdkappid, key)
    with mock.patch.object(TLSSigAPIv2.time, "time", return_value=at):
        if userbuf is None:
            return str(api.gen_sig(identifier, expire))
        return str(api.gen_sig_with_userbuf(identifier, expire, userbuf))


def encode(doc: dict[str, Any]) -> str:
    """Pack a JSON object the way UserSigs are packed (for hand-made, tampered sigs)."""
    raw = base64.b64encode(zlib.compress(json.dumps(doc).encode())).decode()
    return raw.replace("+", "*").replace("/", "-").replace("=", "_")


def verify(sig: str, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "sdkappid": VECTOR_APP,
        "secret_key": VECTOR_KEY,
        "identifier": VECTOR_ID,
        "now": VECTOR_TIME + 60,
    }
    args.update(overrides)
    return verify_usersig(sig, **args)


# -- the reference vector and the official library -------------------------------------------


def test_reference_vector_reproduces() -> None:
    sig = gen_usersig(VECTOR_APP, VECTOR_KEY, VECTOR_ID, VECTOR_EXPIRE, now=VECTOR_TIME)
    doc = decode_usersig(sig)
    assert doc["TLS.sig"] == VECTOR_SIG
    assert doc == {
        "TLS.ver": "2.0",
        "TLS.identifier": VECTOR_ID,
        "TLS.sdkappid": VECTOR_APP,
        "TLS.expire": VECTOR_EXPIRE,
        "TLS.time": VECTOR_TIME,
        "TLS.sig": VECTOR_SIG,
    }


def test_official_library_gives_the_reference_vector_too() -> None:
    # Guards the oracle itself: if patching its clock stopped working, the tests below lie.
    sig = official_sig(VECTOR_APP, VECTOR_KEY, VECTOR_ID, VECTOR_EXPIRE, VECTOR_TIME)
    assert decode_usersig(sig)["TLS.sig"] == VECTOR_SIG


@pytest.mark.parametrize(
    ("sdkappid", "identifier", "expire", "at"),
    [
        (VECTOR_APP, VECTOR_ID, VECTOR_EXPIRE, VECTOR_TIME),
        (1400000001, "administrator", 86400, 1712345678),
        (20000000, "admin_01", 180 * 86400, 1600000000),
        (1400000000, "用户-ü", 3600, 1750000000),
    ],
)
def test_our_tls_sig_equals_the_official_one(
    sdkappid: int, identifier: str, expire: int, at: int
) -> None:
    ours = decode_usersig(gen_usersig(sdkappid, VECTOR_KEY, identifier, expire, now=at))
    theirs = decode_usersig(official_sig(sdkappid, VECTOR_KEY, identifier, expire, at))
    assert ours["TLS.sig"] == theirs["TLS.sig"]
    assert ours == theirs  # same fields and values; only key order and spacing may differ


@pytest.mark.parametrize("identifier", ["xiaojun", "administrator", "用户-ü"])
def test_official_sigs_verify_with_ours(identifier: str) -> None:
    sig = official_sig(VECTOR_APP, VECTOR_KEY, identifier, 86400, VECTOR_TIME)
    result = verify(sig, identifier=identifier)
    assert result.ok, result.detail
    assert result.reason is VerifyReason.OK


def test_official_sig_with_userbuf_verifies() -> None:
    sig = official_sig(VECTOR_APP, VECTOR_KEY, VECTOR_ID, 86400, VECTOR_TIME, userbuf=b"abc")
    assert "TLS.userbuf" in decode_usersig(sig)
    assert verify(sig).ok


def test_default_validity_is_180_days() -> None:
    sig = gen_usersig(VECTOR_APP, VECTOR_KEY, VECTOR_ID, now=VECTOR_TIME)
    assert decode_usersig(sig)["TLS.expire"] == DEFAULT_EXPIRE == 180 * 86400


def test_sig_is_url_safe() -> None:
    for n in range(30):
        sig = gen_usersig(VECTOR_APP, VECTOR_KEY, f"user{n}", now=VECTOR_TIME + n)
        assert not set(sig) & set("+/="), sig


# -- rejections, each with its reason ---------------------------------------------------------


def test_expiry_boundary() -> None:
    sig = gen_usersig(VECTOR_APP, VECTOR_KEY, VECTOR_ID, 100, now=VECTOR_TIME)
    assert verify(sig, now=VECTOR_TIME + 100).ok  # expired only when now > time + expire
    late = verify(sig, now=VECTOR_TIME + 101)
    assert late.reason is VerifyReason.EXPIRED
    assert not late.ok


def test_official_sig_expires_too() -> None:
    sig = official_sig(VECTOR_APP, VECTOR_KEY, VECTOR_ID, 60, VECTOR_TIME)
    assert verify(sig, now=VECTOR_TIME + 61).reason is VerifyReason.EXPIRED


def test_wrong_sdkappid() -> None:
    sig = official_sig(1400000999, VECTOR_KEY, VECTOR_ID, 86400, VECTOR_TIME)
    result = verify(sig)
    assert result.reason is VerifyReason.WRONG_SDKAPPID
    assert "1400000999" in result.detail


def test_key_of_another_app_is_a_bad_signature() -> None:
    # Same SDKAppID in the sig, but signed with someone else's key: Tencent's 70009 case.
    sig = official_sig(VECTOR_APP, OTHER_KEY, VECTOR_ID, 86400, VECTOR_TIME)
    assert verify(sig).reason is VerifyReason.BAD_SIGNATURE


def test_wrong_identifier() -> None:
    sig = gen_usersig(VECTOR_APP, VECTOR_KEY, "alice", now=VECTOR_TIME)
    result = verify(sig, identifier="administrator")
    assert result.reason is VerifyReason.WRONG_IDENTIFIER
    assert "alice" in result.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("TLS.identifier", "administrator"),
        ("TLS.expire", 10**9),
        ("TLS.time", VECTOR_TIME + 10**6),
        ("TLS.sdkappid", VECTOR_APP),  # unchanged value: control case, must stay valid
    ],
)
def test_tampered_fields_break_the_signature(field: str, value: Any) -> None:
    doc = decode_usersig(gen_usersig(VECTOR_APP, VECTOR_KEY, VECTOR_ID, 3600, now=VECTOR_TIME))
    doc[field] = value
    result = verify(encode(doc), identifier=doc["TLS.identifier"])
    if field == "TLS.sdkappid":
        assert result.ok
    else:
        assert result.reason is VerifyReason.BAD_SIGNATURE


def test_forged_signature_value() -> None:
    doc = decode_usersig(gen_usersig(VECTOR_APP, VECTOR_KEY, VECTOR_ID, now=VECTOR_TIME))
    doc["TLS.sig"] = VECTOR_SIG[::-1]
    assert verify(encode(doc)).reason is VerifyReason.BAD_SIGNATURE


def test_bad_version() -> None:
    doc = decode_usersig(gen_usersig(VECTOR_APP, VECTOR_KEY, VECTOR_ID, now=VECTOR_TIME))
    doc["TLS.ver"] = "1.0"
    assert verify(encode(doc)).reason is VerifyReason.BAD_VERSION


def test_empty_sig() -> None:
    assert verify("").reason is VerifyReason.EMPTY


@pytest.mark.parametrize(
    "garbage",
    [
        "not a sig",
        "eJw",  # truncated
        base64.b64encode(b"plain bytes, not zlib").decode(),
        encode({"TLS.ver": "2.0"}).replace("*", "+"),  # wrong alphabet
        base64.b64encode(zlib.compress(b"not json")).decode().replace("=", "_"),
        encode([1, 2, 3]),  # type: ignore[arg-type]
        encode({"TLS.ver": "2.0", "TLS.identifier": VECTOR_ID}),  # fields missing
        encode(
            {
                "TLS.ver": "2.0",
                "TLS.identifier": VECTOR_ID,
                "TLS.sdkappid": "not a number",
                "TLS.time": VECTOR_TIME,
                "TLS.expire": 60,
                "TLS.sig": VECTOR_SIG,
            }
        ),
        "A" * 20000,  # far too long
    ],
)
def test_garbage_is_malformed(garbage: str) -> None:
    result = verify(garbage)
    assert result.reason is VerifyReason.MALFORMED, result
    assert not result.ok


def test_zip_bomb_is_refused_without_inflating_it() -> None:
    bomb = base64.b64encode(zlib.compress(b"{" + b" " * 5_000_000 + b"}")).decode()
    bomb = bomb.replace("+", "*").replace("/", "-").replace("=", "_")
    assert len(bomb) < 8192
    assert verify(bomb).reason is VerifyReason.MALFORMED


def test_detail_never_contains_the_key_or_the_sig() -> None:
    sig = official_sig(VECTOR_APP, OTHER_KEY, VECTOR_ID, 60, VECTOR_TIME)
    for now in (VECTOR_TIME, VECTOR_TIME + 1000):
        for identifier in (VECTOR_ID, "someone"):
            detail = verify(sig, now=now, identifier=identifier).detail
            assert VECTOR_KEY not in detail
            assert OTHER_KEY not in detail
            assert sig not in detail


def test_gen_rejects_unusable_inputs() -> None:
    with pytest.raises(ValueError, match="secret key"):
        gen_usersig(VECTOR_APP, "", VECTOR_ID, now=VECTOR_TIME)
    with pytest.raises(ValueError, match="identifier"):
        gen_usersig(VECTOR_APP, VECTOR_KEY, "", now=VECTOR_TIME)
    with pytest.raises(ValueError, match="validity"):
        gen_usersig(VECTOR_APP, VECTOR_KEY, VECTOR_ID, 0, now=VECTOR_TIME)


@settings(max_examples=60, deadline=None)
@given(
    sdkappid=st.integers(min_value=1, max_value=2**32),
    identifier=st.text(min_size=1, max_size=32).filter(lambda s: "\x00" not in s),
    expire=st.integers(min_value=1, max_value=10**9),
    now=st.integers(min_value=0, max_value=2**33),
)
def test_roundtrip_matches_official(sdkappid: int, identifier: str, expire: int, now: int) -> None:
    ours = gen_usersig(sdkappid, VECTOR_KEY, identifier, expire, now=now)
    check = verify_usersig(
        ours, sdkappid=sdkappid, secret_key=VECTOR_KEY, identifier=identifier, now=now + expire
    )
    assert check.ok
    theirs = decode_usersig(official_sig(sdkappid, VECTOR_KEY, identifier, expire, now))
    assert decode_usersig(ours)["TLS.sig"] == theirs["TLS.sig"]


# -- the signer's cache ------------------------------------------------------------------------


def test_signer_reuses_its_sig_until_half_life_then_resigns() -> None:
    signer = UserSigSigner(VECTOR_APP, VECTOR_KEY, "administrator", expire=1000)
    first = signer.current(VECTOR_TIME)
    assert signer.current(VECTOR_TIME + 499.9) == first
    second = signer.current(VECTOR_TIME + 500)
    assert second != first
    assert decode_usersig(second)["TLS.time"] == VECTOR_TIME + 500
    # Every sig it hands out is valid with a wide margin left.
    for at in (VECTOR_TIME + 500, VECTOR_TIME + 999):
        sig = signer.current(at)
        check = verify_usersig(
            sig, sdkappid=VECTOR_APP, secret_key=VECTOR_KEY, identifier="administrator", now=at
        )
        assert check.ok
        doc = decode_usersig(sig)
        assert doc["TLS.time"] + doc["TLS.expire"] - at >= 500


def test_signer_resigns_when_the_clock_goes_backwards() -> None:
    signer = UserSigSigner(VECTOR_APP, VECTOR_KEY, "administrator", expire=1000)
    signer.current(VECTOR_TIME)
    earlier = signer.current(VECTOR_TIME - 300)
    assert decode_usersig(earlier)["TLS.time"] == VECTOR_TIME - 300


def test_signer_repr_has_no_secret() -> None:
    signer = UserSigSigner(VECTOR_APP, VECTOR_KEY, "administrator")
    sig = signer.current(VECTOR_TIME)
    assert VECTOR_KEY not in repr(signer)
    assert sig not in repr(signer)
