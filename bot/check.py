"""`roombot check`, the core's part: is this deployment ready to go live?

Each check produces a `CheckResult` (✓ ok, ✗ a problem, ! a warning) with a short detail and, when
something is wrong, one line saying how to fix it. The chat platform's checks (Slack token and
scopes, Socket Mode, user groups) belong to its adapter (`handlers.checks`); the composition root
(`bot.cli`) runs both sides concurrently and `assemble()` merges them into the report order.
`render()` turns the results into the report `roombot check` prints; `exit_code()` is 0 when
nothing is a problem (warnings allowed), else 1.

What the core checks:

* settings: every variable parses. A bad one is a failed check, not a crash: it is set back to its
  default so that the checks which do not depend on it still run, and those that do are skipped.
* tencent: `get_room_info` on a probe room. Error 100004 (no such room) means Tencent accepted the
  SDKAppID and the UserSig; a 70xxx code means the credentials are wrong, and its hint says which.
* policy: the policy loads, and who may run what (`Policy.describe()`); a warning when nobody may.
* audit trail: the database opens (read-only) and is writable, or can be created.

No secret (token, secret key, UserSig) appears in a result: every line is scrubbed on the way out.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from bot.config import (
    SECRET_VARIABLES,
    ConfigError,
    Settings,
    load_settings,
)
from bot.policy import Policy, PolicyError, policy_from_settings
from bot.tencent.errors import (
    ApiError,
    MalformedResponse,
    RequestTimeout,
    RoomEngineError,
    TransportError,
    redact,
)

log = logging.getLogger(__name__)

#: How long any one network check may take.
CHECK_TIMEOUT_S: Final = 10.0

#: The room `get_room_info` asks about. It need not exist: 100004 proves the credentials work.
PROBE_ROOM_ID: Final = "roombot-check-probe"

#: Room Engine's "room does not exist": the answer the probe expects.
_ROOM_NOT_FOUND: Final = 100004
# Shorter values than this are not scrubbed: replacing every "abc" in a report helps nobody.
_MIN_SECRET_CHARS: Final = 6
_MAX_INFO_CHARS: Final = 160


class Status(StrEnum):
    """How a check came out."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def mark(self) -> str:
        """The symbol the report shows: ✓, ! or ✗."""
        return {"ok": "✓", "warn": "!", "fail": "✗"}[self.value]


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: `name`, `status`, a short `detail`, and how to fix it (`fix`).

    `notes` are extra lines shown under it (the policy's "who may do what").
    """

    name: str
    status: Status
    detail: str
    fix: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_problem(self) -> bool:
        """True for a failed check: it makes `roombot check` exit non-zero."""
        return self.status is Status.FAIL


def ok(name: str, detail: str, notes: Iterable[str] = ()) -> CheckResult:
    """A passed check, with optional lines to show under it."""
    return CheckResult(name, Status.OK, detail, notes=tuple(notes))


def warn(name: str, detail: str, fix: str | None = None) -> CheckResult:
    """A warning: worth reading, not a reason to fail."""
    return CheckResult(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> CheckResult:
    """A problem, and how to fix it."""
    return CheckResult(name, Status.FAIL, detail, fix)


# -- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedSettings:
    """Settings as far as they parse.

    `invalid` maps each variable that did not parse to its one-line problem; in `settings` those
    variables are back at their defaults. `settings` is None only when not even that worked.
    """

    settings: Settings | None
    invalid: Mapping[str, str] = field(default_factory=dict)


def load_settings_leniently(env_file: Path | str | None = ".env") -> LoadedSettings:
    """Like `load_settings`, but a bad variable is reported instead of stopping everything."""
    try:
        return LoadedSettings(load_settings(env_file))
    except ConfigError as exc:
        first_problem = str(exc)
    fields = _invalid_fields(env_file)
    if not fields:
        return LoadedSettings(None, {"settings": first_problem})
    defaults = {
        name: Settings.model_fields[name].get_default(call_default_factory=True) for name in fields
    }
    invalid: dict[str, str] = {}
    for name in fields:
        # With every other bad variable defaulted, load_settings describes exactly this one,
        # in its own words and with its own care for secrets.
        others = {key: value for key, value in defaults.items() if key != name}
        try:
            load_settings(env_file, **others)
            invalid[name.upper()] = f"{name.upper()}: invalid value"
        except ConfigError as exc:
            invalid[name.upper()] = str(exc)
    try:
        settings: Settings | None = load_settings(env_file, **defaults)
    except ConfigError:
        settings = None
    return LoadedSettings(settings, invalid)


def _invalid_fields(env_file: Path | str | None) -> list[str]:
    """The names of the Settings fields whose values do not validate."""
    try:
        Settings(_env_file=env_file)
    except ValidationError as exc:
        names = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        return sorted(name for name in names if name in Settings.model_fields)
    return []


def settings_results(loaded: LoadedSettings, env_file: Path | str | None) -> list[CheckResult]:
    """✓ when every variable parsed, else one ✗ per variable that did not."""
    if not loaded.invalid:
        found = env_file is not None and Path(env_file).is_file()
        source = f"environment and {env_file}" if found else "environment only, no .env file"
        return [ok("settings", f"every variable parses ({source})")]
    results = []
    for name, problem in loaded.invalid.items():
        where = f"correct {name}" if name != "settings" else "correct the setting it names"
        results.append(
            fail(
                "settings",
                problem,
                f"{where} in the environment or .env (see .env.example)",
            )
        )
    return results


def usable(loaded: LoadedSettings, variables: Iterable[str]) -> Settings | str:
    """The settings, if a check that depends on `variables` can run; else why it is skipped.

    A check skipped for an invalid variable is only a warning: the settings check has already
    counted that variable as a problem.
    """
    if loaded.settings is None:
        return "skipped: the settings do not parse (see above)"
    bad = [name for name in variables if name in loaded.invalid]
    if bad:
        verb = "is" if len(bad) == 1 else "are"
        return f"skipped: {' and '.join(bad)} {verb} invalid (see above)"
    return loaded.settings


# -- Tencent ------------------------------------------------------------------------------------


def tencent_result(
    outcome: RoomEngineError | None, *, base_url: str, sdkappid: int, admin_id: str
) -> CheckResult:
    """The `tencent` check from the probe's outcome (None: the probe room exists, also fine)."""
    name = "tencent"
    if outcome is None or (isinstance(outcome, ApiError) and outcome.code == _ROOM_NOT_FOUND):
        return ok(
            name,
            f"{base_url} accepted SDKAppID {sdkappid} and the UserSig for {admin_id} "
            f"(probe room {'exists' if outcome is None else 'not found, as expected'})",
        )
    if isinstance(outcome, ApiError):
        info = _shortened(outcome.info)
        what = "refused the credentials" if 70000 <= outcome.code <= 79999 else "answered"
        return fail(
            name,
            f"{base_url} {what}: error {outcome.code}{f' ({info})' if info else ''}",
            outcome.hint,
        )
    if isinstance(outcome, RequestTimeout) or (
        isinstance(outcome, TransportError) and outcome.status is None
    ):
        return fail(
            name,
            f"cannot reach {base_url} ({_transport_detail(outcome)})",
            "check TENCENT_REGION / TENCENT_API_URL and outbound HTTPS",
        )
    if isinstance(outcome, TransportError):
        return fail(name, f"{base_url} answered HTTP {outcome.status}", outcome.hint)
    if isinstance(outcome, MalformedResponse):
        return fail(name, f"{base_url} did not answer like Room Engine", outcome.hint)
    return fail(name, f"{base_url}: {outcome.message}", outcome.hint)


def _transport_detail(error: RoomEngineError) -> str:
    # "get_room_info: ConnectError: All connection attempts failed" → the part after the command.
    return error.message.split(": ", 1)[-1]


def _shortened(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_INFO_CHARS else text[: _MAX_INFO_CHARS - 1] + "…"


async def check_tencent(
    loaded: LoadedSettings, *, timeout_s: float = CHECK_TIMEOUT_S
) -> CheckResult:
    """The `tencent` check: one `get_room_info` on `PROBE_ROOM_ID`, no retries."""
    from bot.tencent.client import RetryPolicy, RoomEngineClient

    variables = ["TENCENT_SDKAPPID", "TENCENT_SECRET_KEY", "TENCENT_ADMIN_ID", "TENCENT_API_URL"]
    if loaded.settings is None or loaded.settings.tencent_api_url is None:
        variables.append("TENCENT_REGION")  # TENCENT_API_URL wins over the region when set
    settings = usable(loaded, variables)
    if isinstance(settings, str):
        return warn("tencent", settings)
    missing = [
        name
        for name, value in (
            ("TENCENT_SDKAPPID", settings.tencent_sdkappid),
            ("TENCENT_SECRET_KEY", settings.tencent_secret_key),
        )
        if value is None
    ]
    if missing:
        return fail(
            "tencent",
            f"skipped: {' and '.join(missing)} not set",
            "copy the SDKAppID and its SDKSecretKey from the Tencent RTC console into "
            "TENCENT_SDKAPPID and TENCENT_SECRET_KEY",
        )
    assert settings.tencent_sdkappid is not None
    client = RoomEngineClient.from_settings(
        settings,
        timeout_s=timeout_s,
        retry=RetryPolicy(max_attempts=1, total_budget_s=timeout_s),
    )
    outcome: RoomEngineError | None = None
    async with client:
        try:
            async with asyncio.timeout(timeout_s + 1):
                await client.get_room_info(PROBE_ROOM_ID)
        except RoomEngineError as exc:
            outcome = exc
        except TimeoutError:
            outcome = RequestTimeout(f"get_room_info: no answer within {timeout_s:g} s")
    return tencent_result(
        outcome,
        base_url=client.base_url,
        sdkappid=settings.tencent_sdkappid,
        admin_id=settings.tencent_admin_id,
    )


# -- policy -------------------------------------------------------------------------------------


def check_policy(loaded: LoadedSettings) -> tuple[CheckResult, Policy | None]:
    """The `policy` check and, when it loads, the policy (for the user group check)."""
    settings = usable(loaded, ("ROOMBOT_ALLOWED_USERS", "ROOMBOT_POLICY_FILE"))
    if isinstance(settings, str):
        return warn("policy", settings), None
    try:
        policy = policy_from_settings(settings)
    except PolicyError as exc:
        fix = "correct the policy file (ROOMBOT_POLICY_FILE); the README shows its format"
        if len(exc.problems) == 1:
            return fail("policy", exc.problems[0], fix), None
        detail = f"{len(exc.problems)} problems in the policy, one a line below"
        return replace(fail("policy", detail, fix), notes=exc.problems), None
    return policy_result(policy, settings.roombot_policy_file), policy


async def check_audit(loaded: LoadedSettings) -> CheckResult:
    """The audit database is reachable, migrated (or will be, at the next start) and writable,
    for either backend, without changing anything: an existing SQLite file is opened read-only
    (a running bot's in-flight rows are left alone), a PostgreSQL write is rolled back. The
    database password never shows."""
    from bot.audit.health import Health, check_database

    settings = usable(loaded, ("ROOMBOT_AUDIT_DB",))
    if isinstance(settings, str):
        return warn("audit trail", settings)
    target = settings.roombot_audit_db
    if isinstance(target, Path):
        fix = (
            "set ROOMBOT_AUDIT_DB to a file in a directory roombot can write, on persistent storage"
        )
    else:
        fix = "check ROOMBOT_AUDIT_DB's URL, that the server is up and the user may write"
    health = await check_database(target)
    if health.status is Health.FAIL:
        return fail("audit trail", health.detail, fix)
    if health.status is Health.WARN:
        return warn("audit trail", health.detail)
    return ok("audit trail", health.detail)


def policy_result(policy: Policy, policy_file: Path | None) -> CheckResult:
    """✓ with who may do what (`Policy.describe()`), or a warning when nobody may do anything."""
    if policy.is_empty:
        return warn(
            "policy",
            "nobody may run any verb but help (deny by default)",
            "list Slack user IDs in ROOMBOT_ALLOWED_USERS, or roles in ROOMBOT_POLICY_FILE",
        )
    sources = []
    if policy.allowed_users:
        sources.append("ROOMBOT_ALLOWED_USERS")
    if policy_file is not None:
        count = len(policy.roles)
        sources.append(f"{policy_file} ({count} role{'s' if count != 1 else ''})")
    return ok("policy", f"valid: {' and '.join(sources)}", notes=policy.describe())


# -- running and reporting ----------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """What every check starts from: the settings as far as they parse, and the policy's check
    (with the policy itself when it loads, for the user-group checks)."""

    env_file: Path | str | None
    loaded: LoadedSettings
    policy_check: CheckResult
    policy: Policy | None


@dataclass(frozen=True)
class ChatChecks:
    """What the chat platform's adapter checked: its connection lines (token, scopes, mode) and
    one line per user group the policy names."""

    connection: list[CheckResult]
    groups: list[CheckResult]


@dataclass(frozen=True)
class CoreChecks:
    """What the core checked over the network or on disk."""

    tencent: CheckResult
    audit: CheckResult


def prepare(env_file: Path | str | None = ".env") -> Inputs:
    """Load the settings leniently and check the policy: the inputs of every other check."""
    loaded = load_settings_leniently(env_file)
    policy_check, policy = check_policy(loaded)
    return Inputs(env_file, loaded, policy_check, policy)


async def run_core_checks(inputs: Inputs, *, timeout_s: float = CHECK_TIMEOUT_S) -> CoreChecks:
    """The core's network and disk checks, concurrently; a check that breaks is one failed line."""
    tencent, audit = await asyncio.gather(
        check_tencent(inputs.loaded, timeout_s=timeout_s),
        check_audit(inputs.loaded),
        return_exceptions=True,
    )
    return CoreChecks(
        tencent=crashed("tencent", tencent) if isinstance(tencent, BaseException) else tencent,
        audit=crashed("audit trail", audit) if isinstance(audit, BaseException) else audit,
    )


def assemble(inputs: Inputs, chat: ChatChecks, core: CoreChecks) -> list[CheckResult]:
    """Every result in report order, with every secret scrubbed."""
    results = [
        *settings_results(inputs.loaded, inputs.env_file),
        *chat.connection,
        core.tencent,
        inputs.policy_check,
        *chat.groups,
        core.audit,
    ]
    secrets = _secret_values(inputs.loaded.settings, inputs.env_file)
    return [scrub(result, secrets) for result in results]


def crashed(name: str, error: BaseException) -> CheckResult:
    """A check that broke in an unforeseen way: one failed line, not a traceback. Only the
    exception's type is shown (its text could quote a secret); debug logging has the rest."""
    if not isinstance(error, Exception):
        raise error  # cancellation and interrupts are not results
    log.debug("check %r failed unexpectedly", name, exc_info=error)
    return fail(
        name,
        f"the check itself failed unexpectedly ({type(error).__name__})",
        "please report this to the roombot maintainers with this output",
    )


def _secret_values(settings: Settings | None, env_file: Path | str | None) -> list[str]:
    """Every secret this run might have seen: parsed, from the environment, or from .env."""
    values: set[str] = set()
    if settings is not None:
        for name in SECRET_VARIABLES:
            secret = getattr(settings, name.lower())
            if secret is not None:
                values.add(secret.get_secret_value())
    for name in SECRET_VARIABLES:
        values.add(os.environ.get(name, "").strip())
    if env_file is not None and Path(env_file).is_file():
        from dotenv import dotenv_values

        for key, value in dotenv_values(env_file).items():
            if key.upper() in SECRET_VARIABLES and value:
                values.add(value.strip())
    # Longest first, so a secret containing another is replaced whole.
    return sorted((v for v in values if len(v) >= _MIN_SECRET_CHARS), key=len, reverse=True)


def scrub(result: CheckResult, secrets: Sequence[str]) -> CheckResult:
    """`result` with every secret value and any `usersig=` value replaced by `***`."""
    return replace(
        result,
        detail=redact(result.detail, *secrets),
        fix=None if result.fix is None else redact(result.fix, *secrets),
        notes=tuple(redact(note, *secrets) for note in result.notes),
    )


def render(results: Sequence[CheckResult]) -> str:
    """The report: one line per check, its fix indented under it, then a summary line."""
    width = max((len(result.name) for result in results), default=0)
    lines = []
    for result in results:
        lines.append(f"{result.status.mark} {result.name.ljust(width)}  {result.detail}")
        if result.fix:
            lines.append(f"    → {result.fix}")
        lines.extend(f"    {note}" for note in result.notes)
    lines.append(summary(results))
    return "\n".join(lines)


def summary(results: Sequence[CheckResult]) -> str:
    """The last line: `all good` or `N problems`, with the number of warnings if any."""
    problems = sum(1 for result in results if result.is_problem)
    warnings = sum(1 for result in results if result.status is Status.WARN)
    head = "all good" if not problems else f"{problems} problem{'s' if problems != 1 else ''}"
    return f"{head} ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else head


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 when no check failed (warnings allowed), else 1."""
    return 1 if any(result.is_problem for result in results) else 0
