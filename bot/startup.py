"""`roombot serve`'s start-up checks that need no chat platform: every configuration problem at
once, the port, and binding it before anything else happens.

`prepare_serve()` reads the settings leniently (a bad variable does not hide the next one),
adds each required variable that is missing for the chosen mode, the policy's problem and the
port's, and returns either a `ServePlan` or the list of problems, one line each, naming the
variable and never quoting a value that looks like a secret. `bind()` claims the port (without
listening yet, so nobody connects before the bot is ready) or says in one line why it cannot.
`report_problems()` prints such lines, as JSON log lines when `ROOMBOT_LOG_FORMAT=json`.

Exit codes (`bot.cli`): 2 for every problem found here.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bot.config import ConfigError, Settings
from bot.logs import JsonFormatter, LogFormat
from bot.redact import scrub, shown

#: The port `serve` listens on without `--port` or `$PORT`.
DEFAULT_PORT: Final = 3000
_PORT_TEXT: Final = re.compile(r"^[0-9]{1,5}$")
_MAX_PORT: Final = 65535


@dataclass(frozen=True)
class ServePlan:
    """What `serve` will run: valid settings, the mode, and the port (with where it came from)."""

    settings: Settings
    socket_mode: bool
    port: int
    port_source: str  # "--port", "PORT" or "default"


@dataclass(frozen=True)
class StartupProblems:
    """Why `serve` cannot start: one line per problem, and the log format to print them in."""

    lines: list[str]
    log_format: LogFormat = "text"


def resolve_port(arg: str | None, env: str | None) -> tuple[int, str] | str:
    """The port and where it came from (`--port` wins over `$PORT`, else 3000), or a problem."""
    if arg is not None:
        source, raw = "--port", arg
    elif env is not None and env.strip():
        source, raw = "PORT", env
    else:
        return DEFAULT_PORT, "default"
    text = raw.strip()
    if not _PORT_TEXT.match(text) or int(text) > _MAX_PORT:
        return f"{source}: must be a port number from 0 to {_MAX_PORT}, got {shown(raw)}"
    return int(text), source


def prepare_serve(
    *, http: bool, port_arg: str | None, env_file: Path | str | None = ".env"
) -> ServePlan | StartupProblems:
    """Everything `serve` needs before it starts, or every problem found (one line each)."""
    from bot.check import load_settings_leniently
    from bot.policy import policy_from_settings

    loaded = load_settings_leniently(env_file)
    problems = list(loaded.invalid.values())
    port = resolve_port(port_arg, os.environ.get("PORT"))
    settings = loaded.settings
    if settings is None:
        return StartupProblems(problems + ([port] if isinstance(port, str) else []))
    bad = set(loaded.invalid)
    log_format: LogFormat = "text" if "ROOMBOT_LOG_FORMAT" in bad else settings.roombot_log_format
    socket_mode = not http and (settings.slack_app_token is not None or "SLACK_APP_TOKEN" in bad)
    required = ["SLACK_BOT_TOKEN", "TENCENT_SDKAPPID", "TENCENT_SECRET_KEY"]
    if not socket_mode:
        required.insert(1, "SLACK_SIGNING_SECRET")
    purpose = "`roombot serve`" if socket_mode else "`roombot serve` in HTTP mode"
    problems += settings.missing(*(name for name in required if name not in bad), purpose=purpose)
    if not bad & {"ROOMBOT_ALLOWED_USERS", "ROOMBOT_POLICY_FILE"}:
        try:
            policy_from_settings(settings)
        except ConfigError as exc:  # a policy file lists every mistake, one a line
            problems += [scrub(line) for line in str(exc).splitlines()]
    if isinstance(port, str):
        problems.append(port)
    if problems:
        return StartupProblems(problems, log_format)
    assert not isinstance(port, str)
    return ServePlan(settings, socket_mode, port[0], port[1])


def bind(host: str, port: int, port_source: str = "--port") -> socket.socket | str:
    """A socket bound to `host:port` (not listening yet), or one line saying why not."""
    where = f"{host}:{port}"
    name = "--port" if port_source == "default" else port_source
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else "not a host name"
        return f"--host: cannot listen on {shown(host)} ({reason})"
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As aiohttp would: a port left in TIME_WAIT by a previous run can be reused at once
        # (one another process is listening on still cannot).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            return f"{name} {port}: {where} is already in use (is another roombot running?)"
        if exc.errno == errno.EACCES:
            return (
                f"{name} {port}: permission denied for {where} (ports below 1024 need privileges)"
            )
        return f"{name} {port}: cannot listen on {where} ({exc.strerror or type(exc).__name__})"
    return sock


def report_problems(
    problems: Sequence[str], *, command: str = "serve", fmt: LogFormat = "text"
) -> None:
    """Print each problem on its own line on stderr: `roombot serve: …`, or one JSON log line
    each when the log format is json (so that a log shipper sees JSON only)."""
    formatter = JsonFormatter() if fmt == "json" else None
    for problem in problems:
        line = f"roombot {command}: {scrub(problem)}"
        if formatter is not None:
            record = logging.makeLogRecord(
                {"name": "roombot.startup", "levelno": logging.ERROR, "levelname": "ERROR"}
            )
            record.msg = line
            line = formatter.format(record)
        print(line, file=sys.stderr, flush=True)
