"""Logging for long-running commands: one line per record, secrets redacted on the way out.

`configure_logging(level, fmt)` sends every record of the process (roombot's and third-party
libraries') to stderr through one handler, as

* `text`: `2026-01-01 12:00:00,000 INFO bot.requests.runner: message`, or
* `json`: one object a line: `time` (UTC, ISO 8601 with milliseconds), `level`, `logger`,
  `message`, and where known `correlation_id` (an unexpected error's id, also shown to the user)
  and `request_key` (the request whose audit rows the line is about); `exception` holds a
  traceback when there is one. Python warnings and uncaught exceptions become records too, so
  that in json mode every line is JSON.

Third-party libraries' records below WARNING are dropped whatever `level` says: bolt and
slack_sdk log request and response bodies (tokens, `response_url`s, user names) at INFO and
DEBUG, and httpx logs Room Engine URLs (`usersig=`). A body never reaches the log at any level:
what bolt says at WARNING and above is cut before any body it quotes. Everything written goes
through `bot.redact.scrub` last (tokens, `usersig=` values, every secret the process holds).

`log_context(request_key=…)` and `ids(correlation_id=…)` attach the two ids: the first for every
line logged inside it (a context variable, so concurrent requests do not mix), the second for one
call (`log.error(..., extra=ids(correlation_id=cid))`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Final, Literal

from bot.redact import scrub

LogFormat = Literal["text", "json"]

#: The loggers of roombot's own code; everything else is a third-party library.
OWN_LOGGERS: Final = ("bot", "handlers", "bench", "testkit", "__main__", "roombot")
#: Third-party loggers whose INFO lines are worth keeping (connection life cycle, no bodies).
_THIRD_PARTY_INFO: Final = frozenset({"slack_sdk.socket_mode.aiohttp"})
#: Third-party loggers set to WARNING outright, so their records are not even created.
_QUIET: Final = ("slack_bolt", "slack_sdk", "httpx", "httpcore", "aiohttp", "asyncio", "psycopg")
# bolt quotes request bodies in a few messages ("… body: token=…", "… the request ({…})").
_BODY_QUOTES: Final = (
    (re.compile(r"(?is)\b(body\s*[:=]\s*).*"), r"\1(not logged)"),
    (re.compile(r"(?is)\b(request\s*\(\s*)[\[{].*"), r"\1not logged)"),
)

_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_request_key: ContextVar[str | None] = ContextVar("roombot_request_key", default=None)
_correlation_id: ContextVar[str | None] = ContextVar("roombot_correlation_id", default=None)


def redact(text: str) -> str:
    """`text` with UserSigs, Slack tokens and every secret the process holds replaced by `***`."""
    return scrub(text)


@contextlib.contextmanager
def log_context(
    *, request_key: str | None = None, correlation_id: str | None = None
) -> Iterator[None]:
    """Within the block, log lines carry these ids (json mode fields) unless a line sets its own."""
    tokens = []
    if request_key is not None:
        tokens.append((_request_key, _request_key.set(request_key)))
    if correlation_id is not None:
        tokens.append((_correlation_id, _correlation_id.set(correlation_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def log_unexpected(
    logger: logging.Logger, message: str, *args: object, exc: BaseException | None = None
) -> str:
    """Log an unexpected error (the one being handled, or `exc`) with its traceback and a fresh
    short correlation id, which the line ends with (`message % args` then " [id]") and carries
    as a field; return the id, for the person who met the error. The one place ids are made."""
    correlation_id = secrets.token_hex(4)
    logger.error(
        f"{message} [%s]",
        *args,
        correlation_id,
        exc_info=exc if exc is not None else True,
        extra=ids(correlation_id=correlation_id),
    )
    return correlation_id


def ids(*, correlation_id: str | None = None, request_key: str | None = None) -> dict[str, Any]:
    """`extra=` for one log call that knows an id: `log.error(..., extra=ids(...))`."""
    extra: dict[str, Any] = {}
    if correlation_id is not None:
        extra["correlation_id"] = correlation_id
    if request_key is not None:
        extra["request_key"] = request_key
    return extra


def _is_own(name: str) -> bool:
    return name == "root" or name.split(".", 1)[0] in OWN_LOGGERS


class _ThirdPartyGuard(logging.Filter):
    """Drops third-party records below WARNING (INFO for a few) and cuts bodies out of the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _is_own(record.name):
            return True
        floor = logging.INFO if record.name in _THIRD_PARTY_INFO else logging.WARNING
        if record.levelno < floor:
            return False
        message = cut = record.getMessage()
        for pattern, replacement in _BODY_QUOTES:
            cut = pattern.sub(replacement, cut)
        if cut != message:
            record.msg, record.args = cut, None
        return True


def escape_controls(text: str) -> str:
    """`text` with every character that is not printable (C0 and C1 controls, DEL, line and
    paragraph separators, bidi overrides and isolates, other format characters) written as its
    Python escape (`\\n`, `\\x1b`, `\\u202e`), so that it cannot break or recolour a line."""
    if text.isprintable():  # the usual case, checked at C speed
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class RedactingFormatter(logging.Formatter):
    """The text format: one line per record, then its traceback or stack (if any) indented.

    Secrets are redacted from everything. What the format shows of the record (message, args,
    any extra field the format names) has its control characters escaped, and so has each line
    of a traceback, so a value sent from outside (a callback's account ID, an exception's text)
    can neither start a line that looks like a record of its own nor recolour the terminal.
    """

    def __init__(self, fmt: str = _TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        lines = [escape_controls(redact(self.formatMessage(record)))]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            lines.extend(_indented(record.exc_text))
        if record.stack_info:
            lines.extend(_indented(self.formatStack(record.stack_info)))
        return "\n".join(lines)


def _indented(block: str) -> list[str]:
    """A traceback's lines, each escaped and indented: only a record's own line starts at the
    left margin."""
    return ["  " + escape_controls(line) for line in redact(block).split("\n")]


class JsonFormatter(logging.Formatter):
    """One JSON object a line (see the module docstring for the fields), secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        correlation_id = getattr(record, "correlation_id", None) or _correlation_id.get()
        if correlation_id:
            data["correlation_id"] = correlation_id
        request_key = getattr(record, "request_key", None) or _request_key.get()
        if request_key:
            data["request_key"] = request_key
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            data["exception"] = redact(record.exc_text)
        if record.stack_info:
            data["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(data, ensure_ascii=False, default=str)


def _iso_utc(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def make_handler(fmt: LogFormat = "text", stream: Any = None) -> logging.Handler:
    """The one handler: stderr (or `stream`), the chosen format, the third-party guard."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else RedactingFormatter())
    handler.addFilter(_ThirdPartyGuard())
    return handler


def configure_logging(level: str | int = "INFO", fmt: LogFormat = "text") -> None:
    """Log every record of the process to stderr at `level` in format `fmt`, redacting secrets.

    Also routes Python warnings and uncaught exceptions (main thread and others) through it.
    """
    root = logging.getLogger()
    root.handlers[:] = [make_handler(fmt)]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in _THIRD_PARTY_INFO:
        logging.getLogger(name).setLevel(logging.INFO)
    _quiet_existing_bolt_loggers()
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_uncaught


def _quiet_existing_bolt_loggers() -> None:
    # bolt gives each of its loggers an explicit level copied from the root when it creates them,
    # which would override the WARNING set on "slack_bolt"; the guard drops their lines anyway,
    # and this keeps them from being formatted at all.
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.startswith("slack_bolt"):
            logger.setLevel(logging.WARNING)


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("roombot").critical("uncaught exception", exc_info=(kind, value, tb))


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    logging.getLogger("roombot").critical(
        "uncaught exception in thread %s",
        args.thread.name if args.thread is not None else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
