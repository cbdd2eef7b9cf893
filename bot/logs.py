"""Logging for long-running commands: one line per record, secrets redacted on the way out."""

from __future__ import annotations

import logging
import re

#: Query parameters and tokens that must never reach a log line, whatever logged them.
_SECRET_PATTERNS = (
    re.compile(r"(usersig=)[^&\s'\"]+", re.IGNORECASE),
    re.compile(r"\b(xox[abpre]-)[A-Za-z0-9-]+"),
    re.compile(r"\b(xapp-)[A-Za-z0-9-]+"),
)


def redact(text: str) -> str:
    """`text` with UserSigs and Slack tokens replaced by `***`."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter that redacts secrets from the whole formatted record, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr at `level`, redacting secrets."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # bolt logs every request body at DEBUG and some at INFO; keep its noise down.
    logging.getLogger("slack_bolt").setLevel(logging.WARNING)
    # httpx logs every Room Engine call at INFO (its URL carries the UserSig, redacted at a
    # cost); roombot logs what matters about a call itself, so only httpx's warnings remain.
    logging.getLogger("httpx").setLevel(logging.WARNING)
