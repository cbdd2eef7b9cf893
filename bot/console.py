"""`roombot console`: type `/room ...` lines and see what the bot would post, through the real
service, policy and audit (source "console").

Backend: the real Room Engine when `TENCENT_*` is configured, otherwise an embedded emulator with
demo rooms; the first line printed always names the endpoint and SDKAppID, so the console never
silently talks to production. Lines on stdin that is not a terminal are run in order and the exit
status is 1 if any of them failed, so runbooks can script it: `roombot console < runbook.txt`.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot import render
from bot.audit import AuditError, AuditStore
from bot.commands import VerbKind
from bot.config import ConfigError, Settings
from bot.policy import Policy
from bot.service import (
    Actor,
    Approved,
    DryRun,
    HelpReply,
    NeedsConfirmation,
    Progress,
    Rejected,
    RoomService,
    Source,
)
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import DEMO_ROOMS, DEMO_SDKAPPID, RoomEngineEmulator
from bot.tencent.ratelimit import RateBudget

OPERATOR_ID = "U0OPERATOR"
HISTORY_FILE = Path.home() / ".roombot_history"

_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")


def to_terminal(text: str) -> str:
    """Slack mrkdwn → terminal text: mentions as @ID, entities unescaped, bold markers dropped."""
    text = _MENTION.sub(r"@\1", text)
    text = re.sub(r"(?<!\w)\*([^*\n]+)\*(?!\w)", r"\1", text)
    return html.unescape(text)


@dataclass
class Backend:
    """What the console talks to, and what to say about it on the first line."""

    client: RoomEngineClient
    description: str
    emulator: RoomEngineEmulator | None = None

    async def aclose(self) -> None:
        """Close the client and stop the embedded emulator, if any."""
        await self.client.aclose()
        if self.emulator is not None:
            await self.emulator.stop()


@contextlib.asynccontextmanager
async def open_backend(settings: Settings) -> AsyncIterator[Backend]:
    """The configured Room Engine, or an embedded emulator seeded with demo rooms."""
    if settings.tencent_configured:
        client = RoomEngineClient.from_settings(settings)
        backend = Backend(
            client=client,
            description=(
                f"Room Engine at {settings.tencent_base_url} "
                f"(SDKAppID {settings.tencent_sdkappid}, admin {settings.tencent_admin_id}) — "
                "REAL rooms: changes take effect"
            ),
        )
    else:
        key = secrets.token_hex(32)
        emulator = RoomEngineEmulator(
            sdkappid=DEMO_SDKAPPID, secret_key=key, admin_id="administrator", rooms=DEMO_ROOMS
        )
        base_url = await emulator.start()
        client = RoomEngineClient(
            base_url=base_url,
            sdkappid=DEMO_SDKAPPID,
            secret_key=key,
            admin_id="administrator",
            rate_budget=RateBudget(settings.roombot_rate_limit),
        )
        backend = Backend(
            client=client,
            emulator=emulator,
            description=(
                f"embedded Room Engine emulator at {base_url} (SDKAppID {DEMO_SDKAPPID}, demo "
                "rooms: " + ", ".join(_demo_room_ids()) + ") — TENCENT_* not configured"
            ),
        )
    try:
        yield backend
    finally:
        await backend.aclose()


def _demo_room_ids() -> list[str]:
    return [str(room["RoomId"]) for room in DEMO_ROOMS]


Confirmer = Callable[[str], Awaitable[bool]]


class Console:
    """Runs console lines through the service and prints what Slack would show.

    High-impact requests need `confirmer` to say yes (a prompt when interactive; `--yes` when
    scripted); without one they are refused, so a runbook never locks rooms down by accident.
    """

    def __init__(
        self, service: RoomService, actor: Actor, out: TextIO, confirmer: Confirmer | None = None
    ) -> None:
        self._service = service
        self._actor = actor
        self._out = out
        self._confirmer = confirmer

    def _print(self, text: str = "") -> None:
        print(to_terminal(text), file=self._out, flush=True)

    async def run_line(self, line: str) -> bool:
        """Handle one line; True if it succeeded (help and blank lines count as success)."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        prepared = await self._service.prepare(text, self._actor)
        if isinstance(prepared, Rejected):
            self._print(render.rejected_text(prepared.message, prepared.usage))
            return False
        if isinstance(prepared, HelpReply):
            self._print(prepared.text)
            return True
        if isinstance(prepared, DryRun):
            self._print(render.dry_run_message(prepared).text)
            return True
        if isinstance(prepared, NeedsConfirmation):
            confirmed = await self._confirm(prepared)
            if confirmed is None:
                return False
            return await self._run_approved(confirmed)
        return await self._run_approved(prepared)

    async def _confirm(self, needs: NeedsConfirmation) -> Approved | None:
        prompt = render.confirmation_message(needs).text
        prompt = prompt.replace("Only you can confirm; this prompt expires in 10 minutes.", "")
        self._print(prompt.rstrip())
        if self._confirmer is None or not await self._confirmer("Type yes to run it: "):
            await self._service.cancel(needs.key, self._actor)
            self._print("Not confirmed: nothing was done (scripts: pass --yes to confirm).")
            return None
        outcome = await self._service.confirm(needs.key, self._actor)
        if isinstance(outcome, Rejected):
            self._print(render.rejected_text(outcome.message, outcome.usage))
            return None
        return outcome

    async def _run_approved(self, approved: Approved) -> bool:
        if approved.command.verb == "history":
            view = await self._service.history(approved)
            self._print(render.history_message(view).text)
            return view.problem is None
        if approved.command.spec.kind is VerbKind.READ:
            views = await self._service.show(approved)
            self._print(render.show_message(views).text)
            return all(v.failure is None for v in views)
        command = approved.command
        self._print(render.parent_message(command, self._actor).text.splitlines()[0])
        if command.reason:
            self._print(f"  Reason: {render.escape(command.reason)}")

        last_shown = 0

        async def on_progress(progress: Progress) -> None:
            nonlocal last_shown
            # Only long requests need a progress line; show one per tenth of the work.
            if progress.total >= 20 and progress.done - last_shown >= progress.total // 10:
                last_shown = progress.done
                self._print("  " + render.progress_status(progress))

        run = await self._service.execute(approved, progress=on_progress)
        for message in render.result_messages(run):
            for line in message.text.splitlines():
                if line != render.final_status(run):
                    self._print("  └ " + line)
        self._print(render.final_status(run))
        return not run.failed


async def _lines(interactive: bool, stdin: TextIO) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    if not interactive:
        for line in stdin:
            yield line
        return
    _enable_line_editing()
    while True:
        try:
            line = await loop.run_in_executor(None, input, "/room ")
        except EOFError:
            print(file=sys.stdout)
            return
        yield line


def _enable_line_editing() -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - not on every platform
        return
    with contextlib.suppress(OSError):
        readline.read_history_file(HISTORY_FILE)
    readline.set_history_length(1000)
    import atexit

    atexit.register(_save_history, readline)


def _save_history(readline_module: object) -> None:
    with contextlib.suppress(OSError):
        readline_module.write_history_file(HISTORY_FILE)  # type: ignore[attr-defined]


async def run_console(
    settings: Settings,
    policy: Policy,
    *,
    as_user: str | None,
    assume_yes: bool = False,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> int:
    """Run the console until end of input; 0 if every line succeeded, else 1."""
    interactive = stdin.isatty() and out.isatty()
    async with open_backend(settings) as backend:
        print(f"roombot console — talking to {backend.description}", file=out, flush=True)
        if as_user:
            actor = Actor(user_id=as_user, source=Source.CONSOLE)
            print(f"Acting as Slack user {as_user}: the policy decides what you may run.", file=out)
        else:
            actor = Actor(user_id=OPERATOR_ID, source=Source.CONSOLE, is_operator=True)
            print(
                "Acting as the local operator: every command is allowed (use --as U… to check "
                "what a Slack user may do).",
                file=out,
            )
        if interactive:
            print(
                "Type a command (e.g. `mute-all room-test`), `help`, or Ctrl-D to quit.", file=out
            )
        try:
            audit = await AuditStore.open(settings.roombot_audit_db)
        except AuditError as exc:
            raise ConfigError(
                f"ROOMBOT_AUDIT_DB: cannot open {settings.roombot_audit_db}: {exc}"
            ) from None
        try:
            service = RoomService(
                client=backend.client,
                policy=policy,
                groups=None,
                audit=audit,
                max_rooms=settings.roombot_max_rooms,
                confirm_above=settings.roombot_confirm_above,
            )
            console = Console(service, actor, out, _confirmer(interactive, assume_yes, out))
            all_ok = True
            async for line in _lines(interactive, stdin):
                if not interactive and line.strip() and not line.lstrip().startswith("#"):
                    print(f"/room {line.strip().removeprefix('/room').strip()}", file=out)
                ok = await console.run_line(line)
                all_ok = all_ok and ok
        finally:
            await audit.close()
        return 0 if all_ok else 1


def _confirmer(interactive: bool, assume_yes: bool, out: TextIO) -> Confirmer | None:
    if assume_yes:

        async def yes(prompt: str) -> bool:
            print(prompt + "yes (--yes)", file=out)
            return True

        return yes
    if not interactive:
        return None

    async def ask(prompt: str) -> bool:
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(None, input, prompt)
        except EOFError:
            return False
        return answer.strip().lower() in {"y", "yes"}

    return ask
