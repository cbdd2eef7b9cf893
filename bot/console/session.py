"""`roombot console`'s session: type `/room ...` lines and see what the bot would do, through the
real service, policy and audit (source "console"), rendered as plain text.

Besides the `/room` language the console takes what Slack offers as buttons: `undo [KEY]` (the
last request of this session, or the one named by its request key) and `retry-failed [KEY]`,
and for a time-boxed change (`--for`) `revert-now`, `extend` and `keep` [TIMER], with the same
permission checks.

The session runs its event loop step by step (`asyncio.Runner`) and reads input between steps,
on the main thread: Ctrl-C at the prompt drops the line, at a confirmation it answers no, and
while a command runs it interrupts it — at once, never waiting for Enter. (Worker threads block
it, so it always reaches the main thread. One case is CPython's readline's: a Ctrl-C pressed
while keys typed just before it are still unread is seen only at the next key; at human speed
the keys are read within microseconds.)

Lines on stdin that is not a terminal are run in order and the exit status is 1 if any of them
failed, so runbooks can script it: `roombot console < runbook.txt`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, TextIO

from bot.aio import worker_threads
from bot.audit import AuditError, AuditStore, open_store
from bot.commands import Command, VerbKind
from bot.config import ConfigError, Settings
from bot.console.backend import Backend, open_backend
from bot.console.delivery import ConsoleDelivery, console_deliveries
from bot.console.text import TextRenderer
from bot.followups import undo_needs
from bot.logs import configure_logging
from bot.outcomes import Actor, Approved, Plan, Rejected, RunKind, RunResult, Source
from bot.policy import Policy
from bot.presenter import Answer, Confirm, Presenter
from bot.requests.loop import RequestLoop
from bot.service import RoomService
from bot.wording.timers import reverts_line

log = logging.getLogger(__name__)

#: The user ID the console's local operator acts as (every verb allowed, no policy lookup).
OPERATOR_ID = "U0OPERATOR"
HISTORY_FILE = Path.home() / ".roombot_history"
#: What the console offers in place of Slack's buttons.
BUTTON_WORDS: Final = ("undo", "retry-failed", "revert-now", "extend", "keep")
#: The buttons of a time-boxed change (`--for`): they name its timer.
TIMER_WORDS: Final = ("revert-now", "extend", "keep")

#: Asks the operator to confirm: shows the prompt, returns what they typed (None for Ctrl-C or
#: the end of input). `--yes` answers "yes" itself.
Ask = Callable[[str], str | None]
#: What confirms a request that can be undone.
_YES: Final = frozenset({"y", "yes"})


def confirmation_prompt(command: Command) -> str:
    """The question before a request that asks first. One that cannot be undone (`destroy`)
    names the exact answers it takes."""
    if command.spec.undoable:
        return "Type yes to run it: "
    return (
        f"This cannot be undone. Type yes (or the room ID, {command.rooms[0]}) to run it: "
        if len(command.rooms) == 1
        else "This cannot be undone. Type yes to run it: "
    )


def confirmed(answer: str | None, command: Command) -> bool:
    """True when `answer` confirms `command`: for one that cannot be undone exactly `yes` or
    its room ID (a bare `y` or a stray Enter must not destroy a room), else `y` or `yes` in
    any case."""
    if answer is None:
        return False
    typed = answer.strip()
    if command.spec.undoable:
        return typed.lower() in _YES
    return typed == "yes" or (len(command.rooms) == 1 and typed == command.rooms[0])


class Console:
    """Runs console lines through the presenter and prints its plain-text answers.

    `runner` carries out each async step; `ask` confirms high-impact requests (without one they
    are refused, so a runbook never locks rooms down by accident).
    """

    def __init__(
        self,
        presenter: Presenter[str],
        actor: Actor,
        out: TextIO,
        runner: asyncio.Runner,
        ask: Ask | None = None,
    ) -> None:
        self._presenter = presenter
        self._service = presenter.service
        self._actor = actor
        self._out = out
        self._runner = runner
        self._ask = ask
        #: The request key of this session's last write, for a bare `undo` / `retry-failed`.
        self.last_request: str | None = None
        #: The timer of this session's last time-boxed change, for `revert-now` / `extend` /
        #: `keep`.
        self.last_timer: str | None = None

    def _print(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    def run_line(self, line: str) -> bool:
        """Handle one line; True if it succeeded (help and blank lines count as success).

        Raises `KeyboardInterrupt` if the operator interrupts a running command.
        """
        text = line.strip().removeprefix("/room").strip()
        if not text or text.startswith("#"):
            return True
        word, _, rest = text.partition(" ")
        if word.lower() in BUTTON_WORDS:
            return self._button(word.lower(), rest.strip())
        try:
            reply = self._runner.run(self._presenter.answer(text, self._actor))
            if isinstance(reply, Answer):
                self._print(reply.message)
                return reply.ok
            if isinstance(reply, Confirm):
                approved = self._confirm(reply)
                return approved is not None and self._carry_out(approved)
            return self._carry_out(reply)
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise
        except Exception:
            self._print(self._presenter.unexpected(self._actor, "console line").message)
            return False

    def _confirm(self, confirm: Confirm[str]) -> Approved | None:
        self._print(confirm.message)
        needs = confirm.needs
        answer = None if self._ask is None else self._ask(confirmation_prompt(needs.command))
        if not confirmed(answer, needs.command):
            self._runner.run(self._service.cancel(needs.key, self._actor))
            self._print(_not_confirmed(answer, needs.command))
            return None
        outcome = self._runner.run(self._service.confirm(needs.key, self._actor))
        if not isinstance(outcome, Approved):
            self._print(self._presenter.renderer.rejected(outcome))
            return None
        return outcome

    def _carry_out(self, approved: Approved) -> bool:
        if approved.command.spec.kind is VerbKind.READ:
            answer = self._runner.run(self._presenter.read(approved))
            self._print(answer.message)
            return answer.ok
        return self._run(self._service.plan(approved))

    def _button(self, word: str, key: str) -> bool:
        """`undo [KEY]` or `retry-failed [KEY]`: what Slack's buttons do, for the last request
        of this session or the one named."""
        if word in TIMER_WORDS:
            return self._timer_button(word, key or self.last_timer or "")
        key = key or self.last_request or ""
        if not key:
            self._print(
                f"Nothing to {word} in this session yet; name a request: '{word} KEY' (the "
                "console prints each request's key; 'roombot audit --format jsonl' lists them)."
            )
            return False
        planning = self._service.plan_undo if word == "undo" else self._service.plan_retry
        plan = self._runner.run(planning(key, self._actor))
        if isinstance(plan, Rejected):
            self._print(self._presenter.renderer.rejected(plan))
            return False
        return self._run(plan)

    def _timer_button(self, word: str, key: str) -> bool:
        """`revert-now`, `extend` or `keep` [TIMER]: what a time-boxed change's buttons do."""
        timers = self._service.timers
        if not key or timers is None:
            self._print(
                f"No time-boxed change to {word} in this session; name its timer: "
                f"'{word} TIMER' ('timers' lists them)."
            )
            return False
        if word == "revert-now":
            outcome = self._runner.run(
                self._service.revert_now(key, self._actor, ConsoleDelivery(self._print))
            )
            if isinstance(outcome, Rejected):
                self._print(self._presenter.renderer.rejected(outcome))
                return False
            return not outcome.failed
        settled = self._runner.run(
            timers.keep(key, self._actor) if word == "keep" else timers.extend(key, self._actor)
        )
        if isinstance(settled, Rejected):
            self._print(self._presenter.renderer.rejected(settled))
            return False
        if word == "keep":
            self._print("Kept: this change stays; it will not be reverted.")
        else:
            self._print(f"Extended: now {reverts_line(settled.due, time.time())}.")
        return True

    def _run(self, plan: Plan) -> bool:
        run = self._runner.run(self._service.submit(plan, ConsoleDelivery(self._print)))
        if run is None:
            done = "undone" if plan.kind is RunKind.UNDO else "retried"
            self._print(f"That request was already {done}; nothing was done again.")
            return False
        if not isinstance(run, RunResult):  # the console's requests are refused instead
            return False
        self._offer(run)
        return not run.failed

    def _offer(self, run: RunResult) -> None:
        """Say what the buttons would offer in Slack, and remember the request for them."""
        if run.audit_error or run.kind is not RunKind.REQUEST:
            return  # nothing to find it by; a bare `undo` is about the last request, not an undo
        self.last_request = run.request_key
        offers = []
        if run.undoable and self._runner.run(self._may_undo(run)):
            offers.append("'undo' reverts it")
        again, failed = len(run.retryable), len(run.failed)
        if again and run.refused is None:
            offers.append(
                f"'retry-failed' retries the {again} that failed"
                if again == failed
                else f"'retry-failed' retries {again} of the {failed} that failed (the others "
                "would fail the same way)"
            )
        if run.revert_key is not None and run.succeeded:
            self.last_timer = run.revert_key
            offers.append("'revert-now', 'extend' (30 min) or 'keep' act on its timer")
        if offers:
            self._print(f"  (request {run.request_key}: {'; '.join(offers)})")

    async def _may_undo(self, run: RunResult) -> bool:
        """True when this session's actor may undo `run` (as `plan_undo` will check)."""
        for verbs in undo_needs(run):
            allowed = [(await self._service.authorize(verb, self._actor)).allowed for verb in verbs]
            if not any(allowed):
                return False
        return True


def _not_confirmed(answer: str | None, command: Command) -> str:
    if answer is None:
        return "Not confirmed: nothing was done (scripts: pass --yes to confirm)."
    if command.spec.undoable:
        return "Not confirmed: nothing was done."
    takes = "exactly yes" + (f" or {command.rooms[0]}" if len(command.rooms) == 1 else "")
    return f"Not confirmed (this takes {takes}): nothing was done."


def _lines(interactive: bool, stdin: TextIO, out: TextIO) -> Iterator[str]:
    """The lines to run. At a terminal: a prompt with line editing, where Ctrl-C drops the line
    being typed (like a shell) and Ctrl-D ends the session."""
    if not interactive:
        yield from stdin
        return
    _enable_line_editing()
    while True:
        try:
            line = input("/room ")
        except EOFError:
            print(file=out)
            return
        except KeyboardInterrupt:
            print("^C", file=out, flush=True)
            continue
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


def _asker(interactive: bool, assume_yes: bool, out: TextIO) -> Ask | None:
    if assume_yes:

        def yes(prompt: str) -> str:
            print(prompt + "yes (--yes)", file=out, flush=True)
            return "yes"

        return yes
    if not interactive:
        return None

    def ask(prompt: str) -> str | None:
        try:
            return input(prompt)
        except (EOFError, KeyboardInterrupt):
            print(file=out)
            return None

    return ask


def run_console(
    settings: Settings,
    policy: Policy,
    *,
    as_user: str | None,
    channel: str | None = None,
    assume_yes: bool = False,
    reset_demo: bool = False,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> int:
    """Run the console until end of input; 0 if every line succeeded, 1 if one failed, 130 if
    the operator interrupted a running command when not at a terminal.

    Raises `ConfigError` for a partial Tencent configuration: with some TENCENT_* set the
    operator means a real Room Engine, so falling back to the emulator would mislead.
    """
    partial = settings.tencent_partial()
    if partial is not None:
        raise ConfigError(partial)
    if "roombot_log_level" in settings.model_fields_set:
        # The terminal is the console's own; its log goes to stderr only when asked for.
        configure_logging(settings.log_level, settings.roombot_log_format)
    with asyncio.Runner() as runner:
        # Its threads (name lookups, to_thread) must leave Ctrl-C to the main thread, too.
        runner.get_loop().set_default_executor(worker_threads(name="roombot-console"))
        try:
            audit = runner.run(
                open_store(settings.roombot_audit_db, lease_s=settings.roombot_lease_s)
            )
        except AuditError as exc:
            raise ConfigError(
                f"ROOMBOT_AUDIT_DB: cannot open {settings.roombot_audit_db}: {exc}"
            ) from None
        try:
            # The store's budget paces the client of the real Room Engine: on PostgreSQL, the
            # one every replica shares. The embedded emulator is this process's alone.
            budget = (
                audit.rate_budget(settings.roombot_rate_limit, app=settings.tencent_sdkappid)
                if settings.tencent_configured
                else None
            )
            backend_cm = open_backend(settings, rate_budget=budget, reset_demo=reset_demo)
            backend = runner.run(backend_cm.__aenter__())
            try:
                who = _actor(as_user, channel)
                return _session(
                    runner, backend, audit, settings, policy, who, assume_yes, stdin, out
                )
            finally:
                runner.run(backend_cm.__aexit__(None, None, None))
        finally:
            runner.run(audit.close())


def _actor(as_user: str | None, channel: str | None) -> Actor:
    """Who the console acts as: a Slack user in a channel (the policy applies), or the local
    operator, who may run everything."""
    if as_user:
        return Actor(user_id=as_user, source=Source.CONSOLE, channel_id=channel)
    return Actor(user_id=OPERATOR_ID, source=Source.CONSOLE, is_operator=True, channel_id=channel)


def _session(
    runner: asyncio.Runner,
    backend: Backend,
    audit: AuditStore,
    settings: Settings,
    policy: Policy,
    actor: Actor,
    assume_yes: bool,
    stdin: TextIO,
    out: TextIO,
) -> int:
    interactive = stdin.isatty() and out.isatty()
    print(f"roombot console — talking to {backend.description}", file=out, flush=True)
    if not actor.is_operator:
        where = (
            f" in channel {actor.channel_id}"
            if actor.channel_id
            else " outside any channel (--channel C… for roles with a channel guardrail)"
        )
        print(
            f"Acting as Slack user {actor.user_id}{where}: the policy decides what you may run.",
            file=out,
        )
    else:
        print(
            "Acting as the local operator: every command is allowed (use --as U… to check "
            "what a Slack user may do).",
            file=out,
        )
    if interactive:
        print(
            "Type a command (e.g. 'mute-all room-test'), 'help', 'undo' or 'retry-failed' after "
            "a request, or Ctrl-D to quit.",
            file=out,
        )
    service = RoomService(
        client=backend.client,
        policy=policy,
        groups=None,
        audit=audit,
        max_rooms=settings.roombot_max_rooms,
        max_timebox=settings.roombot_max_timebox,
        confirm_above=settings.roombot_confirm_above,
        allow_unaudited=settings.roombot_allow_unaudited,
        timeline_max_s=settings.roombot_timeline_max,
    )
    assert service.book is not None  # the console always has an audit store
    loop = RequestLoop(
        audit,
        backend.client,
        console_deliveries(lambda line: print(line, file=out, flush=True)),
        service.book,
        due=service.due,
    )
    # A request an earlier session left unfinished is reported first, then the loop renews
    # leases while commands run.
    runner.run(_first_tick(loop))
    try:
        console = Console(
            Presenter(service, TextRenderer()),
            actor,
            out,
            runner,
            _asker(interactive, assume_yes, out),
        )
        all_ok = True
        for line in _lines(interactive, stdin, out):
            if not interactive and line.strip() and not line.lstrip().startswith("#"):
                print(f"/room {line.strip().removeprefix('/room').strip()}", file=out)
            try:
                ok = console.run_line(line)
            except KeyboardInterrupt:
                print(
                    "Interrupted: calls already sent may have changed rooms; 'history ROOM' "
                    "shows what was done.",
                    file=out,
                    flush=True,
                )
                if not interactive:
                    return 130
                ok = False
            finally:
                runner.run(backend.save())
            all_ok = all_ok and ok
    finally:
        runner.run(loop.stop())
    return 0 if all_ok else 1


async def _first_tick(loop: RequestLoop) -> None:
    try:
        await loop.tick()
    except AuditError as exc:
        log.warning("could not look for unfinished requests: %s", exc)
    loop.start(at_once=False)  # the round just made was the first
