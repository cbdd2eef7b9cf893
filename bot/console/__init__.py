"""`roombot console`: the terminal adapter. The real service, policy and audit at a prompt, with
its own plain-text rendering (`text`), against the configured Room Engine or an embedded emulator
(`backend`); `session` reads lines and prints answers."""

from bot.console.session import OPERATOR_ID, Console, run_console

__all__ = ["OPERATOR_ID", "Console", "run_console"]
