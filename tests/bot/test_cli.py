"""The `roombot` command line: help, subcommands, configuration errors as one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main

SUBCOMMANDS = ("serve", "console", "emulator", "parse", "check", "audit")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        check=False,
    )


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    assert f"usage: roombot {name}" in capsys.readouterr().out


def test_bad_region_makes_serve_exit_2_with_one_line() -> None:
    required = {
        "SLACK_BOT_TOKEN": "xoxb-cli-test",
        "SLACK_SIGNING_SECRET": "cli-test-signing-secret",
        "TENCENT_SDKAPPID": "1400000001",
        "TENCENT_SECRET_KEY": "cli-test-secret-key",
    }
    result = _run("serve", env={**required, "TENCENT_REGION": "mars"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "TENCENT_REGION" in lines[0]
    assert "mars" in lines[0]
    assert "Traceback" not in result.stderr


def test_python_dash_m_bot_works() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("roombot ")


# -- a partial Tencent configuration is an error, never a silent emulator (issue 27, item 12) -----


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"TENCENT_SDKAPPID": "1400000001"}, "TENCENT_SECRET_KEY"),
        ({"TENCENT_SECRET_KEY": "a-secret-key-0123456789"}, "TENCENT_SDKAPPID"),
        ({"TENCENT_API_URL": "http://127.0.0.1:9000"}, "TENCENT_SDKAPPID and TENCENT_SECRET_KEY"),
    ],
)
def test_the_console_refuses_a_partial_tencent_configuration(
    given: dict[str, str],
    missing: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    assert main(["console"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"roombot console: {missing} ")
    assert "embedded" in lines[0]  # and how to get the emulator instead
    assert "a-secret-key" not in captured.err + captured.out
    assert "talking to" not in captured.out  # no session was started


def test_serve_and_check_name_the_missing_tencent_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENCENT_SDKAPPID", "1400000001")
    assert main(["serve", "--http", "--port", "0"]) == 2
    assert "TENCENT_SECRET_KEY is required" in capsys.readouterr().err
    assert main(["check"]) == 1
    assert "TENCENT_SECRET_KEY not set" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("from_dotenv", [True, False])
def test_the_emulator_says_where_its_key_came_from(tmp_path: Path, from_dotenv: bool) -> None:
    import signal

    if from_dotenv:
        (tmp_path / ".env").write_text("TENCENT_SECRET_KEY=dotenv-secret-0123456789\n")
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=base,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Stop with"):
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    text = "\n".join(lines)
    [key_line] = [line for line in lines if line.startswith("  TENCENT_SECRET_KEY=")]
    if from_dotenv:
        assert "TENCENT_SECRET_KEY, read from .env" in key_line, text
        assert "dotenv-secret" not in text
    else:
        assert "generated for this run" in key_line, text


def _console(line: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "console", "--yes"],
        input=line + "\n",
        capture_output=True,
        text=True,
        env={
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
            },
            **env,
        },
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_the_console_logs_to_stderr_only_when_a_log_level_is_asked_for(tmp_path: Path) -> None:
    db = str(tmp_path / "audit.sqlite3")
    quiet = _console("mute-all town-hall", ROOMBOT_AUDIT_DB=db)
    assert quiet.returncode == 0, quiet.stderr
    assert "✅" in quiet.stdout
    assert quiet.stderr == ""
    loud = _console("unmute-all town-hall", ROOMBOT_AUDIT_DB=db, ROOMBOT_LOG_LEVEL="DEBUG")
    assert loud.returncode == 0, loud.stderr
    # The request's store transactions, as the write makes them (DESIGN §2.10).
    life = [
        line.rsplit("store transaction: ", 1)[1].split(" ", 1)[0]
        for line in loud.stderr.splitlines()
        if "store transaction: " in line
    ]
    assert [op for op in life if op != "find_work"] == [
        "claim_request",
        "begin_request",
        "complete_request",
        "finish_request",
    ]
    assert "request finished" in loud.stderr
