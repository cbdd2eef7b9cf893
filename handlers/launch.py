"""`roombot serve` from the command line to the last request: fail early and completely.

1. Every configuration problem at once (`bot.startup.prepare_serve`): one line each, exit 2.
2. Logging as `ROOMBOT_LOG_FORMAT` / `ROOMBOT_LOG_LEVEL` say.
3. The port is claimed before anything slow happens: a bad or busy port is one line, exit 2.
4. The bot is built; its audit database opened and migrated (cannot: one line, exit 2).
5. Before any traffic: the readiness parts are checked once (`handlers.ops`). A bot token Slack
   rejects, or an audit database that does not answer, is one line and exit 2; Slack out of
   reach is exit 1. In Socket Mode the app-level token is tried too (`apps.connections.open`):
   slack_sdk would otherwise retry a refused one forever, a traceback each time. Room Engine
   out of reach only makes `/readyz` say so: the bot starts, and its answers tell users.
6. Serving (`handlers.serve`) until SIGTERM/SIGINT; exit 0.

No traceback for any of these: an unexpected exception is still a bug and shows one.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

from slack_sdk.errors import SlackApiError

from bot.audit import AuditError
from bot.config import ConfigError
from bot.logs import LogFormat, configure_logging
from bot.readiness import ReadinessReport
from bot.startup import ServePlan, StartupProblems, bind, prepare_serve, report_problems
from handlers.app import build_bot
from handlers.ops import Operations, TokenRejected
from handlers.serve import serve_http, serve_socket_mode
from handlers.slack_client import slack_error_code

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def run_serve(
    *, http: bool, host: str, port_arg: str | None, env_file: Path | str | None = ".env"
) -> int:
    """Run `roombot serve`; the process exit status (see the module docstring)."""
    plan = prepare_serve(http=http, port_arg=port_arg, env_file=env_file)
    if isinstance(plan, StartupProblems):
        report_problems(plan.lines, fmt=plan.log_format)
        return EXIT_USAGE
    settings = plan.settings
    fmt = settings.roombot_log_format
    configure_logging(settings.log_level, fmt)
    sock = bind(host, plan.port, plan.port_source)
    if isinstance(sock, str):
        report_problems([sock], fmt=fmt)
        return EXIT_USAGE
    with sock:
        return asyncio.run(_serve(plan, sock, fmt))


async def _serve(plan: ServePlan, sock: socket.socket, fmt: LogFormat) -> int:
    settings = plan.settings
    try:
        bot = await build_bot(settings)
    except AuditError as exc:
        report_problems([f"ROOMBOT_AUDIT_DB: {exc}"], fmt=fmt)
        return EXIT_USAGE
    except ConfigError as exc:
        report_problems([str(exc)], fmt=fmt)
        return EXIT_USAGE
    ops = Operations.for_bot(bot)
    started = False
    try:
        code = _preflight(await ops.readiness.refresh(), fmt)
        if code != EXIT_OK:
            return code
        started = True
        if not plan.socket_mode:
            await serve_http(bot, ops, sock=sock)
            return EXIT_OK
        assert settings.slack_app_token is not None
        app_token = settings.slack_app_token.get_secret_value()
        try:
            await bot.slack.apps_connections_open(app_token=app_token)
        except SlackApiError as exc:
            started = False
            error = slack_error_code(exc)
            problem = (
                f"SLACK_APP_TOKEN: Slack refused to open a Socket Mode connection ({error}); "
                "check the app-level token (xapp-…) and its connections:write scope"
            )
            report_problems([problem], fmt=fmt)
            return EXIT_USAGE
        await serve_socket_mode(bot, ops, app_token=app_token, sock=sock)
        return EXIT_OK
    finally:
        if not started:
            await ops.aclose()
            await bot.aclose()


def _preflight(report: ReadinessReport, fmt: LogFormat) -> int:
    """The exit status the first readiness check calls for (0: start), its problems printed."""
    problems: list[str] = []
    code = EXIT_OK
    slack = report.part("slack")
    if slack is not None and not slack.ok:
        if isinstance(slack.error, TokenRejected):
            problems.append(
                f"{slack.detail}: copy the current Bot User OAuth Token (xoxb-…) into "
                "SLACK_BOT_TOKEN, or reinstall the app"
            )
            code = EXIT_USAGE
        else:
            problems.append(f"cannot check SLACK_BOT_TOKEN: {slack.detail}")
            code = max(code, EXIT_FAILED)
    database = report.part("database")
    if database is not None and not database.ok:
        problems.append(f"ROOMBOT_AUDIT_DB: {database.detail}")
        code = EXIT_USAGE
    if problems:
        report_problems(problems, fmt=fmt)
        return code
    for line in report.failing():
        log.warning("starting, but not ready: %s", line)
    return EXIT_OK
