"""The door of `POST /slack/events`: a request is screened before bolt sees any of it.

Anyone who can reach the port can send anything, so nothing about a request is trusted until
its signature is checked, and nothing malformed reaches bolt (which answers HTTP 500 with a
traceback for a non-numeric timestamp, a body that is not UTF-8, `payload=notjson` or a JSON
array). `screen()` checks, in order:

1. the `X-Slack-Request-Timestamp` header: 1-12 digits, within 5 minutes of now → else 401;
2. the `X-Slack-Signature` header: `v0=` HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing
   secret, compared in constant time, over the raw bytes → else 401;
3. the body is UTF-8 → else 400;
4. a JSON body (or `payload=` form field) is a JSON object → else 400.

A refusal is a `Refusal`: the status, a reason from a closed set (`roombot_http_refused_total`)
and one short line for the log. The body is never logged, and `RefusalLog` writes at most one
line per reason per second (with a count of the others), so a flood of junk cannot flood the log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from bot import metrics

log = logging.getLogger(__name__)

#: Slack refuses (and so do we) requests whose timestamp is further than this from now.
MAX_AGE_S: Final = 300
_TIMESTAMP: Final = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE: Final = re.compile(r"^v0=[0-9a-f]{64}$")


@dataclass(frozen=True)
class Refusal:
    """A request refused at the door: HTTP `status`, `reason` (a metric label), `line` (logged)."""

    status: int
    reason: str
    line: str


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's `X-Slack-Signature` for `body` sent at `timestamp`."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def screen(
    body: bytes,
    headers: Mapping[str, str],
    *,
    signing_secret: str | None,
    now: float,
) -> str | Refusal:
    """The body as text if the request may go on to bolt, else why not (see the docstring).

    Without a signing secret (request verification off) the signature checks are skipped.
    """
    if signing_secret:
        timestamp = headers.get("X-Slack-Request-Timestamp", "").strip()
        if not _TIMESTAMP.match(timestamp):
            return Refusal(401, "bad_timestamp", "missing or malformed X-Slack-Request-Timestamp")
        age = now - int(timestamp)
        if abs(age) > MAX_AGE_S:
            when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
            return Refusal(401, "stale_timestamp", f"timestamp {when} (limit {MAX_AGE_S} s)")
        given = headers.get("X-Slack-Signature", "").strip()
        if not _SIGNATURE.match(given) or not hmac.compare_digest(
            given, signature(signing_secret, timestamp, body)
        ):
            return Refusal(
                401, "bad_signature", "invalid X-Slack-Signature (is SLACK_SIGNING_SECRET right?)"
            )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(400, "not_utf8", "body is not UTF-8")
    problem = _shape_problem(text, headers.get("Content-Type", ""))
    if problem is not None:
        return Refusal(400, "bad_json", problem)
    return text


def _shape_problem(text: str, content_type: str) -> str | None:
    """Why bolt could not read `text` as Slack's JSON or form body, or None."""
    media = content_type.split(";", 1)[0].strip().lower()
    # The same rules bolt's parse_body applies, so whatever passes here parses there.
    if media == "application/json" or text.startswith("{"):
        return _object_problem(text, "JSON body")
    if "payload" in text:
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        if payload is not None:
            return _object_problem(payload, "payload field")
    return None


def _object_problem(text: str, what: str) -> str | None:
    try:
        value = json.loads(text)
    except ValueError:
        return f"{what} is not JSON"
    if not isinstance(value, dict):
        return f"{what} is a JSON {type(value).__name__}, not an object"
    return None


class RefusalLog:
    """Logs refusals, at most one line per reason per `interval_s`, counting the ones skipped."""

    def __init__(
        self, interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def note(self, refusal: Refusal, peer: str | None) -> None:
        """Count `refusal`, and log it unless one of its kind was logged just now."""
        metrics.count_refused(refusal.reason)
        now = self._clock()
        last = self._last.get(refusal.reason)
        if last is not None and now - last < self._interval_s:
            self._skipped[refusal.reason] = self._skipped.get(refusal.reason, 0) + 1
            return
        self._last[refusal.reason] = now
        skipped = self._skipped.pop(refusal.reason, 0)
        more = f" (and {skipped} more like it since the last line)" if skipped else ""
        log.warning(
            "refused a request from %s with HTTP %d: %s%s",
            peer or "?",
            refusal.status,
            refusal.line,
            more,
        )
