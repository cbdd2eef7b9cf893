"""The one root of roombot's own errors.

Every error the project defines derives from `RoombotError`, so a caller that wants "anything
roombot refused or could not do" catches one type. Each keeps the base its callers rely on as
well (`EmulatorUsageError` is still a `ValueError`), and its module's docstring says what it means:

* `bot.config.ConfigError` — a setting or the policy file is wrong (one line naming it);
  `bot.policy.PolicyError` is one.
* `bot.policy.GroupLookupError` — a Slack user group's members could not be fetched.
* `bot.audit.AuditError` — the audit store could not do what was asked.
* `bot.budget.RateBudgetUnavailable` — the shared rate budget's database could not
  grant a Room Engine call in time, so the call was not made.
* `bot.commands.ParseError` — the `/room` text is not a valid command.
* `bot.tencent.errors.RoomEngineError` — a Room Engine call failed (and its subclasses).
* `bot.cli.UsageError`, `bot.tencent.emulator_cli.EmulatorUsageError` — bad command-line usage.

Messages are one line, meant for a person, and never carry a secret.
"""

from __future__ import annotations


class RoombotError(Exception):
    """Base of every error roombot itself raises on purpose."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line for a user-facing reason (library errors span lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
