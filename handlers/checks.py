"""`roombot check`, Slack's part: the bot token, its scopes, Socket Mode and the user groups.

* slack token: `auth.test` accepts SLACK_BOT_TOKEN; slack scopes: the scopes Slack reports for it
  (the `x-oauth-scopes` header) include every one the manifest asks for (`REQUIRED_BOT_SCOPES`).
* socket mode: `apps.connections.open` accepts SLACK_APP_TOKEN (the URL it hands out is not
  used); without an app token, HTTP mode needs SLACK_SIGNING_SECRET.
* user groups: each user group the policy names resolves with `usergroups.users.list`.

`slack_checks()` runs them and returns a `bot.check.ChatChecks`; the composition root merges it
with the core's checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.check import (
    CHECK_TIMEOUT_S,
    ChatChecks,
    CheckResult,
    LoadedSettings,
    crashed,
    fail,
    ok,
    usable,
    warn,
)
from bot.config import DEFAULT_SLACK_API_URL, Settings
from bot.policy import Policy
from handlers.slack_client import build_slack_client

#: The bot token scopes manifest.yml asks for. Kept here because an installed roombot has no
#: manifest.yml to read; a test holds the two lists equal.
REQUIRED_BOT_SCOPES: Final = (
    "commands",
    "chat:write",
    "chat:write.public",
    "app_mentions:read",
    "usergroups:read",
    "files:write",
)


_SCOPES_HEADER: Final = "x-oauth-scopes"
_REJECTED_TOKEN_ERRORS: Final = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)


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
    client = build_slack_client(settings)
    client.timeout = max(1, round(timeout_s))
    return client


def _no_answer(name: str, api_url: str, failure: SlackFailure) -> CheckResult:
    """Check `name` failed because no Slack Web API answer came back from `api_url`."""
    if failure.detail.startswith("HTTP"):
        return fail(
            name,
            f"{api_url} answered {failure.detail}",
            f"check SLACK_API_URL (default {DEFAULT_SLACK_API_URL})",
        )
    where = "outbound HTTPS to slack.com" if api_url == DEFAULT_SLACK_API_URL else "SLACK_API_URL"
    return fail(name, f"cannot reach {api_url} ({failure.detail})", f"check {where}")


def bot_token_result(outcome: SlackOutcome, api_url: str) -> CheckResult:
    """The `slack token` check from `auth.test`'s outcome."""
    name = "slack token"
    if isinstance(outcome, SlackFailure):
        if not outcome.error:
            return _no_answer(name, api_url, outcome)
        if outcome.error in _REJECTED_TOKEN_ERRORS:
            return fail(
                name,
                f"Slack rejected SLACK_BOT_TOKEN ({outcome.error})",
                "copy the Bot User OAuth Token (xoxb-…) from OAuth & Permissions into "
                "SLACK_BOT_TOKEN; reinstall the app if it was uninstalled or the token revoked",
            )
        if outcome.error == "ratelimited":
            return fail(name, "Slack rate-limited auth.test", "run `roombot check` again shortly")
        return fail(
            name,
            f"auth.test failed: {outcome.error}",
            "see https://docs.slack.dev/reference/methods/auth.test for what it means",
        )
    data = outcome.data if isinstance(outcome.data, dict) else {}
    bot = f"@{data.get('user', '?')} ({data.get('user_id', '?')})"
    team = f"{data.get('team', '?')} ({data.get('team_id', '?')})"
    return ok(name, f"auth.test OK: bot {bot} in workspace {team}")


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
        return warn(
            name,
            "Slack did not say which scopes the token has (no x-oauth-scopes header)",
            f"make sure OAuth & Permissions lists {', '.join(REQUIRED_BOT_SCOPES)}",
        )
    have = set(granted)
    missing = [scope for scope in REQUIRED_BOT_SCOPES if scope not in have]
    if missing:
        noun = "scope" if len(missing) == 1 else "scopes"
        verb = "it" if len(missing) == 1 else "them"
        return fail(
            name,
            f"missing {noun} {', '.join(missing)}",
            f"add {verb} under OAuth & Permissions and reinstall the app",
        )
    return ok(name, f"all {len(REQUIRED_BOT_SCOPES)} scopes the manifest asks for are granted")


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
            return fail(name, f"Slack rejected SLACK_APP_TOKEN ({outcome.error})", how_to_fix)
        if outcome.error == "not_allowed_token_type":
            return fail(name, "SLACK_APP_TOKEN is not an app-level token", how_to_fix)
        if outcome.error == "missing_scope":
            return fail(
                name,
                f"SLACK_APP_TOKEN lacks the {outcome.needed or 'connections:write'} scope",
                how_to_fix,
            )
        return fail(
            name,
            f"apps.connections.open failed: {outcome.error}",
            "turn Socket Mode on under Settings → Socket Mode, or unset SLACK_APP_TOKEN "
            "to serve HTTP",
        )
    return ok(name, "SLACK_APP_TOKEN works: Slack issued a Socket Mode URL (not connected)")


def http_mode_result(settings: Settings) -> CheckResult:
    """The `socket mode` check when there is no SLACK_APP_TOKEN: HTTP mode needs a signing
    secret, or `roombot serve` cannot start at all."""
    name = "socket mode"
    if settings.slack_signing_secret is not None:
        return ok(
            name,
            "not used: SLACK_APP_TOKEN not set, so `roombot serve` serves HTTP "
            "(SLACK_SIGNING_SECRET is set)",
        )
    return fail(
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
            return fail(
                name,
                f"{group_id}: no such user group in this workspace",
                "fix the ID in the policy file (a user group's ID starts with S; "
                "copy it from the group's page in Slack)",
            )
        if outcome.error == "missing_scope":
            return warn(name, f"{group_id}: not checked, the token lacks usergroups:read")
        if outcome.error == "plan_upgrade_required":
            return fail(
                name,
                f"{group_id}: this Slack plan has no user groups",
                "grant verbs to users instead of usergroups in the policy file",
            )
        return fail(
            name,
            f"{group_id}: usergroups.users.list failed: {outcome.error}",
            "see https://docs.slack.dev/reference/methods/usergroups.users.list",
        )
    data = outcome.data if isinstance(outcome.data, dict) else {}
    count = len(data.get("users") or [])
    if count == 0:
        return warn(
            name,
            f"{group_id} has no members, so its roles grant nobody anything",
            "add people to the group in Slack, or remove it from the policy file",
        )
    return ok(name, f"{group_id} resolves ({count} member{'s' if count != 1 else ''})")


async def check_slack(
    loaded: LoadedSettings, policy: Policy | None, *, timeout_s: float = CHECK_TIMEOUT_S
) -> tuple[list[CheckResult], list[CheckResult]]:
    """The `slack token` and `slack scopes` results, and one result per user group the policy
    names (checked only once the token works)."""
    settings = usable(loaded, ("SLACK_BOT_TOKEN", "SLACK_API_URL"))
    groups = sorted(policy.usergroups) if policy else []
    if isinstance(settings, str):
        tail = [warn("user groups", settings)] if groups else []
        return [warn("slack token", settings), warn("slack scopes", settings)], tail
    if settings.slack_bot_token is None:
        not_set = fail(
            "slack token",
            "skipped: SLACK_BOT_TOKEN not set",
            "copy the Bot User OAuth Token (xoxb-…) from OAuth & Permissions into SLACK_BOT_TOKEN",
        )
        waiting = "skipped: needs SLACK_BOT_TOKEN"
        tail = [warn("user groups", waiting)] if groups else []
        return [not_set, warn("slack scopes", waiting)], tail
    client = _slack_client(settings, timeout_s)
    api_url = settings.slack_api_url
    outcome = await _call_slack(client.auth_test, timeout_s)
    token = bot_token_result(outcome, api_url)
    if isinstance(outcome, SlackFailure):
        waiting = "skipped: needs a working SLACK_BOT_TOKEN"
        tail = [warn("user groups", waiting)] if groups else []
        return [token, warn("slack scopes", waiting)], tail
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
    settings = usable(loaded, ("SLACK_APP_TOKEN", "SLACK_API_URL"))
    if isinstance(settings, str):
        return warn("socket mode", settings)
    if settings.slack_app_token is None:
        return http_mode_result(settings)
    app_token = settings.slack_app_token.get_secret_value()
    client = AsyncWebClient(base_url=settings.slack_api_url, timeout=max(1, round(timeout_s)))
    outcome = await _call_slack(
        lambda: client.apps_connections_open(app_token=app_token), timeout_s
    )
    return app_token_result(outcome, settings.slack_api_url)


async def slack_checks(
    loaded: LoadedSettings, policy: Policy | None, *, timeout_s: float = CHECK_TIMEOUT_S
) -> ChatChecks:
    """Every Slack check, concurrently; a check that breaks is one failed line."""
    slack, socket_mode = await asyncio.gather(
        check_slack(loaded, policy, timeout_s=timeout_s),
        check_socket_mode(loaded, timeout_s=timeout_s),
        return_exceptions=True,
    )
    connection, groups = (
        ([crashed("slack token", slack)], []) if isinstance(slack, BaseException) else slack
    )
    mode = (
        crashed("socket mode", socket_mode)
        if isinstance(socket_mode, BaseException)
        else socket_mode
    )
    return ChatChecks(connection=[*connection, mode], groups=groups)
