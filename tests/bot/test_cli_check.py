"""`roombot check` end to end: the real command against a fake Slack and the Room Engine emulator,
both on 127.0.0.1, configured only through environment variables (and a `.env` file)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli import main, run_all_checks
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from testkit import (
    BOT_USER_ID,
    MANIFEST_BOT_SCOPES,
    TEAM_DOMAIN,
    TEAM_ID,
    FakeSlack,
    FakeSocketMode,
)

#: `roombot check` against real servers on loopback, some as a real process.
pytestmark = pytest.mark.slow

SDKAPPID = 1400000042
SECRET_KEY = "check0test0secret0key0" + "7" * 42
BOT_TOKEN = "xoxb-check-bot-token-0123456789"
APP_TOKEN = "xapp-1-check-app-token-0123456789"
SIGNING_SECRET = "check-signing-secret-abcdef0123456789"
ALICE = "U0ALICE01"
SECRETS = (SECRET_KEY, BOT_TOKEN, APP_TOKEN, SIGNING_SECRET)


@dataclass
class Deployment:
    """What `roombot check` talks to, and the environment that points it there."""

    slack: FakeSlack
    socket_mode: FakeSocketMode
    emulator: RoomEngineEmulator
    monkeypatch: pytest.MonkeyPatch

    def configure(self, **overrides: str | None) -> None:
        """A correct deployment's environment, with `overrides` (None unsets a variable)."""
        env: dict[str, str | None] = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "TENCENT_SDKAPPID": str(SDKAPPID),
            "TENCENT_SECRET_KEY": SECRET_KEY,
            "TENCENT_API_URL": self.emulator.base_url,
            "ROOMBOT_ALLOWED_USERS": ALICE,
            **overrides,
        }
        for name, value in env.items():
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)


@pytest.fixture
async def deployment(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployment]:
    async with (
        FakeSocketMode() as socket_mode,
        FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack,
        RoomEngineEmulator(sdkappid=SDKAPPID, secret_key=SECRET_KEY) as emulator,
    ):
        slack.attach_socket_mode(socket_mode)
        yield Deployment(slack, socket_mode, emulator, monkeypatch)


async def run_check(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`roombot check` as the console script runs it; its own event loop, so in a thread."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["check"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def line(output: str, name: str) -> str:
    """The report line of check `name` (exactly one)."""
    found = [text for text in output.splitlines() if text[2:].startswith(f"{name} ")]
    assert len(found) == 1, output
    return found[0]


def fix_of(output: str, name: str) -> str:
    """The indented fix line under check `name`."""
    lines = output.splitlines()
    following = lines[lines.index(line(output, name)) + 1]
    assert following.startswith("    → "), output
    return following.removeprefix("    → ")


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, read back, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_no_secrets(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output


# -- a good deployment --------------------------------------------------------------------------


async def test_a_good_deployment_is_all_good(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.configure()
    code, out = await run_check(capsys)
    assert code == 0, out
    for name in ("settings", "slack token", "slack scopes", "socket mode", "tencent", "policy"):
        assert line(out, name).startswith("✓"), out
    assert f"({BOT_USER_ID}) in workspace {TEAM_DOMAIN} ({TEAM_ID})" in line(out, "slack token")
    assert f"SDKAppID {SDKAPPID}" in line(out, "tencent")
    assert deployment.emulator.base_url in line(out, "tencent")
    assert f"ROOMBOT_ALLOWED_USERS: user {ALICE} may run every verb" in out
    assert out.rstrip().endswith("all good")
    assert_no_secrets(out)


async def test_each_service_is_asked_once_and_no_socket_is_kept(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.configure()
    code, _ = await run_check(capsys)
    assert code == 0
    assert len(deployment.slack.calls_to("auth.test")) == 1
    assert len(deployment.slack.calls_to("apps.connections.open")) == 1
    # The connection URL was issued but never used: nothing connected, nothing left open.
    assert deployment.socket_mode.connections == 0
    assert deployment.socket_mode.received == []
    probes = [r for r in deployment.emulator.requests if r.command == "get_room_info"]
    assert len(probes) == 1
    assert probes[0].error_code == 100004
    assert deployment.emulator.rooms == {}  # the probe changed nothing


async def test_a_probe_room_that_exists_also_proves_the_credentials(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.emulator.add_room("roombot-check-probe")
    deployment.configure()
    code, out = await run_check(capsys)
    assert code == 0, out
    assert line(out, "tencent").startswith("✓")


async def test_http_mode_needs_no_app_token_but_a_signing_secret(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.configure(SLACK_APP_TOKEN=None)
    code, out = await run_check(capsys)
    assert code == 0, out
    assert line(out, "socket mode").startswith("✓")
    assert "serves HTTP" in line(out, "socket mode")
    assert deployment.slack.calls_to("apps.connections.open") == []

    deployment.configure(SLACK_APP_TOKEN=None, SLACK_SIGNING_SECRET=None)
    code, out = await run_check(capsys)
    assert code == 1
    assert line(out, "socket mode").startswith("✗")
    assert "SLACK_SIGNING_SECRET" in fix_of(out, "socket mode")


async def test_settings_from_a_dotenv_file(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deployment.configure(SLACK_BOT_TOKEN=None)
    (tmp_path / ".env").write_text(f"SLACK_BOT_TOKEN={BOT_TOKEN}\n", encoding="utf-8")
    code, out = await run_check(capsys)
    assert code == 0, out
    assert ".env" in line(out, "settings")
    assert line(out, "slack token").startswith("✓")


# -- Slack misconfigurations --------------------------------------------------------------------


async def test_a_missing_scope_is_named_with_how_to_add_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scopes = [s for s in MANIFEST_BOT_SCOPES if s != "usergroups:read"]
    async with (
        FakeSlack(bot_token=BOT_TOKEN, scopes=scopes) as slack,
        RoomEngineEmulator(sdkappid=SDKAPPID, secret_key=SECRET_KEY) as emulator,
    ):
        Deployment(slack, FakeSocketMode(), emulator, monkeypatch).configure(SLACK_APP_TOKEN=None)
        code, out = await run_check(capsys)
    assert code == 1
    assert line(out, "slack token").startswith("✓")
    assert line(out, "slack scopes").startswith("✗ slack scopes  missing scope usergroups:read")
    assert fix_of(out, "slack scopes") == ("add it under OAuth & Permissions and reinstall the app")
    assert out.rstrip().endswith("1 problem")


async def test_an_invalid_bot_token(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "xoxb-not-the-installed-token-42"
    deployment.configure(SLACK_BOT_TOKEN=wrong)
    code, out = await run_check(capsys)
    assert code == 1
    assert line(out, "slack token").startswith("✗")
    assert "invalid_auth" in line(out, "slack token")
    assert "Bot User OAuth Token" in fix_of(out, "slack token")
    assert line(out, "slack scopes").startswith("!")  # cannot be checked without a token
    assert line(out, "tencent").startswith("✓")  # the other checks still ran
    assert wrong not in out
    assert_no_secrets(out)


async def test_a_bad_app_token(deployment: Deployment, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = "xapp-1-revoked-app-token-99"
    deployment.configure(SLACK_APP_TOKEN=wrong)
    code, out = await run_check(capsys)
    assert code == 1
    assert line(out, "socket mode").startswith("✗")
    assert "Slack rejected SLACK_APP_TOKEN (invalid_auth)" in line(out, "socket mode")
    assert "connections:write" in fix_of(out, "socket mode")
    assert line(out, "slack token").startswith("✓")
    assert wrong not in out


async def test_slack_unreachable(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/"
    deployment.configure(SLACK_API_URL=url)
    code, out = await run_check(capsys)
    assert code == 1
    assert line(out, "slack token").startswith(f"✗ slack token   cannot reach {url}")
    assert fix_of(out, "slack token") == "check SLACK_API_URL"
    assert line(out, "socket mode").startswith("✗")
    assert line(out, "tencent").startswith("✓")


async def test_nothing_configured_is_one_skipped_problem_per_required_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = await run_check(capsys)
    assert code == 1
    assert line(out, "settings").startswith("✓")
    assert "skipped: SLACK_BOT_TOKEN not set" in line(out, "slack token")
    assert line(out, "slack token").startswith("✗")
    assert "skipped: TENCENT_SDKAPPID and TENCENT_SECRET_KEY not set" in line(out, "tencent")
    assert line(out, "socket mode").startswith("✗")
    assert line(out, "policy").startswith("!")
    assert out.rstrip().endswith("3 problems (2 warnings)")


# -- Tencent misconfigurations ------------------------------------------------------------------


async def test_a_wrong_secret_key_shows_the_code_and_its_hint(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "another0apps0secret0key0" + "1" * 40
    deployment.configure(TENCENT_SECRET_KEY=wrong)
    code, out = await run_check(capsys)
    assert code == 1
    assert line(out, "tencent").startswith("✗")
    assert "refused the credentials: error 70009" in line(out, "tencent")
    assert fix_of(out, "tencent") == (
        "the secret key belongs to another SDKAppID — check TENCENT_SECRET_KEY"
    )
    assert line(out, "slack token").startswith("✓")
    assert wrong not in out
    assert "usersig=" not in out.lower()


async def test_a_wrong_sdkappid(deployment: Deployment, capsys: pytest.CaptureFixture[str]) -> None:
    deployment.configure(TENCENT_SDKAPPID=str(SDKAPPID + 1))
    code, out = await run_check(capsys)
    assert code == 1
    assert "error 70020" in line(out, "tencent")
    assert "TENCENT_SDKAPPID" in fix_of(out, "tencent")


async def test_an_unreachable_endpoint(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    deployment.configure(TENCENT_API_URL=url)
    code, out = await run_check(capsys)
    assert code == 1
    assert line(out, "tencent").startswith(f"✗ tencent       cannot reach {url}")
    assert fix_of(out, "tencent") == "check TENCENT_REGION / TENCENT_API_URL and outbound HTTPS"
    assert line(out, "slack token").startswith("✓")


async def test_a_gateway_error_is_reported_with_its_hint(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.emulator.script("get_room_info", ["502"])
    deployment.configure()
    code, out = await run_check(capsys)
    assert code == 1
    assert "answered HTTP 502" in line(out, "tencent")
    assert "try again shortly" in fix_of(out, "tencent")
    assert len(deployment.emulator.requests) == 1  # check does not retry


async def test_a_silent_endpoint_is_given_up_on_after_the_timeout(
    deployment: Deployment,
) -> None:
    deployment.emulator.script("get_room_info", ["hang"])
    deployment.configure()
    results = await run_all_checks(timeout_s=0.5)
    tencent = next(r for r in results if r.name == "tencent")
    assert tencent.is_problem
    assert "cannot reach" in tencent.detail
    assert "0.5 s" in tencent.detail
    assert all(not r.is_problem for r in results if r.name != "tencent")


# -- the policy ---------------------------------------------------------------------------------


async def test_an_invalid_policy_file_fails_while_the_other_checks_run(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[roles.mods]\nverbs = ["mute-everything"]\nusers = ["U0BOB0001"]\n')
    deployment.configure(ROOMBOT_POLICY_FILE=str(policy))
    code, out = await run_check(capsys)
    assert code == 1
    assert line(out, "policy").startswith("✗")
    assert "roles.mods.verbs[0]" in line(out, "policy")
    assert "mute-everything" in line(out, "policy")
    assert "policy file" in fix_of(out, "policy")
    for name in ("slack token", "slack scopes", "socket mode", "tencent"):
        assert line(out, name).startswith("✓"), out


async def test_a_valid_policy_file_says_who_may_do_what(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[roles.mods]\nverbs = ["mute-all", "show"]\nusers = ["U0BOB0001"]\n'
        'channels = ["C0INCIDENT"]\n'
    )
    deployment.configure(ROOMBOT_POLICY_FILE=str(policy), ROOMBOT_ALLOWED_USERS=None)
    code, out = await run_check(capsys)
    assert code == 0, out
    assert "(1 role)" in line(out, "policy")
    assert "    role mods: user U0BOB0001 may run mute-all, show only in channel C0INCIDENT" in (
        out.splitlines()
    )
    assert "    everyone may run help" in out.splitlines()


async def test_the_approval_table_is_reported_and_its_mistakes_fail(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    role = '[roles.mods]\nverbs = ["mute-all", "show"]\nusers = ["U0BOB0001"]\n'
    policy.write_text(
        role + '[approval]\nverbs = ["mute-all"]\nabove_rooms = 20\napprovers = ["U0LEAD0001"]\n'
        'channel = "C0APPROVALS"\n'
    )
    deployment.configure(ROOMBOT_POLICY_FILE=str(policy), ROOMBOT_ALLOWED_USERS=None)
    code, out = await run_check(capsys)
    assert code == 0, out
    lines = out.splitlines()
    assert (
        "    approval: mute-all and any write on more than 20 rooms need(s) a second person: "
        "users U0LEAD0001"
    ) in lines
    assert (
        "    approval: requests wait 15m for an approver, then expire; also posted in C0APPROVALS"
    ) in lines
    policy.write_text(role + '[approval]\nverbs = ["mute-all"]\napprover = ["U0LEAD0001"]\n')
    code, out = await run_check(capsys)
    assert code == 1
    assert line(out, "policy").startswith("✗")
    assert "approval.approver: unknown key; did you mean 'approvers'?" in out
    assert "approval.approvers: empty or missing, so nobody could approve" in out


async def test_an_empty_policy_is_a_warning_not_a_problem(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.configure(ROOMBOT_ALLOWED_USERS=None)
    code, out = await run_check(capsys)
    assert code == 0, out
    assert line(out, "policy").startswith("! policy")
    assert "nobody may run" in line(out, "policy")
    assert "ROOMBOT_ALLOWED_USERS" in fix_of(out, "policy")
    assert out.rstrip().endswith("all good (1 warning)")


async def test_user_groups_the_policy_names_must_exist(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deployment.slack.usergroups = {"S0ONCALL1": ["U0BOB0001", "U0EVE0001"], "S0EMPTY01": []}
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[roles.oncall]\nverbs = ["*"]\nusergroups = ["S0ONCALL1", "S0TYPO001", "S0EMPTY01"]\n'
    )
    deployment.configure(ROOMBOT_POLICY_FILE=str(policy))
    code, out = await run_check(capsys)
    assert code == 1
    groups = [text for text in out.splitlines() if text[2:].startswith("user groups")]
    assert len(groups) == 3, out
    assert any(g.startswith("✓") and "S0ONCALL1 resolves (2 members)" in g for g in groups)
    assert any(g.startswith("✗") and "S0TYPO001: no such user group" in g for g in groups)
    assert any(g.startswith("!") and "S0EMPTY01 has no members" in g for g in groups)
    assert out.rstrip().endswith("1 problem (1 warning)")


# -- settings that do not parse -----------------------------------------------------------------


async def test_a_bad_region_is_one_line_and_the_other_checks_still_run(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.configure(TENCENT_REGION="mars", TENCENT_API_URL=None)
    code, out = await run_check(capsys)
    assert code == 1
    assert "Traceback" not in out
    settings_lines = [text for text in out.splitlines() if text[2:].startswith("settings")]
    assert len(settings_lines) == 1
    assert settings_lines[0].startswith("✗ settings")
    assert "TENCENT_REGION" in settings_lines[0]
    assert "'mars'" in settings_lines[0]
    assert "skipped: TENCENT_REGION is invalid" in line(out, "tencent")
    for name in ("slack token", "slack scopes", "socket mode", "policy"):
        assert line(out, name).startswith("✓"), out
    assert out.rstrip().endswith("1 problem (1 warning)")  # the region, counted once


async def test_a_bad_region_does_not_matter_when_the_api_url_is_set(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.configure(TENCENT_REGION="mars")
    code, out = await run_check(capsys)
    assert code == 1  # still a problem: the variable is wrong
    assert line(out, "tencent").startswith("✓")


async def test_several_bad_settings_are_each_named(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.configure(TENCENT_SDKAPPID="12ab", ROOMBOT_ALLOWED_USERS="alice", SLACK_API_URL="x")
    code, out = await run_check(capsys)
    assert code == 1
    text = "\n".join(t for t in out.splitlines() if t.startswith("✗ settings"))
    assert "TENCENT_SDKAPPID" in text
    assert "ROOMBOT_ALLOWED_USERS" in text
    assert "SLACK_API_URL" in text
    assert "skipped: TENCENT_SDKAPPID is invalid" in line(out, "tencent")
    assert "skipped: ROOMBOT_ALLOWED_USERS is invalid" in line(out, "policy")
    assert "skipped: SLACK_API_URL is invalid" in line(out, "slack token")


# -- secrets ------------------------------------------------------------------------------------


async def test_no_secret_appears_in_any_report(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Everything wrong at once: rejected tokens, a wrong key, and a secret in a malformed value.
    bad_bot = "xoxb-definitely-wrong-bot-token"
    bad_app = "xapp-definitely-wrong-app-token"
    bad_key = "definitely0wrong0secret0key"
    deployment.configure(
        SLACK_BOT_TOKEN=bad_bot, SLACK_APP_TOKEN=bad_app, TENCENT_SECRET_KEY=bad_key
    )
    code, out = await run_check(capsys)
    assert code == 1
    for secret in (*SECRETS, bad_bot, bad_app, bad_key):
        assert secret not in out

    misplaced = "xapp-1-pasted-into-the-bot-token-variable"
    (tmp_path / ".env").write_text(f"SLACK_BOT_TOKEN={misplaced}\n", encoding="utf-8")
    deployment.configure(SLACK_BOT_TOKEN=None)
    code, out = await run_check(capsys)
    assert code == 1
    assert "SLACK_BOT_TOKEN" in line(out, "settings")
    assert misplaced not in out
    assert_no_secrets(out)


async def test_a_check_that_breaks_is_one_failed_line_not_a_traceback(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: an error no check foresaw, whose text quotes a secret.
    async def broken(self: RoomEngineClient, room_id: str) -> None:
        raise RuntimeError(f"unforeseen, key={SECRET_KEY}")

    monkeypatch.setattr(RoomEngineClient, "get_room_info", broken)
    deployment.configure()
    code, out = await run_check(capsys)
    assert code == 1
    assert "Traceback" not in out
    assert line(out, "tencent") == (
        "✗ tencent       the check itself failed unexpectedly (RuntimeError)"
    )
    assert line(out, "slack token").startswith("✓")
    assert_no_secrets(out)


def test_the_console_script_reports_instead_of_crashing() -> None:
    # Nothing here reaches a network: the bad values make every network check skip.
    misplaced = "xoxb-pasted-into-the-app-token-variable"
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check"],
        capture_output=True,
        text=True,
        env={**base, "TENCENT_REGION": "mars", "SLACK_APP_TOKEN": misplaced},
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert (
        "✗ settings      SLACK_APP_TOKEN: must be an app-level token starting with 'xapp-'" in lines
    )
    assert any(
        text.startswith("✗ settings      TENCENT_REGION: unknown region 'mars'") for text in lines
    )
    assert "! socket mode   skipped: SLACK_APP_TOKEN is invalid (see above)" in lines
    assert lines[-1] == "3 problems (4 warnings)"
    assert misplaced not in result.stdout
