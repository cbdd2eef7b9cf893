"""The `roombot` command line: help, subcommands, configuration errors as one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

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
