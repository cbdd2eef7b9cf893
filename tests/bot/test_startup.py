"""`bot.startup`: every problem of `serve`'s configuration at once, the port, binding it."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from bot.startup import (
    DEFAULT_PORT,
    ServePlan,
    StartupProblems,
    bind,
    prepare_serve,
    report_problems,
    resolve_port,
)

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
BOT_TOKEN = "xoxb-111-222-startupsecret"
COMPLETE = {
    "SLACK_BOT_TOKEN": BOT_TOKEN,
    "SLACK_SIGNING_SECRET": "startup-signing-secret",
    "TENCENT_SDKAPPID": "1400000000",
    "TENCENT_SECRET_KEY": KEY,
}


@pytest.mark.parametrize(
    ("arg", "env", "expected"),
    [
        (None, None, (DEFAULT_PORT, "default")),
        (None, "", (DEFAULT_PORT, "default")),
        (None, "8080", (8080, "PORT")),
        ("0", "8080", (0, "--port")),
        ("65535", None, (65535, "--port")),
        ("65536", None, "--port: must be a port number from 0 to 65535, got '65536'"),
        ("-1", None, "--port: must be a port number from 0 to 65535, got '-1'"),
        (None, "abc", "PORT: must be a port number from 0 to 65535, got 'abc'"),
        (None, "３０００", "PORT: must be a port number from 0 to 65535, got '３０００'"),
    ],
)
def test_resolve_port(arg: str | None, env: str | None, expected: object) -> None:
    assert resolve_port(arg, env) == expected


def test_a_complete_configuration_gives_a_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in COMPLETE.items():
        monkeypatch.setenv(name, value)
    plan = prepare_serve(http=False, port_arg=None, env_file=None)
    assert isinstance(plan, ServePlan)
    assert (plan.socket_mode, plan.port, plan.port_source) == (False, DEFAULT_PORT, "default")


def test_every_problem_is_reported_at_once_without_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TENCENT_SDKAPPID", KEY)  # the key pasted in the wrong place
    monkeypatch.setenv("TENCENT_REGION", "mars")
    monkeypatch.setenv("ROOMBOT_ALLOWED_USERS", BOT_TOKEN)
    monkeypatch.setenv("ROOMBOT_RATE_LIMIT", "999")
    monkeypatch.setenv("PORT", "abc")
    problems = prepare_serve(http=True, port_arg=None, env_file=None)
    assert isinstance(problems, StartupProblems)
    named = [line.split(":", 1)[0].split(" ", 1)[0] for line in problems.lines]
    assert sorted(named) == sorted(
        [
            "TENCENT_SDKAPPID",
            "TENCENT_REGION",
            "ROOMBOT_ALLOWED_USERS",
            "ROOMBOT_RATE_LIMIT",
            "SLACK_BOT_TOKEN",
            "SLACK_SIGNING_SECRET",
            "TENCENT_SECRET_KEY",
            "PORT",
        ]
    )
    text = "\n".join(problems.lines)
    assert KEY not in text
    assert BOT_TOKEN not in text
    assert "xoxb-111" not in text
    assert all("\n" not in line for line in problems.lines)


def test_socket_mode_needs_no_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A1-startup")
    problems = prepare_serve(http=False, port_arg=None, env_file=None)
    assert isinstance(problems, StartupProblems)
    assert not any("SLACK_SIGNING_SECRET" in line for line in problems.lines)
    forced = prepare_serve(http=True, port_arg=None, env_file=None)
    assert isinstance(forced, StartupProblems)
    assert any("SLACK_SIGNING_SECRET" in line for line in forced.lines)


def test_a_broken_policy_file_is_one_of_the_problems(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[roles.ops]\nverbs = [\n", encoding="utf-8")
    monkeypatch.setenv("ROOMBOT_POLICY_FILE", str(policy))
    problems = prepare_serve(http=True, port_arg="70000", env_file=None)
    assert isinstance(problems, StartupProblems)
    assert any(str(policy) in line for line in problems.lines)
    assert problems.lines[-1].startswith("--port:")


def test_the_log_format_of_the_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMBOT_LOG_FORMAT", "json")
    problems = prepare_serve(http=True, port_arg=None, env_file=None)
    assert isinstance(problems, StartupProblems)
    assert problems.log_format == "json"


def test_report_problems_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    report_problems(["A: one", "B: two"])
    assert capsys.readouterr().err.splitlines() == [
        "roombot serve: A: one",
        "roombot serve: B: two",
    ]
    report_problems(["A: one"], fmt="json")
    [line] = capsys.readouterr().err.splitlines()
    data = json.loads(line)
    assert (data["level"], data["message"]) == ("ERROR", "roombot serve: A: one")


def test_bind_a_free_port_without_listening() -> None:
    sock = bind("127.0.0.1", 0)
    assert isinstance(sock, socket.socket)
    with sock:
        port = sock.getsockname()[1]
        with socket.socket() as client, pytest.raises(ConnectionRefusedError):
            client.connect(("127.0.0.1", port))  # nobody may connect before the bot is ready


def test_bind_a_busy_port_says_so_in_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert bind("127.0.0.1", port, "PORT") == (
            f"PORT {port}: 127.0.0.1:{port} is already in use (is another roombot running?)"
        )


def test_bind_a_bad_host() -> None:
    problem = bind("no-such-host.invalid", 0)
    assert isinstance(problem, str)
    assert problem.startswith("--host: cannot listen on 'no-such-host.invalid'")
