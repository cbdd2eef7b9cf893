"""The error hierarchy, the code table with hints, and redaction."""

from __future__ import annotations

import pytest

from bot.tencent.errors import (
    ERROR_HINTS,
    RETRYABLE_CODES,
    ApiError,
    MalformedResponse,
    RequestTimeout,
    RoomEngineError,
    TransportError,
    hint_for,
    redact,
)

# Every code the reference lists (tencent-room-engine.md §3).
REFERENCE_CODES = [
    *(100001, 100002, 100004, 100005, 100006),
    *range(60002, 60022),
    *(70001, 70002, *range(70003, 70011), 70013, 70014, 70016, 70020),
    *(70050, 70051, 70052, 70107, 70169, 70402, 70403),
]


@pytest.mark.parametrize("code", REFERENCE_CODES)
def test_every_reference_code_has_a_hint(code: int) -> None:
    assert code in ERROR_HINTS
    assert hint_for(code) == ERROR_HINTS[code]
    assert 10 < len(hint_for(code)) < 120


def test_hints_the_issue_names() -> None:
    assert hint_for(100004) == "room does not exist or was destroyed — check the ID"
    assert hint_for(70009).startswith("the secret key belongs to another SDKAppID")


@pytest.mark.parametrize(
    ("code", "expected"),
    [(70999, "credentials"), (60999, "rejected the request"), (123456, "123456")],
)
def test_unknown_codes_still_render(code: int, expected: str) -> None:
    hint = hint_for(code)
    assert str(code) in hint
    assert expected in hint


def test_retryable_codes_are_exactly_the_transient_ones() -> None:
    assert frozenset({100001, 60007, 60011, 60018, 60019}) == RETRYABLE_CODES
    for code in (100002, 100004, 100005, 100006, 70001, 70009):
        assert not ApiError(code, "").retryable
    assert ApiError(100001, "").retryable


def test_hierarchy() -> None:
    assert issubclass(ApiError, RoomEngineError)
    assert issubclass(TransportError, RoomEngineError)
    assert issubclass(RequestTimeout, TransportError)
    assert issubclass(MalformedResponse, RoomEngineError)
    assert not issubclass(MalformedResponse, TransportError)


def test_api_error_carries_code_info_request_id_and_hint() -> None:
    err = ApiError(100004, "room not found", request_id="Id-abc-O-Seq-1", command="get_room_info")
    assert (err.code, err.info, err.request_id) == (100004, "room not found", "Id-abc-O-Seq-1")
    assert err.hint == hint_for(100004)
    assert str(err) == (
        "get_room_info: Room Engine error 100004: room not found (RequestId Id-abc-O-Seq-1)"
    )
    assert repr(err).startswith("ApiError(")


def test_transport_error_hints_depend_on_status() -> None:
    assert TransportError("x").status is None
    assert "could not reach" in TransportError("x").hint
    assert "temporary" in TransportError("x", status=502).hint
    assert "HTTP 404" in TransportError("x", status=404).hint
    timeout = RequestTimeout("slow")
    assert timeout.status is None
    assert "may or may not have applied" in timeout.hint


def test_empty_request_id_is_none() -> None:
    assert ApiError(100001, "", request_id="").request_id is None
    assert str(ApiError(100001, "")) == "Room Engine error 100001"


@pytest.mark.parametrize(
    "text",
    [
        "http://h/v4/x?sdkappid=1&identifier=a&usersig=eJyrVkrxCfZO&random=5",
        "url='http://h/v4/x?usersig=eJyrVkrx*-_'",
        "http://h/v4/x?UserSig=eJyrVkrx",
        "http://h/v4/x?a=1&usersig%3DeJyrVkrx",
    ],
)
def test_redact_hides_usersig_values(text: str) -> None:
    redacted = redact(text)
    assert "eJyrVkrx" not in redacted
    assert "***" in redacted


def test_redact_keeps_the_rest_and_hides_named_secrets() -> None:
    text = "POST http://h/v4/x?sdkappid=1&usersig=SIG&random=5 failed with key abc123"
    assert redact(text, "abc123", "") == (
        "POST http://h/v4/x?sdkappid=1&usersig=***&random=5 failed with key ***"
    )
