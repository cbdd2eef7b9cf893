"""The `roombot` command line (serve, console, emulator, parse, check, audit, callbacks): the
composition root.

This module (with `bot.__main__`) is the only part of `bot/` allowed to import the Slack adapter
(`handlers`): it wires the core to the adapter each subcommand needs.

Exit codes: 0 success, 1 a command ran but something it did failed, 2 bad usage or configuration.
Configuration problems print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bot import __version__
from bot.commands import ParseError, VerbKind, parse_command
from bot.config import ConfigError, Settings, load_settings
from bot.errors import RoombotError

if TYPE_CHECKING:
    from bot.check import CheckResult

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


#: Who `roombot parse` pretends asked: the console's local operator (`bot.console.OPERATOR_ID`).
PARSE_REQUESTER = "U0OPERATOR"


class UsageError(RoombotError):
    """Bad command-line usage detected after argument parsing; exits 2 with the message."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="roombot",
        description="Slack chat-ops for Tencent RTC Room Engine rooms.",
    )
    parser.add_argument("--version", action="version", version=f"roombot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the Slack bot (Socket Mode if SLACK_APP_TOKEN is set, else HTTP)",
        description="Run the Slack bot. Socket Mode when SLACK_APP_TOKEN is set, unless --http.",
    )
    serve.add_argument(
        "--http", action="store_true", help="serve HTTP even if SLACK_APP_TOKEN is set"
    )
    serve.add_argument(
        "--port",
        default=None,
        help="HTTP port, in every mode: Slack's requests (HTTP mode) and /healthz, /readyz, "
        "/metrics (default: $PORT or 3000)",
    )
    serve.add_argument("--host", default="0.0.0.0", help="HTTP bind address (default 0.0.0.0)")  # noqa: S104

    console = sub.add_parser(
        "console",
        help="type /room commands locally and see what the bot would post",
        description="A local prompt running the real pipeline. Uses the real Room Engine when "
        "TENCENT_* is configured, else an embedded emulator with demo rooms.",
    )
    console.add_argument(
        "--as",
        dest="as_user",
        metavar="USER_ID",
        help="evaluate the policy as this Slack user ID "
        "(default: a local operator with every permission)",
    )

    console.add_argument(
        "--channel",
        metavar="CHANNEL_ID",
        help="the Slack channel ID to evaluate the policy in, for roles with a channel "
        "guardrail (e.g. C0MODERATION)",
    )
    console.add_argument(
        "--reset-demo",
        action="store_true",
        help="start the embedded emulator's demo rooms afresh (destroyed rooms come back, "
        "settings, members and bans as new); the audit trail is kept",
    )
    console.add_argument(
        "--yes",
        action="store_true",
        help="confirm high-impact requests (lockdown, many rooms) without asking; for scripts",
    )

    emulator = sub.add_parser(
        "emulator",
        help="run a local Room Engine emulator",
        description="A local HTTP server that answers like the Room Engine REST API.",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=9000, help="port (default 9000)")
    emulator.add_argument(
        "--room",
        dest="rooms",
        action="append",
        default=[],
        metavar="ROOM_ID",
        help="create this room at start (repeatable)",
    )
    emulator.add_argument("--rooms-file", metavar="PATH", help="JSON file of rooms to create")
    emulator.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    emulator.add_argument(
        "--fail-rate", type=float, default=0.0, help="fraction of calls answered 100001"
    )
    emulator.add_argument(
        "--http-502-rate", type=float, default=0.0, help="fraction of calls answered HTTP 502"
    )
    emulator.add_argument(
        "--hang-rate", type=float, default=0.0, help="fraction of calls that never answer"
    )
    emulator.add_argument(
        "--callback-url",
        metavar="URL",
        help="post Room Engine callbacks here (every command) until a configuration is made "
        "through v4/room_config/set_callback",
    )
    emulator.add_argument(
        "--callback-token",
        metavar="TOKEN",
        help="also sign callback URLs: Sign=sha256(TOKEN + RequestTime) and RequestTime",
    )
    emulator.add_argument(
        "--other-admin",
        dest="other_admins",
        action="append",
        default=[],
        metavar="ID",
        help="accept this identifier as an App administrator too, so its changes look like "
        "changes made outside the bot (repeatable)",
    )

    parse = sub.add_parser(
        "parse",
        help="print the request body of each call /room TEXT would make, one JSON object a line",
        description="Print, one JSON object per line, the exact body of each Room Engine call "
        "`/room TEXT` would make (update_room_info per room; kick/ban/unban per 20 accounts; "
        "destroy_room), or the parsed command for read and help verbs. Calls nothing.",
    )
    parse.add_argument(
        "--as",
        dest="as_user",
        metavar="USER_ID",
        default=PARSE_REQUESTER,
        help="the Slack user ID the default kick/ban Reason names "
        f"(default: the console's local operator, {PARSE_REQUESTER})",
    )
    # REMAINDER, so that options of the /room language (`--dry-run`) reach the parser untouched.
    parse.add_argument(
        "text", nargs=argparse.REMAINDER, metavar="TEXT", help="the /room command text"
    )

    sub.add_parser(
        "check",
        help="validate a deployment: settings, Slack token and scopes, Tencent credentials, policy",
        description="Validate settings, the Slack token and scopes, Tencent credentials and the "
        "policy file; print a short report. Exit non-zero on any problem.",
    )

    audit = sub.add_parser(
        "audit",
        help="read (or export, or prune) the audit trail",
        description="Read the audit trail (ROOMBOT_AUDIT_DB): a table, or an export (md, csv, "
        "jsonl). `roombot audit prune` deletes rows older than --older-than (default "
        "ROOMBOT_AUDIT_RETENTION); rows of unfinished requests are never deleted.",
    )
    audit.add_argument(
        "action", nargs="?", choices=["prune"], help="prune: delete old rows (see --older-than)"
    )
    audit.add_argument(
        "--older-than",
        help="prune: rows older than this, e.g. 400d (default ROOMBOT_AUDIT_RETENTION)",
    )
    audit.add_argument(
        "--dry-run", action="store_true", help="prune: only count what would be deleted"
    )
    audit.add_argument("--room", help="only this room ID")
    who = audit.add_mutually_exclusive_group()
    who.add_argument("--user", help="only this Slack user ID (U…/W…; not a name)")
    who.add_argument(
        "--operator", help="only changes made outside roombot by this Room Engine account"
    )
    audit.add_argument(
        "--since", help="only entries newer than this: an age (30m, 24h, 7d) or ISO 8601"
    )
    audit.add_argument("--until", help="only entries older than this (same forms as --since)")
    audit.add_argument(
        "--limit",
        type=int,
        default=None,
        help="only the newest N rows (default: 50 for the table, every row for an export)",
    )
    audit.add_argument(
        "--format",
        choices=["table", "md", "csv", "jsonl"],
        default="table",
        help="table (newest first, for a terminal), or an export streamed oldest first: md, "
        "csv (safe to open in a spreadsheet), jsonl (one object per row)",
    )

    callbacks = sub.add_parser(
        "callbacks",
        help="manage the Room Engine callback configuration (changes made outside roombot)",
        description="Install, show or remove the app's Room Engine callback configuration "
        "(v4/room_config/). roombot receives them at POST /tencent/callback.",
    )
    action = callbacks.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = action.add_parser(
        "install",
        help="point the callbacks at URL (replacing any configuration)",
        description="Register URL (with ?token=ROOMBOT_CALLBACK_TOKEN appended) for the "
        "room-level callbacks: room created, destroyed, updated.",
    )
    install.add_argument(
        "url", metavar="URL", help="e.g. https://roombot.example.com/tencent/callback"
    )
    install.add_argument(
        "--members",
        action="store_true",
        help="also register member enter/leave and seat callbacks (counted; of the seat ones, "
        "changes made outside roombot are recorded, locks and removals alerted)",
    )
    action.add_parser("show", help="print the configuration (token masked)")
    action.add_parser("remove", help="delete the configuration")
    return parser


def _run_parse(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import USER_ID_RE
    from bot.seat_wording import dry_run_note

    if not USER_ID_RE.match(args.as_user):
        raise UsageError(
            f"--as: malformed Slack user ID {args.as_user[:40]!r} (expected e.g. U012ABCDEF)"
        )
    # The words are joined, so `parse mute-all r1` and `parse 'mute-all r1'` are the same text.
    text = " ".join(args.text)
    try:
        command = parse_command(
            text,
            max_rooms=settings.roombot_max_rooms,
            max_timebox=settings.roombot_max_timebox,
        )
    except ParseError as exc:
        usage = f" — usage: {exc.usage}" if exc.usage else ""
        print(f"roombot parse: {exc.message}{usage}", file=sys.stderr)
        return EXIT_USAGE
    if command.spec.kind is VerbKind.WRITE:
        for call in command.calls(args.as_user):
            print(json.dumps(call.body(), ensure_ascii=False))
        note = dry_run_note(command)
        if note:  # stdout stays one JSON object per line; what the bodies cannot show goes here
            print(f"roombot parse: note: {note.replace('`', '')}", file=sys.stderr)
    else:
        print(json.dumps(command.as_dict(), ensure_ascii=False))
    return EXIT_OK


def _run_serve(args: argparse.Namespace, settings: Settings | None) -> int:
    # `settings` is unused: serve reads them itself, so that every problem is reported at once
    # (and its start-up checks live in `handlers.launch`).
    from handlers.launch import run_serve

    return run_serve(http=args.http, host=args.host, port_arg=args.port)


def _run_console(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import USER_ID_RE
    from bot.console import run_console
    from bot.policy import policy_from_settings
    from bot.policy.loader import CHANNEL_ID_RE

    if args.as_user is not None and not USER_ID_RE.match(args.as_user):
        raise UsageError(
            f"--as: malformed Slack user ID {args.as_user!r} (expected e.g. U012ABCDEF)"
        )
    if args.channel is not None and not CHANNEL_ID_RE.match(args.channel):
        raise UsageError(
            f"--channel: malformed Slack channel ID {args.channel[:40]!r} (expected e.g. "
            "C012ABCDEF: channel details → About; a #name is not accepted)"
        )
    if args.reset_demo and settings.tencent_configured:
        raise UsageError(
            "--reset-demo: TENCENT_* is configured, so there are no demo rooms to reset (it "
            "resets the embedded emulator's)"
        )
    policy = policy_from_settings(settings)
    return run_console(
        settings,
        policy,
        as_user=args.as_user,
        channel=args.channel,
        assume_yes=args.yes,
        reset_demo=args.reset_demo,
    )


def _run_emulator(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import variable_source
    from bot.tencent.emulator_cli import EmulatorUsageError, run_cli

    try:
        return run_cli(
            settings=settings,
            host=args.host,
            port=args.port,
            rooms=args.rooms,
            rooms_file=args.rooms_file,
            latency_ms=args.latency_ms,
            fail_rate=args.fail_rate,
            http_502_rate=args.http_502_rate,
            hang_rate=args.hang_rate,
            callback_url=args.callback_url,
            callback_token=args.callback_token,
            other_admins=args.other_admins,
            key_source=variable_source("TENCENT_SECRET_KEY"),
        )
    except EmulatorUsageError as exc:
        raise UsageError(str(exc)) from None


def _run_check(args: argparse.Namespace, settings: Settings | None) -> int:
    # `settings` is unused: check reads them itself, so that a bad variable becomes one failed
    # check in the report while the checks that do not depend on it still run.
    import asyncio

    from bot.check import exit_code, render

    results = asyncio.run(run_all_checks())
    print(render(results))
    return exit_code(results)


async def run_all_checks(
    *, env_file: str | None = ".env", timeout_s: float | None = None
) -> list[CheckResult]:
    """Every check of `roombot check`, the core's and Slack's concurrently, in report order."""
    import asyncio

    from bot import check
    from handlers.checks import slack_checks

    timeout = check.CHECK_TIMEOUT_S if timeout_s is None else timeout_s
    inputs = check.prepare(env_file)
    chat, core = await asyncio.gather(
        slack_checks(inputs.loaded, inputs.policy, timeout_s=timeout),
        check.run_core_checks(inputs, timeout_s=timeout),
    )
    return check.assemble(inputs, chat, core)


def _run_audit(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "prune":
        return _run_prune(args, settings)
    if args.older_than is not None or args.dry_run:
        raise UsageError("--older-than and --dry-run are for `roombot audit prune`")
    # Imported here so the other subcommands never load the audit code.
    import asyncio
    import time
    from pathlib import Path

    from bot.audit import AuditError
    from bot.audit.export import check_user_id
    from bot.audit.report import export_to

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    if args.user is not None:
        try:
            check_user_id(args.user)
        except ValueError as exc:
            raise UsageError(f"--user: {exc}") from None
    now = time.time()
    since, until = _audit_time(args.since, "--since", now), _audit_time(args.until, "--until", now)
    path = settings.roombot_audit_db
    # Checked first so that reading never creates an empty database where none was.
    if isinstance(path, Path) and not path.is_file():
        raise UsageError(f"no audit database at {path} (set ROOMBOT_AUDIT_DB to the bot's file)")
    try:
        asyncio.run(
            export_to(
                sys.stdout,
                path,
                args.format,
                room=args.room,
                user=args.user if args.user is not None else args.operator,
                since=since,
                until=until,
                limit=args.limit,
            )
        )
    except AuditError as exc:
        print(f"roombot audit: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _run_prune(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import time
    from pathlib import Path

    from bot.audit import AuditError, open_store
    from bot.audit.retention import prune
    from bot.config import age_seconds

    if args.older_than is not None:
        try:
            older_than = age_seconds(args.older_than.strip())
        except ValueError as exc:
            raise UsageError(f"--older-than {exc}") from None
    elif settings.roombot_audit_retention is not None:
        older_than = settings.roombot_audit_retention
    else:
        raise UsageError(
            "say how old a row must be: --older-than 400d, or set ROOMBOT_AUDIT_RETENTION"
        )
    path = settings.roombot_audit_db
    if isinstance(path, Path) and not path.is_file():
        raise UsageError(f"no audit database at {path} (set ROOMBOT_AUDIT_DB to the bot's file)")

    async def run() -> str:
        async with await open_store(path) as store:
            done = await prune(store, older_than, now=time.time(), dry_run=args.dry_run)
        cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(done.cutoff))
        what = f"{done.rows} audit row(s) and {done.requests} request record(s) older than {cutoff}"
        if done.dry_run:
            return f"would prune {what} (nothing deleted: --dry-run)"
        if done.busy:
            return f"pruned {what}; another replica is pruning too and goes on"
        return f"pruned {what}"

    try:
        print(asyncio.run(run()))
    except AuditError as exc:
        print(f"roombot audit: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _audit_time(text: str | None, option: str, now: float) -> float | None:
    from bot.audit import parse_since

    if text is None:
        return None
    try:
        return parse_since(text, now=now)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _run_callbacks(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from bot import callbacks_cli
    from bot.tencent.client import RoomEngineClient

    token = (
        settings.roombot_callback_token.get_secret_value()
        if settings.roombot_callback_token is not None
        else None
    )
    if args.action == "install":
        try:
            callbacks_cli.install_url(args.url, token)  # usage problems before any call
        except callbacks_cli.CallbacksUsageError as exc:
            raise UsageError(str(exc)) from None
    client = RoomEngineClient.from_settings(settings)

    async def run() -> callbacks_cli.CallbacksResult:
        try:
            if args.action == "install":
                return await callbacks_cli.install(
                    client, args.url, token=token, members=args.members
                )
            if args.action == "show":
                return await callbacks_cli.show(client, token=token)
            return await callbacks_cli.remove(client, token=token)
        finally:
            await client.aclose()

    result = asyncio.run(run())
    stream = sys.stdout if result.ok else sys.stderr
    for line in result.lines:
        print(line if result.ok else f"roombot callbacks: {line}", file=stream)
    return EXIT_OK if result.ok else EXIT_FAILED


_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "serve": _run_serve,
    "console": _run_console,
    "emulator": _run_emulator,
    "parse": _run_parse,
    "check": _run_check,
    "audit": _run_audit,
    "callbacks": _run_callbacks,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `roombot` console script; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        # Both report every bad setting themselves (check as failed checks, serve all at once).
        if args.command == "check":
            return _run_check(args, None)
        if args.command == "serve":
            return _run_serve(args, None)
        settings = load_settings()
        return _COMMANDS[args.command](args, settings)
    except (ConfigError, UsageError) as exc:
        for line in str(exc).splitlines() or [""]:  # a policy file's mistakes: one a line
            print(f"roombot {args.command}: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
