"""Secrets kept out of every line roombot writes: logs, error messages, Slack, the audit trail.

Two nets, used together by `scrub()`:

* patterns: a `usersig=` query value, Slack tokens (`xoxb-…`, `xapp-…` and the other `xox?-`
  kinds), whatever text they appear in;
* known values: the secrets this process holds. `bot.config` remembers every secret setting it
  reads (also when it is invalid, or sits in the wrong variable), and the UserSig signer
  remembers each UserSig it signs (`remember_usersig`, the last few), so a secret is redacted
  wherever it turns up, not only after `usersig=`: in an error Tencent echoes, a setting
  pasted into the wrong variable, a library's exception text.

`looks_secret()` and `shown()` decide how a configuration value may be quoted in an error:
verbatim, or hidden because it looks like a token or a key.

This is roombot's one registry of secrets: a database password (`bot.dsn.DatabaseUrl`), the
UserSigs and the secret settings all end up here. roombot's own log formatters scrub every
record through it (`bot.logs`); `protect_loggers` installs the same scrubbing as a filter on a
library's loggers (the database driver, the HTTP client), for records that reach a handler
that is not roombot's.

A leaf module (standard library only), so the core, the adapters and the log formatter can all
use it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from typing import Final
from urllib.parse import quote

MASK: Final = "***"
#: Shorter values are not scrubbed by value: replacing every "abc" in a log helps nobody.
MIN_SECRET_CHARS: Final = 6
#: How many of the most recent UserSigs are remembered (one is current; older ones may still be
#: quoted by an answer to a request signed before the last re-signing).
_USERSIGS_KEPT: Final = 8  # four UserSigs, each also percent-encoded

_PATTERNS: Final = (
    # `usersig=<anything up to & or a quote/space>` in a URL, whatever the case or encoding of `=`.
    re.compile(r"(?i)(usersig(?:=|%3D))[^&\s'\"<>]*"),
    re.compile(r"\b(xox[abpre]-)[A-Za-z0-9-]+"),
    re.compile(r"\b(xapp-)[A-Za-z0-9-]+"),
)
# A configuration value that looks like a credential rather than an ID, a number or a name:
# long, no spaces, letters and digits mixed (keys, signing secrets, UserSigs, tokens).
_SECRET_SHAPE: Final = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9+/=_*.~-]{20,}$")
_SHOWN_MAX_CHARS: Final = 40

_lock = threading.Lock()
_known: set[str] = set()
_usersigs: deque[str] = deque(maxlen=_USERSIGS_KEPT)
# Longest first, so a secret containing another is replaced whole; rebuilt on change only.
_ordered: tuple[str, ...] = ()


def remember(*values: str | None) -> None:
    """Treat each of `values` as a secret from now on (empty and very short ones are ignored)."""
    fresh = {v.strip() for v in values if v and len(v.strip()) >= MIN_SECRET_CHARS}
    with _lock:
        if fresh <= _known:
            return
        _known.update(fresh)
        _rebuild()


def remember_usersig(usersig: str) -> None:
    """Treat a freshly signed UserSig as a secret (only the last few are kept)."""
    with _lock:
        if usersig in _usersigs:
            return
        _usersigs.append(usersig)
        # As it rides in a query string: `*` may travel percent-encoded.
        encoded = quote(usersig, safe="")
        if encoded != usersig:
            _usersigs.append(encoded)
        _rebuild()


def forget_all() -> None:
    """Forget every remembered value (tests only: values of one test do not leak into the next)."""
    with _lock:
        _known.clear()
        _usersigs.clear()
        _rebuild()


def _rebuild() -> None:
    global _ordered
    values = {v for v in (*_known, *_usersigs) if len(v) >= MIN_SECRET_CHARS}
    _ordered = tuple(sorted(values, key=len, reverse=True))


def scrub(text: str, *extra: str) -> str:
    """`text` with token patterns, `usersig=` values, every remembered secret and each of
    `extra` replaced by `***`."""
    for pattern in _PATTERNS:
        text = pattern.sub(rf"\g<1>{MASK}", text)
    for secret in (*sorted((e for e in extra if e), key=len, reverse=True), *_ordered):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs every record of the logger it is on (`scrub`), message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER: Final = RedactingFilter()


def protect_loggers(*names: str) -> None:
    """Scrub every record the named loggers (a library's) pass on (idempotent)."""
    for name in names:
        target = logging.getLogger(name)
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)


def looks_secret(value: str) -> bool:
    """True when `value` looks like a credential: a Slack token, a remembered secret, or a long
    run of letters and digits without spaces (a key, a signing secret, a UserSig)."""
    text = value.strip()
    if not text:
        return False
    if scrub(text) != text:
        return True
    return bool(_SECRET_SHAPE.match(text))


def shown(value: object) -> str:
    """How a configuration value may appear in an error: quoted, clipped, or hidden when it
    looks like a secret."""
    text = str(value).strip()
    if looks_secret(text):
        return "(a value that looks like a secret, not shown)"
    if len(text) > _SHOWN_MAX_CHARS:
        text = text[: _SHOWN_MAX_CHARS - 1] + "…"
    return repr(text)
