"""`roombot console`: a scripted session against the embedded emulator and against a configured
Room Engine, identity and confirmation rules, and the exit status runbooks rely on."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from bot.tencent.emulator import RoomEngineEmulator

#: Each test runs `roombot console` as a real process.
pytestmark = pytest.mark.slow

KEY = "c0ffee" * 10 + "abcd"


def _env(**extra: str) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
    }
    return {**base, **extra}


async def _console(
    tmp_path: Path, script: str, *args: str, **env: str
) -> tuple[int, list[str], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "console",
        *args,
        env=_env(**env),
        cwd=tmp_path,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(script.encode()), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines(), err.decode()


async def test_embedded_emulator_session_shows_what_the_bot_would_post(tmp_path: Path) -> None:
    code, lines, err = await _console(
        tmp_path,
        "/room mute-all room-test --reason drill\n"
        "show room-test\n# a comment\n\nhistory room-test\n",
    )
    assert code == 0, err
    assert lines[0].startswith(
        "roombot console — talking to embedded Room Engine emulator at http://127.0.0.1:"
    )
    assert "SDKAppID 1400000000" in lines[0]
    assert "local operator" in lines[1]
    text = "\n".join(lines)
    assert "U0OPERATOR ran /room mute-all on 1 room: room-test" in text
    assert "Reason: drill" in text
    assert "✅ room-test — audio muted · RequestId Id-" in text
    assert "✅ done: 1/1 room changed" in text
    assert "audio ⛔ muted" in text
    assert "Last 1 audit entries for room-test" in text
    # The terminal gets plain text: no mrkdwn, no Slack markup, no Slack-only phrases.
    answers = "\n".join(lines[2:])  # the banner names TENCENT_*, which is no markup
    for markup in ("`", "<@", "*", "&lt;", "invite", "Undo"):
        assert markup not in answers, markup
    assert (tmp_path / "roombot-audit.sqlite3").exists()  # the same audit trail as Slack


async def test_a_failed_line_makes_the_exit_status_non_zero(tmp_path: Path) -> None:
    code, lines, _err = await _console(tmp_path, "mute-all ghost-room\nunmute-all room-test\n")
    assert code == 1
    text = "\n".join(lines)
    assert "❌ ghost-room — error 100004" in text
    assert "check the ID" in text
    assert "✅ room-test — audio unmuted" in text  # later lines still run


async def test_parse_errors_fail_and_call_nothing(tmp_path: Path) -> None:
    code, lines, _err = await _console(tmp_path, "frobnicate room-test\n")
    assert code == 1
    assert any("unknown command 'frobnicate'" in line for line in lines)


async def test_as_user_applies_the_policy(tmp_path: Path) -> None:
    code, lines, _err = await _console(
        tmp_path, "mute-all room-test\n", "--as", "U0MALLORY", ROOMBOT_ALLOWED_USERS="U0ALICE01"
    )
    assert code == 1
    assert "Acting as Slack user U0MALLORY" in lines[1]
    assert any("not allowed" in line and "U0MALLORY" in line for line in lines)
    code, _lines, _err = await _console(
        tmp_path, "mute-all room-test\n", "--as", "U0ALICE01", ROOMBOT_ALLOWED_USERS="U0ALICE01"
    )
    assert code == 0


async def test_high_impact_lines_need_yes_when_scripted(tmp_path: Path) -> None:
    code, lines, _err = await _console(tmp_path, "lockdown room-test\n")
    assert code == 1
    assert any("Not confirmed: nothing was done" in line for line in lines)
    assert not any("done: 1/1" in line for line in lines)
    code, lines, _err = await _console(tmp_path, "lockdown room-test\n", "--yes")
    assert code == 0
    assert any("✅ done: 1/1 room changed" in line for line in lines)


async def test_configured_tencent_is_used_and_named_on_the_first_line(tmp_path: Path) -> None:
    emulator = RoomEngineEmulator(sdkappid=1400000777, secret_key=KEY, rooms=["prod-room"])
    await emulator.start()
    try:
        code, lines, err = await _console(
            tmp_path,
            "disable-chat prod-room\n",
            TENCENT_SDKAPPID="1400000777",
            TENCENT_SECRET_KEY=KEY,
            TENCENT_API_URL=emulator.base_url,
        )
    finally:
        await emulator.stop()
    assert code == 0, err
    assert lines[0].startswith(f"roombot console — talking to Room Engine at {emulator.base_url}")
    assert "SDKAppID 1400000777" in lines[0]
    assert "REAL rooms" in lines[0]
    assert emulator.rooms["prod-room"]["IsMessageDisabled"] is True
    assert KEY not in "\n".join(lines) + err


async def test_bad_as_value_is_a_usage_error(tmp_path: Path) -> None:
    code, _lines, err = await _console(tmp_path, "", "--as", "alice")
    assert code == 2
    assert err.strip().splitlines() == [
        "roombot console: --as: malformed Slack user ID 'alice' (expected e.g. U012ABCDEF)"
    ]


async def test_a_no_op_is_counted_as_already_so(tmp_path: Path) -> None:
    """#12.2: the console counts "already so" apart from "changed"."""
    code, lines, err = await _console(tmp_path, "mute-all room-test\nmute-all room-test\n")
    assert code == 0, err
    finals = [line for line in lines if line.startswith("✅ done")]
    assert finals == ["✅ done: 1/1 room changed", "✅ done: 1/1 room already so, nothing changed"]
    assert any("it already was, nothing changed" in line for line in lines)
