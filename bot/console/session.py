"""`roombot console`'s session: type `/room ...` lines and see what the bot would do, through the
real service, policy and audit (source "console"), rendered as plain text.

Lines on stdin that is not a terminal are run in order and the exit status is 1 if any of them
failed, so runbooks can script it: `roombot console < runbook.txt`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TextIO

from bot.audit import AuditError, AuditStore
from bot.commands import VerbKind
from bot.config import ConfigError, Settings
from bot.console.backend import open_backend
from bot.console.text import TextRenderer, request_lines, result_lines
from bot.outcomes import Actor, Approved, NeedsConfirmation, Progress, Source
from bot.policy import Policy
from bot.presenter import Answer, Confirm, Presenter
from bot.service import RoomService
from bot.wording import progress_status

#: The user ID the console's local operator acts as (every verb allowed, no policy lookup).
OPERATOR_ID = "U0OPERATOR"
HISTORY_FILE = Path.home() / ".roombot_history"

Confirmer = Callable[[str], Awaitable[bool]]


class Console:
    """Runs console lines through the presenter and prints its plain-text answers.

    High-impact requests need `confirmer` to say yes (a prompt when interactive; `--yes` when
    scripted); without one they are refused, so a runbook never locks rooms down by accident.
    """

    def __init__(
        self,
        presenter: Presenter[str],
        actor: Actor,
        out: TextIO,
        confirmer: Confirmer | None = None,
    ) -> None:
        self._presenter = presenter
        self._service = presenter.service
        self._actor = actor
        self._out = out
        self._confirmer = confirmer

    def _print(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    async def run_line(self, line: str) -> bool:
        """Handle one line; True if it succeeded (help and blank lines count as success)."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        reply = await self._presenter.answer(text, self._actor)
        if isinstance(reply, Answer):
            self._print(reply.message)
            return reply.ok
        try:
            if isinstance(reply, Confirm):
                approved = await self._confirm(reply)
                return approved is not None and await self._run(approved)
            return await self._run(reply)
        except Exception:
            self._print(self._presenter.unexpected(self._actor, "console line").message)
            return False

    async def _confirm(self, confirm: Confirm[str]) -> Approved | None:
        self._print(confirm.message)
        needs: NeedsConfirmation = confirm.needs
        if self._confirmer is None or not await self._confirmer("Type yes to run it: "):
            await self._service.cancel(needs.key, self._actor)
            self._print("Not confirmed: nothing was done (scripts: pass --yes to confirm).")
            return None
        outcome = await self._service.confirm(needs.key, self._actor)
        if not isinstance(outcome, Approved):
            self._print(self._presenter.renderer.rejected(outcome))
            return None
        return outcome

    async def _run(self, approved: Approved) -> bool:
        if approved.command.spec.kind is VerbKind.READ:
            answer = await self._presenter.read(approved)
            self._print(answer.message)
            return answer.ok
        for line in request_lines(approved.command, self._actor):
            self._print(line)
        last_shown = 0

        async def on_progress(progress: Progress) -> None:
            nonlocal last_shown
            # Only long requests need a progress line; show one per tenth of the work.
            if progress.total >= 20 and progress.done - last_shown >= progress.total // 10:
                last_shown = progress.done
                self._print("  " + progress_status(progress))

        run = await self._service.run(self._service.plan(approved), progress=on_progress)
        for line in result_lines(run):
            self._print(line)
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
    try:
        audit = await AuditStore.open(settings.roombot_audit_db, lease_s=settings.roombot_lease_s)
    except AuditError as exc:
        raise ConfigError(
            f"ROOMBOT_AUDIT_DB: cannot open {settings.roombot_audit_db}: {exc}"
        ) from None
    # The store's budget: on PostgreSQL, the one every replica shares.
    budget = audit.rate_budget(settings.roombot_rate_limit)
    async with audit, open_backend(settings, rate_budget=budget) as backend:
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
                "Type a command (e.g. 'mute-all room-test'), 'help', or Ctrl-D to quit.", file=out
            )
        service = RoomService(
            client=backend.client,
            policy=policy,
            groups=None,
            audit=audit,
            max_rooms=settings.roombot_max_rooms,
            confirm_above=settings.roombot_confirm_above,
            allow_unaudited=settings.roombot_allow_unaudited,
        )
        presenter = Presenter(service, TextRenderer())
        console = Console(presenter, actor, out, _confirmer(interactive, assume_yes, out))
        all_ok = True
        async for line in _lines(interactive, stdin):
            if not interactive and line.strip() and not line.lstrip().startswith("#"):
                print(f"/room {line.strip().removeprefix('/room').strip()}", file=out)
            ok = await console.run_line(line)
            all_ok = all_ok and ok
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
