"""`handlers.ingress`: what reaches bolt is signed, fresh, UTF-8 and readable; everything else is
a 4xx with a reason, and the refusal log cannot be flooded."""

from __future__ import annotations

import logging
import time

import pytest

from bot import metrics
from handlers.ingress import Refusal, RefusalLog, screen, signature
from testkit.clock import FakeClock
from testkit.slack_payloads import form_body, interactive_body, sign, slash_command

SECRET = "ingress-signing-secret-0123"
NOW = 1_800_000_000


def _screen(
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    timestamp: int = NOW,
    content_type: str = "application/x-www-form-urlencoded",
) -> str | Refusal:
    signed = {"Content-Type": content_type, **sign(body, SECRET, timestamp), **(headers or {})}
    return screen(body, signed, signing_secret=SECRET, now=NOW)


def _reason(result: str | Refusal) -> tuple[int, str]:
    assert isinstance(result, Refusal), result
    return result.status, result.reason


def test_a_signed_slash_command_passes_as_text() -> None:
    body = form_body(slash_command("mute-all room-test", response_url="https://hooks.slack.com/x"))
    assert _screen(body) == body.decode()
    assert signature(SECRET, str(NOW), body) == sign(body, SECRET, NOW)["X-Slack-Signature"]


@pytest.mark.parametrize("timestamp", ["", "abc", "9" * 400, "1.5", "-5", " ", "１２３"])
def test_malformed_timestamps_are_401(timestamp: str) -> None:
    """#12.10: bolt raised on these (ValueError, OverflowError) and answered 500."""
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": "v0=" + "0" * 64}
    result = screen(b"a=b", headers, signing_secret=SECRET, now=NOW)
    assert _reason(result) == (401, "bad_timestamp")


@pytest.mark.parametrize("age", [301, -301, 3600])
def test_stale_or_future_timestamps_are_401(age: int) -> None:
    assert _reason(_screen(b"a=b", timestamp=NOW - age)) == (401, "stale_timestamp")


def test_a_wrong_or_malformed_signature_is_401() -> None:
    body = b"a=b"
    for bad in ("", "v0=zz", "v1=" + "0" * 64, "v0=" + "0" * 64):
        assert _reason(_screen(body, headers={"X-Slack-Signature": bad})) == (401, "bad_signature")
    tampered = sign(b"a=c", SECRET, NOW)
    assert _reason(_screen(body, headers=tampered)) == (401, "bad_signature")


def test_the_signature_is_checked_before_the_body_is_read() -> None:
    unsigned = {"X-Slack-Request-Timestamp": str(NOW), "X-Slack-Signature": "v0=" + "0" * 64}
    assert _reason(screen(b"\xff\xfe", unsigned, signing_secret=SECRET, now=NOW))[1] == (
        "bad_signature"
    )


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"\xff\xfe", "application/x-www-form-urlencoded", "not_utf8"),
        (b"payload=notjson", "application/x-www-form-urlencoded", "bad_json"),
        (b"payload=%5B1%2C2%5D", "application/x-www-form-urlencoded", "bad_json"),
        (b"[1,2]", "application/json", "bad_json"),
        (b"[1,2]", "application/json; charset=utf-8", "bad_json"),
        (b"{not json", "application/x-www-form-urlencoded", "bad_json"),
        (b'"text"', "application/json", "bad_json"),
    ],
)
def test_signed_but_unreadable_bodies_are_400(body: bytes, content_type: str, reason: str) -> None:
    """#12.10: a 400 with a reason, where bolt answered 500 with a traceback."""
    assert _reason(_screen(body, content_type=content_type)) == (400, reason)


def test_readable_bodies_pass() -> None:
    for body, content_type in [
        (
            interactive_body({"type": "block_actions", "actions": []}),
            "application/x-www-form-urlencoded",
        ),
        (b'{"type": "url_verification", "challenge": "x"}', "application/json"),
        (b"text=payload+is+a+word", "application/x-www-form-urlencoded"),
        (b"", "application/x-www-form-urlencoded"),
    ]:
        assert isinstance(_screen(body, content_type=content_type), str)


def test_without_a_signing_secret_only_the_body_is_checked() -> None:
    assert screen(b"a=b", {}, signing_secret=None, now=time.time()) == "a=b"
    assert _reason(screen(b"\xff", {}, signing_secret=None, now=0)) == (400, "not_utf8")


def test_the_refusal_log_is_throttled_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    refusals = RefusalLog(interval_s=1.0, clock=clock)
    bad = Refusal(401, "bad_signature", "invalid X-Slack-Signature")
    stale = Refusal(401, "stale_timestamp", "timestamp 400 s old")
    counted = metrics.value("roombot_http_refused_total", reason="bad_signature")
    with caplog.at_level(logging.INFO, logger="handlers.ingress"):
        for _ in range(1000):
            refusals.note(bad, "10.0.0.9")
        refusals.note(stale, "10.0.0.9")
        clock.advance(1.5)
        refusals.note(bad, "10.0.0.9")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "refused a request from 10.0.0.9 with HTTP 401: invalid X-Slack-Signature",
        "refused a request from 10.0.0.9 with HTTP 401: timestamp 400 s old",
        "refused a request from 10.0.0.9 with HTTP 401: invalid X-Slack-Signature "
        "(and 999 more like it since the last line)",
    ]
    assert metrics.value("roombot_http_refused_total", reason="bad_signature") - counted == 1001
