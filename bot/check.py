"""`roombot check`: is this deployment ready to go live?

Each check produces a `CheckResult` (✓ ok, ✗ a problem, ! a warning) with a short detail and, when
something is wrong, one line saying how to fix it. `run_checks()` runs them all — the network ones
concurrently, each bounded by a short timeout — and `render()` turns the results into the report
`roombot check` prints. `exit_code()` is 0 when nothing is a problem (warnings allowed), else 1.

What is checked:

* settings: every variable parses. A bad one is a failed check, not a crash: it is set back to its
  default so that the checks which do not depend on it still run, and those that do are skipped.
* slack token: `auth.test` accepts SLACK_BOT_TOKEN; slack scopes: the scopes Slack reports for it
  (the `x-oauth-scopes` header) include every one the manifest asks for (`REQUIRED_BOT_SCOPES`).
* socket mode: `apps.connections.open` accepts SLACK_APP_TOKEN (the URL it hands out is not
  used); without an app token, HTTP mode needs SLACK_SIGNING_SECRET.
* tencent: `get_room_info` on a probe room. Error 100004 (no such room) means Tencent accepted the
  SDKAppID and the UserSig; a 70xxx code means the credentials are wrong, and its hint says which.
* policy: the policy loads, and who may run what (`Policy.describe()`); a warning when nobody may.
* user groups: each user group the policy names resolves with `usergroups.users.list`.

No secret (token, secret key, UserSig) appears in a result: every line is scrubbed on the way out.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import aiohttp
from pydantic import ValidationError
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.config import (
    DEFAULT_SLACK_API_URL,
    SECRET_VARIABLES,
    ConfigError,
    Settings,
    load_settings,
)
from bot.policy import Policy, PolicyError
from bot.tencent.errors import (
    ApiError,
    MalformedResponse,
    RequestTimeout,
    RoomEngineError,
    TransportError,
    redact,
)

log = logging.getLogger(__name__)

#: The bot token scopes manifest.yml asks for. Kept here because an installed roombot has no
#: manifest.yml to read; a test holds the two lists equal.
REQUIRED_BOT_SCOPES: Final = (
    "commands",
    "chat:write",
    "chat:write.public",
    "app_mentions:read",
    "usergroups:read",
)

#: How long any one network check may take.
CHECK_TIMEOUT_S: Final = 10.0

#: The room `get_room_info` asks about. It need not exist: 100004 proves the credentials work.
PROBE_ROOM_ID: Final = "roombot-check-probe"

#: Room Engine's "room does not exist": the answer the probe expects.
_ROOM_NOT_FOUND: Final = 100004
# Shorter values than this are not scrubbed: replacing every "abc" in a report helps nobody.
_MIN_SECRET_CHARS: Final = 6
_MAX_INFO_CHARS: Final = 160
_SCOPES_HEADER: Final = "x-oauth-scopes"
_REJECTED_TOKEN_ERRORS: Final = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)


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


def _ok(name: str, detail: str, notes: Iterable[str] = ()) -> CheckResult:
    return CheckResult(name, Status.OK, detail, notes=tuple(notes))


def _warn(name: str, detail: str, fix: str | None = None) -> CheckResult:
    return CheckResult(name, Status.WARN, detail, fix)


def _fail(name: str, detail: str, fix: str) -> CheckResult:
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
        return [_ok("settings", f"every variable parses ({source})")]
    results = []
    for name, problem in loaded.invalid.items():
        where = f"correct {name}" if name != "settings" else "correct the setting it names"
        results.append(
            _fail(
                "settings",
                problem,
                f"{where} in the environment or .env (see .env.example)",
            )
        )
    return results


def _usable(loaded: LoadedSettings, variables: Iterable[str]) -> Settings | str:
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


# -- Slack --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlackFailure:
    """A Slack call that did not succeed: Slack's `error` code, or "" when there was no usable
    answer (then `detail` says what happened instead)."""

    error: str
    detail: str = ""
    needed: str = ""  # missing_scope: the scope Slack wanted


SlackOutcome = AsyncSlackResponse | SlackFailure


async def _call_slack(
    call: Callable[[], Awaitable[AsyncSlackResponse]], timeout_s: float
) -> SlackOutcome:
    """Run one Web API call, turning every way it can fail into a `SlackFailure`."""
    try:
        async with asyncio.timeout(timeout_s):
            return await call()
    except SlackApiError as exc:
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        error = str(data.get("error") or "")
        detail = "" if error else f"HTTP {exc.response.status_code}, not a Slack Web API answer"
        return SlackFailure(error, detail, str(data.get("needed") or ""))
    except TimeoutError:
        return SlackFailure("", f"no answer within {timeout_s:g} s")
    except (aiohttp.ClientError, OSError, SlackRequestError) as exc:
        return SlackFailure("", type(exc).__name__)


def _slack_client(settings: Settings, timeout_s: float) -> AsyncWebClient:
    from bot.app import build_slack_client

    client = build_slack_client(settings)
    client.timeout = max(1, round(timeout_s))
    return client


def _no_answer(name: str, api_url: str, failure: SlackFailure) -> CheckResult:
    """Check `name` failed because no Slack Web API answer came back from `api_url`."""
    if failure.detail.startswith("HTTP"):
        return _fail(
            name,
            f"{api_url} answered {failure.detail}",
            f"check SLACK_API_URL (default {DEFAULT_SLACK_API_URL})",
        )
    where = "outbound HTTPS to slack.com" if api_url == DEFAULT_SLACK_API_URL else "SLACK_API_URL"
    return _fail(name, f"cannot reach {api_url} ({failure.detail})", f"check {where}")


def bot_token_result(outcome: SlackOutcome, api_url: str) -> CheckResult:
    """The `slack token` check from `auth.test`'s outcome."""
    name = "slack token"
    if isinstance(outcome, SlackFailure):
        if not outcome.error:
            return _no_answer(name, api_url, outcome)
        if outcome.error in _REJECTED_TOKEN_ERRORS:
            return _fail(
                name,
                f"Slack rejected SLACK_BOT_TOKEN ({outcome.error})",
                "copy the Bot User OAuth Token (xoxb-…) from OAuth & Permissions into "
                "SLACK_BOT_TOKEN; reinstall the app if it was uninstalled or the token revoked",
            )
        if outcome.error == "ratelimited":
            return _fail(name, "Slack rate-limited auth.test", "run `roombot check` again shortly")
        return _fail(
            name,
            f"auth.test failed: {outcome.error}",
            "see https://docs.slack.dev/reference/methods/auth.test for what it means",
        )
    data = outcome.data if isinstance(outcome.data, dict) else {}
    bot = f"@{data.get('user', '?')} ({data.get('user_id', '?')})"
    team = f"{data.get('team', '?')} ({data.get('team_id', '?')})"
    return _ok(name, f"auth.test OK: bot {bot} in workspace {team}")


def granted_scopes(response: AsyncSlackResponse) -> tuple[str, ...] | None:
    """The scopes Slack reports for the calling token (`x-oauth-scopes`), or None if absent."""
    headers: Mapping[str, Any] = response.headers or {}
    for key, value in headers.items():
        if key.lower() == _SCOPES_HEADER:
            return tuple(scope.strip() for scope in str(value).split(",") if scope.strip())
    return None


def scopes_result(granted: Iterable[str] | None) -> CheckResult:
    """The `slack scopes` check: does the bot token have every scope the manifest asks for?"""
    name = "slack scopes"
    if granted is None:
        return _warn(
            name,
            "Slack did not say which scopes the token has (no x-oauth-scopes header)",
            f"make sure OAuth & Permissions lists {', '.join(REQUIRED_BOT_SCOPES)}",
        )
    have = set(granted)
    missing = [scope for scope in REQUIRED_BOT_SCOPES if scope not in have]
    if missing:
        noun = "scope" if len(missing) == 1 else "scopes"
        verb = "it" if len(missing) == 1 else "them"
        return _fail(
            name,
            f"missing {noun} {', '.join(missing)}",
            f"add {verb} under OAuth & Permissions and reinstall the app",
        )
    return _ok(name, f"all {len(REQUIRED_BOT_SCOPES)} scopes the manifest asks for are granted")


def app_token_result(outcome: SlackOutcome, api_url: str) -> CheckResult:
    """The `socket mode` check from `apps.connections.open`'s outcome."""
    name = "socket mode"
    how_to_fix = (
        "create an app-level token with the connections:write scope (Basic Information → "
        "App-Level Tokens) and put it in SLACK_APP_TOKEN"
    )
    if isinstance(outcome, SlackFailure):
        if not outcome.error:
            return _no_answer(name, api_url, outcome)
        if outcome.error in _REJECTED_TOKEN_ERRORS:
            return _fail(name, f"Slack rejected SLACK_APP_TOKEN ({outcome.error})", how_to_fix)
        if outcome.error == "not_allowed_token_type":
            return _fail(name, "SLACK_APP_TOKEN is not an app-level token", how_to_fix)
        if outcome.error == "missing_scope":
            return _fail(
                name,
                f"SLACK_APP_TOKEN lacks the {outcome.needed or 'connections:write'} scope",
                how_to_fix,
            )
        return _fail(
            name,
            f"apps.connections.open failed: {outcome.error}",
            "turn Socket Mode on under Settings → Socket Mode, or unset SLACK_APP_TOKEN "
            "to serve HTTP",
        )
    return _ok(name, "SLACK_APP_TOKEN works: Slack issued a Socket Mode URL (not connected)")


def http_mode_result(settings: Settings) -> CheckResult:
    """The `socket mode` check when there is no SLACK_APP_TOKEN: HTTP mode needs a signing
    secret, or `roombot serve` cannot start at all."""
    name = "socket mode"
    if settings.slack_signing_secret is not None:
        return _ok(
            name,
            "not used: SLACK_APP_TOKEN not set, so `roombot serve` serves HTTP "
            "(SLACK_SIGNING_SECRET is set)",
        )
    return _fail(
        name,
        "skipped: SLACK_APP_TOKEN not set, and HTTP mode needs SLACK_SIGNING_SECRET (also not set)",
        "set SLACK_APP_TOKEN (an app-level token with connections:write) for Socket Mode, or "
        "SLACK_SIGNING_SECRET (Basic Information → Signing Secret) for HTTP mode",
    )


def usergroup_result(group_id: str, outcome: SlackOutcome, api_url: str) -> CheckResult:
    """One user group named by the policy, from `usergroups.users.list`'s outcome."""
    name = "user groups"
    if isinstance(outcome, SlackFailure):
        if not outcome.error:
            return _no_answer(name, api_url, outcome)
        if outcome.error == "no_such_subteam":
            return _fail(
                name,
                f"{group_id}: no such user group in this workspace",
                "fix the ID in the policy file (a user group's ID starts with S; "
                "copy it from the group's page in Slack)",
            )
        if outcome.error == "missing_scope":
            return _warn(name, f"{group_id}: not checked, the token lacks usergroups:read")
        if outcome.error == "plan_upgrade_required":
            return _fail(
                name,
                f"{group_id}: this Slack plan has no user groups",
                "grant verbs to users instead of usergroups in the policy file",
            )
        return _fail(
            name,
            f"{group_id}: usergroups.users.list failed: {outcome.error}",
            "see https://docs.slack.dev/reference/methods/usergroups.users.list",
        )
    data = outcome.data if isinstance(outcome.data, dict) else {}
    count = len(data.get("users") or [])
    if count == 0:
        return _warn(
            name,
            f"{group_id} has no members, so its roles grant nobody anything",
            "add people to the group in Slack, or remove it from the policy file",
        )
    return _ok(name, f"{group_id} resolves ({count} member{'s' if count != 1 else ''})")


async def check_slack(
    loaded: LoadedSettings, policy: Policy | None, *, timeout_s: float = CHECK_TIMEOUT_S
) -> tuple[list[CheckResult], list[CheckResult]]:
    """The `slack token` and `slack scopes` results, and one result per user group the policy
    names (checked only once the token works)."""
    settings = _usable(loaded, ("SLACK_BOT_TOKEN", "SLACK_API_URL"))
    groups = sorted({group for role in policy.roles for group in role.usergroups}) if policy else []
    if isinstance(settings, str):
        tail = [_warn("user groups", settings)] if groups else []
        return [_warn("slack token", settings), _warn("slack scopes", settings)], tail
    if settings.slack_bot_token is None:
        not_set = _fail(
            "slack token",
            "skipped: SLACK_BOT_TOKEN not set",
            "copy the Bot User OAuth Token (xoxb-…) from OAuth & Permissions into SLACK_BOT_TOKEN",
        )
        waiting = "skipped: needs SLACK_BOT_TOKEN"
        tail = [_warn("user groups", waiting)] if groups else []
        return [not_set, _warn("slack scopes", waiting)], tail
    client = _slack_client(settings, timeout_s)
    api_url = settings.slack_api_url
    outcome = await _call_slack(client.auth_test, timeout_s)
    token = bot_token_result(outcome, api_url)
    if isinstance(outcome, SlackFailure):
        waiting = "skipped: needs a working SLACK_BOT_TOKEN"
        tail = [_warn("user groups", waiting)] if groups else []
        return [token, _warn("slack scopes", waiting)], tail
    scopes = scopes_result(granted_scopes(outcome))
    outcomes = await asyncio.gather(*(_group_members(client, g, timeout_s) for g in groups))
    tail = [usergroup_result(g, o, api_url) for g, o in zip(groups, outcomes, strict=True)]
    return [token, scopes], tail


async def _group_members(client: AsyncWebClient, group_id: str, timeout_s: float) -> SlackOutcome:
    return await _call_slack(lambda: client.usergroups_users_list(usergroup=group_id), timeout_s)


async def check_socket_mode(
    loaded: LoadedSettings, *, timeout_s: float = CHECK_TIMEOUT_S
) -> CheckResult:
    """The `socket mode` check: `apps.connections.open` with SLACK_APP_TOKEN (the URL is not
    used, so no connection is kept), or whether HTTP mode is possible without it."""
    settings = _usable(loaded, ("SLACK_APP_TOKEN", "SLACK_API_URL"))
    if isinstance(settings, str):
        return _warn("socket mode", settings)
    if settings.slack_app_token is None:
        return http_mode_result(settings)
    app_token = settings.slack_app_token.get_secret_value()
    client = AsyncWebClient(base_url=settings.slack_api_url, timeout=max(1, round(timeout_s)))
    outcome = await _call_slack(
        lambda: client.apps_connections_open(app_token=app_token), timeout_s
    )
    return app_token_result(outcome, settings.slack_api_url)


# -- Tencent ------------------------------------------------------------------------------------


def tencent_result(
    outcome: RoomEngineError | None, *, base_url: str, sdkappid: int, admin_id: str
) -> CheckResult:
    """The `tencent` check from the probe's outcome (None: the probe room exists, also fine)."""
    name = "tencent"
    if outcome is None or (isinstance(outcome, ApiError) and outcome.code == _ROOM_NOT_FOUND):
        return _ok(
            name,
            f"{base_url} accepted SDKAppID {sdkappid} and the UserSig for {admin_id} "
            f"(probe room {'exists' if outcome is None else 'not found, as expected'})",
        )
    if isinstance(outcome, ApiError):
        info = _shortened(outcome.info)
        what = "refused the credentials" if 70000 <= outcome.code <= 79999 else "answered"
        return _fail(
            name,
            f"{base_url} {what}: error {outcome.code}{f' ({info})' if info else ''}",
            outcome.hint,
        )
    if isinstance(outcome, RequestTimeout) or (
        isinstance(outcome, TransportError) and outcome.status is None
    ):
        return _fail(
            name,
            f"cannot reach {base_url} ({_transport_detail(outcome)})",
            "check TENCENT_REGION / TENCENT_API_URL and outbound HTTPS",
        )
    if isinstance(outcome, TransportError):
        return _fail(name, f"{base_url} answered HTTP {outcome.status}", outcome.hint)
    if isinstance(outcome, MalformedResponse):
        return _fail(name, f"{base_url} did not answer like Room Engine", outcome.hint)
    return _fail(name, f"{base_url}: {outcome.message}", outcome.hint)


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
    settings = _usable(loaded, variables)
    if isinstance(settings, str):
        return _warn("tencent", settings)
    missing = [
        name
        for name, value in (
            ("TENCENT_SDKAPPID", settings.tencent_sdkappid),
            ("TENCENT_SECRET_KEY", settings.tencent_secret_key),
        )
        if value is None
    ]
    if missing:
        return _fail(
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
    from bot.service import load_policy

    settings = _usable(loaded, ("ROOMBOT_ALLOWED_USERS", "ROOMBOT_POLICY_FILE"))
    if isinstance(settings, str):
        return _warn("policy", settings), None
    try:
        policy = load_policy(settings)
    except PolicyError as exc:
        return (
            _fail(
                "policy",
                str(exc),
                "correct the policy file (ROOMBOT_POLICY_FILE); the README shows its format",
            ),
            None,
        )
    return policy_result(policy, settings.roombot_policy_file), policy


async def check_audit(loaded: LoadedSettings) -> CheckResult:
    """The audit store opens (an existing file is opened read-only, so a running bot's in-flight
    rows are left alone); a missing file needs a writable directory, where `serve` creates it."""
    from bot.audit import AuditError, AuditStore

    settings = _usable(loaded, ("ROOMBOT_AUDIT_DB",))
    if isinstance(settings, str):
        return _warn("audit trail", settings)
    path = settings.roombot_audit_db
    if not isinstance(path, Path):  # a PostgreSQL URL: the core check covers it
        from bot.audit.health import Health, check_database

        health = await check_database(path)
        if health.status is Health.FAIL:
            fix = "check ROOMBOT_AUDIT_DB's URL, that the server is up and the user may write"
            return _fail("audit trail", health.detail, fix)
        if health.status is Health.WARN:
            return _warn("audit trail", health.detail)
        return _ok("audit trail", health.detail)
    fix = "set ROOMBOT_AUDIT_DB to a file in a directory roombot can write, on persistent storage"
    if not path.exists():
        directory = path.parent if str(path.parent) else Path(".")
        if directory.is_dir() and os.access(directory, os.W_OK):
            return _ok("audit trail", f"{path} will be created at the first start")
        return _fail(
            "audit trail", f"cannot create {path}: {directory} is not a writable directory", fix
        )
    try:
        store = await AuditStore.open(path, read_only=True)
    except AuditError as exc:
        return _fail("audit trail", f"cannot open {path}: {exc}", fix)
    await store.close()
    if not os.access(path, os.W_OK):
        return _fail("audit trail", f"{path} is not writable", fix)
    return _ok("audit trail", f"{path} opens and is writable")


def policy_result(policy: Policy, policy_file: Path | None) -> CheckResult:
    """✓ with who may do what (`Policy.describe()`), or a warning when nobody may do anything."""
    if policy.is_empty:
        return _warn(
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
    return _ok("policy", f"valid: {' and '.join(sources)}", notes=policy.describe())


# -- running and reporting ----------------------------------------------------------------------


async def run_checks(
    *, env_file: Path | str | None = ".env", timeout_s: float = CHECK_TIMEOUT_S
) -> list[CheckResult]:
    """Run every check (network checks concurrently) and return the results in report order."""
    loaded = load_settings_leniently(env_file)
    policy_check, policy = check_policy(loaded)
    slack_outcome, socket_outcome, tencent_outcome, audit_outcome = await asyncio.gather(
        check_slack(loaded, policy, timeout_s=timeout_s),
        check_socket_mode(loaded, timeout_s=timeout_s),
        check_tencent(loaded, timeout_s=timeout_s),
        check_audit(loaded),
        return_exceptions=True,
    )
    slack, groups = (
        ([_crashed("slack token", slack_outcome)], [])
        if isinstance(slack_outcome, BaseException)
        else slack_outcome
    )
    socket_mode = (
        _crashed("socket mode", socket_outcome)
        if isinstance(socket_outcome, BaseException)
        else socket_outcome
    )
    tencent = (
        _crashed("tencent", tencent_outcome)
        if isinstance(tencent_outcome, BaseException)
        else tencent_outcome
    )
    audit = (
        _crashed("audit trail", audit_outcome)
        if isinstance(audit_outcome, BaseException)
        else audit_outcome
    )
    results = [
        *settings_results(loaded, env_file),
        *slack,
        socket_mode,
        tencent,
        policy_check,
        *groups,
        audit,
    ]
    secrets = _secret_values(loaded.settings, env_file)
    return [scrub(result, secrets) for result in results]


def _crashed(name: str, error: BaseException) -> CheckResult:
    """A check that broke in an unforeseen way: one failed line, not a traceback. Only the
    exception's type is shown (its text could quote a secret); debug logging has the rest."""
    if not isinstance(error, Exception):
        raise error  # cancellation and interrupts are not results
    log.debug("check %r failed unexpectedly", name, exc_info=error)
    return _fail(
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
