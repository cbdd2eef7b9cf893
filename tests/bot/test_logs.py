"""`bot.logs`: text and json formats, the ids, third-party lines kept below WARNING and without
bodies, secrets redacted, warnings and uncaught exceptions routed through the handler."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.logs import configure_logging, ids, log_context, make_handler
from bot.redact import remember

SECRET = "a-signing-secret-0123456789"


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    """A json handler on a private logger tree (pytest's own handlers left alone)."""
    stream = io.StringIO()
    handler = make_handler("json", stream)
    loggers = [logging.getLogger(name) for name in ("bot.test", "slack_bolt.Test", "httpx")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    yield stream, loggers[0]
    for logger in loggers:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_fields_and_ids(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured
    log.info("plain %s", "line")
    with log_context(request_key="rk1"):
        log.warning("inside")
        log.error("with id", extra=ids(correlation_id="cafe0123"))
    log.info("after")
    first, inside, with_id, after = _lines(stream)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO"
    assert first["logger"] == "bot.test"
    assert first["message"] == "plain line"
    assert first["time"].endswith("Z")
    assert inside["request_key"] == "rk1"
    assert with_id["correlation_id"] == "cafe0123"
    assert with_id["request_key"] == "rk1"
    assert "request_key" not in after


def test_exceptions_are_one_json_line(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = captured
    try:
        raise ValueError(f"boom {SECRET}")
    except ValueError:
        remember(SECRET)
        log.exception("it broke")
    [line] = _lines(stream)
    assert "ValueError" in line["exception"]
    assert SECRET not in stream.getvalue()


def test_secrets_are_redacted_from_messages(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured
    remember(SECRET)
    log.info("token xoxb-1-2-abc, secret %s, url ?usersig=abc&x=1", SECRET)
    text = stream.getvalue()
    assert SECRET not in text
    assert "xoxb-1-2-abc" not in text
    assert "usersig=abc" not in text


def test_third_party_lines_below_warning_are_dropped_and_bodies_cut(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    """#12.11: bolt logs refused requests at INFO with their whole body; no such line is kept,
    and a body quoted at WARNING is cut."""
    stream, _log = captured
    bolt = logging.getLogger("slack_bolt.Test")
    body = "token=LEGACY123&response_url=https%3A%2F%2Fhooks.slack.com%2Fx&user_name=alice"
    bolt.info(f"Invalid request signature detected (signature: v0=1, timestamp: 1, body: {body})")
    bolt.debug(f"request body: {body}")
    logging.getLogger("httpx").info("HTTP Request: POST https://x/?usersig=abc")
    bolt.warning(f"A global middleware skipped calling next() for the request ({{'a': '{body}'}})")
    bolt.error(f"Failed (body: {body})")
    lines = _lines(stream)
    assert [line["level"] for line in lines] == ["WARNING", "ERROR"]
    text = stream.getvalue()
    for secret in ("LEGACY123", "hooks.slack.com", "alice"):
        assert secret not in text
    assert "not logged" in lines[0]["message"]


def test_text_format_redacts_too() -> None:
    stream = io.StringIO()
    handler = make_handler("text", stream)
    remember(SECRET)
    record = logging.makeLogRecord({"name": "bot.x", "levelno": 20, "levelname": "INFO"})
    record.msg = f"value {SECRET}"
    handler.handle(record)
    assert stream.getvalue().strip().endswith("INFO bot.x: value ***")


def test_configure_logging_routes_warnings_and_uncaught_exceptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    try:
        configure_logging("DEBUG", "json")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("careful", UserWarning, stacklevel=1)
        try:
            raise RuntimeError("uncaught")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
        logging.getLogger("slack_bolt.AsyncApp").info("request body: {secret}")
        err = capsys.readouterr().err
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        sys.excepthook, threading.excepthook = saved[2], saved[3]
        logging.captureWarnings(False)
    lines = [json.loads(line) for line in err.splitlines()]
    assert [line["logger"] for line in lines] == ["py.warnings", "roombot"]
    assert "careful" in lines[0]["message"]
    assert "RuntimeError" in lines[1]["exception"]


# -- the text format cannot be forged (issue 27, item 2) ----------------------------------------

#: A forged record: a line break, a fake timestamped line, ANSI colour, a bidi override.
FORGED = "ok\r\n2026-01-01 00:00:00,000 INFO bot.auth: \x1b[32mlogin ok\x1b[0m \u202eevil\u2066"
#: Every character class the text format must escape: C0, DEL, C1, bidi overrides.
CONTROLS = ["\x00", "\x07", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b", "\u2028"] + [
    chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
]


def _text_record(**fields: Any) -> str:
    stream = io.StringIO()
    handler = make_handler("text", stream)
    record = logging.makeLogRecord(
        {"name": "bot.callbacks", "levelno": 20, "levelname": "INFO", **fields}
    )
    handler.handle(record)
    return stream.getvalue()


def _only_record_lines_start_at_column_0(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith(" ")]


@pytest.mark.parametrize(
    "fields",
    [
        {"msg": FORGED},
        {"msg": "operator %s changed %s", "args": (FORGED, "room-1")},
        {"msg": "callback for %(who)s", "args": {"who": FORGED}},
    ],
    ids=["message", "args", "mapping-args"],
)
def test_a_text_record_is_one_line_whatever_its_message_holds(fields: dict[str, Any]) -> None:
    text = _text_record(**fields)
    assert text.count("\n") == 1, text
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\\x1b[32mlogin ok" in text
    assert "\\r\\n2026-01-01" in text


def test_exception_text_cannot_start_a_line_of_its_own() -> None:
    try:
        raise ValueError(FORGED)
    except ValueError:
        exc_info = sys.exc_info()
    text = _text_record(msg="failed", exc_info=exc_info)
    # The record's own line, then the traceback indented: nothing else starts at column 0.
    [head] = _only_record_lines_start_at_column_0(text)
    assert head.endswith("INFO bot.callbacks: failed")
    assert "Traceback (most recent call last):" in text
    assert "\x1b" not in text
    assert "\u202e" not in text
    # A line break inside the exception's text starts an indented line, never a record.
    assert "  ValueError: ok\\r\n  2026-01-01 00:00:00,000 INFO bot.auth: \\x1b[32m" in text


def test_an_extra_field_the_format_shows_is_escaped_too() -> None:
    from bot.logs import RedactingFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s [%(request_key)s]"))
    logger = logging.getLogger("bot.test.extra")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("hello", extra={"request_key": FORGED})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert stream.getvalue().count("\n") == 1
    assert "\x1b" not in stream.getvalue()


@pytest.mark.parametrize("char", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_each_control_character_is_shown_escaped(char: str) -> None:
    text = _text_record(msg=f"a{char}b")
    line = text.removesuffix("\n")
    assert char not in line
    assert line.endswith(f"a{char.encode('unicode_escape').decode()}b")


@given(st.text(max_size=60))
def test_any_message_is_one_printable_line(message: str) -> None:
    line = _text_record(msg=message).removesuffix("\n")
    assert "\n" not in line
    assert line.isprintable(), repr(line)
