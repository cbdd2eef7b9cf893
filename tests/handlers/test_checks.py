"""`roombot check`'s Slack part (`handlers.checks`): what each Slack outcome becomes."""

from __future__ import annotations

import pytest

from bot.check import Status, load_settings_leniently
from handlers.checks import (
    REQUIRED_BOT_SCOPES,
    SlackFailure,
    app_token_result,
    bot_token_result,
    check_slack,
    scopes_result,
    usergroup_result,
)
from testkit import MANIFEST_BOT_SCOPES, FakeSlack

API = "https://slack.com/api/"


def test_required_scopes_are_the_manifests() -> None:
    # The runtime cannot read manifest.yml (an installed bot has none), so this keeps them equal.
    assert REQUIRED_BOT_SCOPES == MANIFEST_BOT_SCOPES


# -- Slack outcomes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "status", "detail"),
    [
        (MANIFEST_BOT_SCOPES, Status.OK, "all 6 scopes the manifest asks for are granted"),
        ((*MANIFEST_BOT_SCOPES, "channels:read"), Status.OK, "all 6 scopes"),
        (
            tuple(s for s in MANIFEST_BOT_SCOPES if s != "files:write"),
            Status.FAIL,
            "missing scope files:write",
        ),
        (("commands", "chat:write"), Status.FAIL, "missing scopes chat:write.public, app_mentions"),
        ((), Status.FAIL, "missing scopes commands, chat:write"),
        (None, Status.WARN, "no x-oauth-scopes header"),
    ],
)
def test_scopes(granted: tuple[str, ...] | None, status: Status, detail: str) -> None:
    result = scopes_result(granted)
    assert result.status is status
    assert detail in result.detail


def test_missing_scopes_say_how_to_add_them() -> None:
    result = scopes_result(("commands",))
    assert result.fix == "add them under OAuth & Permissions and reinstall the app"


@pytest.mark.parametrize("error", ["invalid_auth", "not_authed", "token_revoked"])
def test_a_rejected_bot_token(error: str) -> None:
    result = bot_token_result(SlackFailure(error), API)
    assert result.status is Status.FAIL
    assert result.detail == f"Slack rejected SLACK_BOT_TOKEN ({error})"
    assert result.fix is not None
    assert "Bot User OAuth Token" in result.fix


def test_other_slack_answers_are_named() -> None:
    assert "rate-limited" in bot_token_result(SlackFailure("ratelimited"), API).detail
    odd = bot_token_result(SlackFailure("team_added_to_org"), API)
    assert odd.is_problem
    assert "team_added_to_org" in odd.detail


def test_an_unreachable_slack_points_at_the_right_setting() -> None:
    default = bot_token_result(SlackFailure("", "ClientConnectorError"), API)
    assert default.detail == f"cannot reach {API} (ClientConnectorError)"
    assert default.fix == "check outbound HTTPS to slack.com"
    custom = bot_token_result(SlackFailure("", "no answer within 10 s"), "http://x/api/")
    assert custom.fix == "check SLACK_API_URL"
    assert custom.name == "slack token"


@pytest.mark.parametrize(
    ("failure", "detail"),
    [
        (SlackFailure("invalid_auth"), "Slack rejected SLACK_APP_TOKEN (invalid_auth)"),
        (SlackFailure("not_allowed_token_type"), "SLACK_APP_TOKEN is not an app-level token"),
        (
            SlackFailure("missing_scope", needed="connections:write"),
            "SLACK_APP_TOKEN lacks the connections:write scope",
        ),
        (SlackFailure("socket_mode_not_enabled"), "apps.connections.open failed"),
    ],
)
def test_app_token_failures(failure: SlackFailure, detail: str) -> None:
    result = app_token_result(failure, API)
    assert result.is_problem
    assert result.name == "socket mode"
    assert detail in result.detail
    assert result.fix


def test_user_group_failures() -> None:
    assert (
        "no such user group" in usergroup_result("S0X", SlackFailure("no_such_subteam"), API).detail
    )
    paid = usergroup_result("S0X", SlackFailure("plan_upgrade_required"), API)
    assert paid.is_problem
    assert "users instead of usergroups" in (paid.fix or "")
    # Already reported as a missing scope; not counted twice.
    assert usergroup_result("S0X", SlackFailure("missing_scope"), API).status is Status.WARN


async def test_a_slack_api_url_that_is_not_the_web_api(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeSlack() as slack:
        wrong = slack.api_url.replace("/api/", "/nothing/")  # the fake answers 404 there
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-any-token-1")
        monkeypatch.setenv("SLACK_API_URL", wrong)
        (token, scopes), groups = await check_slack(load_settings_leniently(), None, timeout_s=5)
    assert token.is_problem
    assert token.detail == f"{wrong} answered HTTP 404, not a Slack Web API answer"
    assert token.fix == "check SLACK_API_URL (default https://slack.com/api/)"
    assert scopes.status is Status.WARN
    assert groups == []


@pytest.mark.slow  # the real clock
async def test_a_rate_limited_auth_test_is_retried_then_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeSlack() as slack:
        slack.rate_limit("auth.test", retry_after=0, times=10)
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-any-token-1")
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        (token, _), _ = await check_slack(load_settings_leniently(), None, timeout_s=5)
    assert token.is_problem
    assert token.detail == "Slack rate-limited auth.test"
