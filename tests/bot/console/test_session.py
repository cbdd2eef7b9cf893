"""`roombot console`: a scripted session against the embedded emulator and against a configured
Room Engine, identity and confirmation rules, and the exit status runbooks rely on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path
from typing import Final

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
    assert "Last audit entry for room-test:" in text
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
    assert "retry-failed" not in text  # no such room: trying again would not help (issue 27)
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


async def test_undo_and_retry_failed_work_like_the_buttons(tmp_path: Path) -> None:
    """#12.15: the console offers what Slack's buttons do, with the same checks."""
    code, lines, err = await _console(
        tmp_path,
        "disable-chat room-test\nundo\nundo\nmute-all room-test ghost-room\nretry-failed\n",
    )
    text = "\n".join(lines)
    assert "'undo' reverts it" in text
    assert "↩️ U0OPERATOR is undoing /room disable-chat on 1 room: room-test" in text
    assert "✅ room-test — chat enabled" in text
    assert "❌ this request was already undone" in text  # a second undo acts once
    # No such room: trying again would fail the same way, so it is not offered (issue 27).
    assert "retries the" not in text
    assert "nothing to retry: what failed was refused with error 100004" in text
    assert code == 1, err  # the second undo and ghost-room failed


async def test_retry_failed_runs_again_what_may_succeed(tmp_path: Path) -> None:
    emulator = RoomEngineEmulator(sdkappid=1400000777, secret_key=KEY, rooms=["prod-room"])
    await emulator.start()
    emulator.script("update_room_info", [100006])  # refused once, then fine
    try:
        code, lines, err = await _console(
            tmp_path,
            "mute-all prod-room\nretry-failed\n",
            TENCENT_SDKAPPID="1400000777",
            TENCENT_SECRET_KEY=KEY,
            TENCENT_API_URL=emulator.base_url,
        )
    finally:
        await emulator.stop()
    text = "\n".join(lines)
    assert "'retry-failed' retries the 1 that failed" in text, err
    assert "🔁 U0OPERATOR is retrying /room mute-all on 1 failed room: prod-room" in text
    assert emulator.rooms["prod-room"]["IsAudioDisabled"] is True
    assert code == 1  # the first line failed


async def test_a_named_request_can_be_undone_and_permissions_apply(tmp_path: Path) -> None:
    code, lines, _err = await _console(tmp_path, "mute-all room-test\n")
    assert code == 0
    key = next(line for line in lines if "(request " in line).split("request ")[1].split(":")[0]
    code, lines, _err = await _console(
        tmp_path, f"undo {key}\n", "--as", "U0MALLORY", ROOMBOT_ALLOWED_USERS="U0ALICE01"
    )
    assert code == 1
    assert any("may not undo this" in line for line in lines)
    code, lines, _err = await _console(tmp_path, f"undo {key}\n")
    assert code == 0
    assert any("audio unmuted" in line for line in lines)


async def test_the_demo_rooms_are_kept_between_runs(tmp_path: Path) -> None:
    """#12.15: `show` must not say "audio on" right after `history` showed a mute."""
    code, _lines, _err = await _console(
        tmp_path, "mute-all room-test\nban room-test dave --for 2h\n"
    )
    assert code == 0
    assert (tmp_path / "roombot-audit.demo-rooms.json").exists()
    code, lines, _err = await _console(tmp_path, "show room-test\nbanned room-test\n")
    assert code == 0
    text = "\n".join(lines)
    assert "kept from the last run" in lines[0]
    assert "audio ⛔ muted" in text
    assert "dave · until" in text


def test_ctrl_c_cancels_at_once_at_the_prompt_and_at_a_confirmation(tmp_path: Path) -> None:
    """#12.15: Ctrl-C must not wait for Enter (a real terminal: a pseudo-terminal)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: roombot console on the pseudo-terminal
        # As a terminal's shell starts it: a runner that started pytest in the background
        # (`cmd &` in a script) leaves SIGINT ignored, and an ignored SIGINT is inherited.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "bot", "console"], _env())  # noqa: S606
    terminal = _Terminal(fd)
    try:
        terminal.expect(b"/room ", timeout=30)
        os.write(fd, b"lockdown room-test\r")
        terminal.expect(b"Type yes to run it:", timeout=15)
        _interrupt(terminal, until=b"Not confirmed: nothing was done")  # Ctrl-C, and no Enter
        terminal.expect(b"/room ", timeout=10)
        time.sleep(0.3)
        os.write(fd, b"mute-all room-te")  # a half-typed line (seen on screen), then Ctrl-C
        terminal.expect(b"room-te", timeout=10)
        _interrupt(terminal, until=b"^C")
        terminal.expect(b"/room ", timeout=10)
        os.write(fd, b"\x04")  # Ctrl-D ends the session
        assert _exit_code(pid, timeout=15, terminal=terminal) in (0, 1)
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def test_destroy_at_a_terminal_takes_exactly_yes_or_the_room_id(tmp_path: Path) -> None:
    """Issue 27, item 8: the destroy prompt said "Type yes" but ran on `y`."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: roombot console on the pseudo-terminal
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "bot", "console"], _env())  # noqa: S606
    terminal = _Terminal(fd)
    try:
        terminal.expect(b"/room ", timeout=30)
        os.write(fd, b"destroy room-test\r")
        terminal.expect(b"cannot be undone", timeout=15)
        terminal.expect(b": ", timeout=5)
        os.write(fd, b"y\r")
        terminal.expect(b"Not confirmed", timeout=15)
        terminal.expect(b"nothing was done", timeout=5)
        terminal.expect(b"/room ", timeout=10)
        os.write(fd, b"show room-test\r")
        terminal.expect(b"audio on", timeout=15)  # still there
        terminal.expect(b"/room ", timeout=10)
        os.write(fd, b"destroy room-test\r")
        terminal.expect(b"cannot be undone", timeout=15)
        terminal.expect(b": ", timeout=5)
        os.write(fd, b"room-test\r")
        terminal.expect(b"room-test \xe2\x80\x94 room destroyed", timeout=15)
        terminal.expect(b"/room ", timeout=10)
        os.write(fd, b"\x04")
        assert _exit_code(pid, timeout=15, terminal=terminal) == 1  # the unconfirmed line
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def _interrupt(terminal: _Terminal, *, until: bytes, timeout: float = 15.0) -> None:
    """Press Ctrl-C (never Enter) until `until` shows: once, normally. CPython's readline loop
    notices a SIGINT that lands between showing its prompt and starting to wait for a key only
    at the next key or signal; a loaded machine can put the first press there, where a person
    would simply press again. A press while keys typed just before it are still unread is
    seen only at the next key (the terminal discards the unread keys, and readline then waits
    inside its own read, which retries after a signal), so the caller waits, as a person does,
    to see what was typed first. Each wait (3 s) is far longer than an answer takes, so a
    second press never lands on a request that is still being answered."""
    deadline = time.monotonic() + timeout
    while True:
        os.write(terminal.fd, b"\x03")
        left = deadline - time.monotonic()
        if terminal.seen(until, timeout=min(3.0, left)):
            return
        assert time.monotonic() < deadline, f"{until!r} not seen after Ctrl-C: {terminal.tail!r}"


def _exit_code(pid: int, *, timeout: float, terminal: _Terminal) -> int:
    """The child's exit code; fails (rather than hangs) if it has not ended within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)  # what it still writes (a line break) fits the terminal's buffer
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
    raise AssertionError(f"the console did not end after Ctrl-D: {terminal.tail!r}")


class _Terminal:
    """The parent side of a pseudo-terminal: wait for output, consuming it in order."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    @property
    def tail(self) -> bytes:
        """The last output not consumed yet (for failure messages)."""
        return self._buffer[-400:]

    def expect(self, wanted: bytes, *, timeout: float) -> None:
        """Wait until `wanted` appears after what earlier calls consumed; fail after `timeout`."""
        assert self.seen(wanted, timeout=timeout), (
            f"{wanted!r} not seen within {timeout}s; got {self.tail!r}"
        )

    def seen(self, wanted: bytes, *, timeout: float) -> bool:
        """Wait until `wanted` appears after what earlier calls consumed, and consume up to it;
        False (nothing consumed) if it has not within `timeout`."""
        deadline = time.monotonic() + timeout
        while wanted not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"the console ended before {wanted!r}: {self._buffer!r}")
            self._buffer += chunk
        self._buffer = self._buffer[self._buffer.index(wanted) + len(wanted) :]
        return True


def _readme_raid() -> list[str]:
    """The console page's transcript of a raid response (docs/console.md)."""
    page = Path(__file__).resolve().parents[3] / "docs" / "console.md"
    after = page.read_text(encoding="utf-8").split("A raid response, in the console", 1)[1]
    return after.split("```text\n", 1)[1].split("```", 1)[0].splitlines()


_VARIABLE: Final = (
    (re.compile(r"RequestId Id-\S+"), "RequestId Id-…"),
    (re.compile(r"request [0-9a-f]+…?:"), "request …:"),
    (re.compile(r"until \d{4}-\d\d-\d\d \d\d:\d\d UTC \([^)]*left\)"), "until … left"),
)


def _normal(line: str) -> str:
    for pattern, replacement in _VARIABLE:
        line = pattern.sub(replacement, line)
    return line


def _matches(shown: list[str], real: list[str]) -> bool:
    """`real` is what `shown` shows, where a line `  …` stands for any lines."""
    if not shown:
        return not real
    if shown[0].strip() == "…":
        return any(_matches(shown[1:], real[i:]) for i in range(len(real) + 1))
    return bool(real) and _normal(shown[0]) == _normal(real[0]) and _matches(shown[1:], real[1:])


async def test_the_readmes_raid_response_is_what_the_console_prints(tmp_path: Path) -> None:
    shown = _readme_raid()
    commands = [line.removeprefix("/room ") for line in shown if line.startswith("/room ")]
    assert len(commands) == 5, shown

    code, lines, err = await _console(tmp_path, "\n".join(commands) + "\n")

    assert code == 0, err
    real = lines[lines.index(shown[0]) :]
    assert _matches(shown, real), "\n".join(real)


async def test_undo_is_offered_only_to_whoever_may_use_it(tmp_path: Path) -> None:
    """Issue 27, item 9: the console offered 'undo' to people the policy would refuse it."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[roles.muters]\nverbs = ["mute-all", "ban"]\nusers = ["U0MUTER01"]\n'
        '[roles.all]\nverbs = ["*"]\nusers = ["U0ALICE01"]\n',
        encoding="utf-8",
    )
    script = "mute-all room-test\nban town-hall staff-1 --for 1h\nundo\n"
    code, lines, err = await _console(
        tmp_path, script, "--as", "U0MUTER01", ROOMBOT_POLICY_FILE=str(policy)
    )
    text = "\n".join(lines)
    assert "✅ done: 1/1 room changed" in text, err
    assert "reverts it" not in text
    assert code == 1  # the undo typed anyway is refused, saying why
    assert "not allowed to run 'unban'" in text
    code, lines, err = await _console(
        tmp_path, "unmute-all room-test\n", "--as", "U0ALICE01", ROOMBOT_POLICY_FILE=str(policy)
    )
    assert "'undo' reverts it" in "\n".join(lines), err


async def test_channel_applies_a_roles_guardrail_and_its_refusal_says_how(tmp_path: Path) -> None:
    """Issue 27, item 13: `--channel` evaluates the policy in that channel."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[roles.mods]\nverbs = ["show"]\nusers = ["U0ALICE01"]\nchannels = ["C0MODS"]\n',
        encoding="utf-8",
    )
    args = ("--as", "U0ALICE01")
    code, lines, _err = await _console(
        tmp_path, "show room-test\n", *args, ROOMBOT_POLICY_FILE=str(policy)
    )
    assert code == 1
    assert "outside any channel" in lines[1]
    assert any("In the console: --channel C0MODS." in line for line in lines)
    code, lines, err = await _console(
        tmp_path, "show room-test\n", *args, "--channel", "C0MODS", ROOMBOT_POLICY_FILE=str(policy)
    )
    assert code == 0, err
    assert "Acting as Slack user U0ALICE01 in channel C0MODS" in lines[1]
    code, _lines, err = await _console(tmp_path, "", "--channel", "#mods")
    assert code == 2
    assert "--channel: malformed Slack channel ID '#mods'" in err


async def test_reset_demo_brings_destroyed_demo_rooms_back(tmp_path: Path) -> None:
    """Issue 27, item 14: a destroyed demo room stayed destroyed in every later run."""
    code, _lines, err = await _console(tmp_path, "destroy town-hall\n", "--yes")
    assert code == 0, err
    code, lines, _err = await _console(tmp_path, "show town-hall\n")
    assert code == 1
    assert "--reset-demo" in lines[0]  # the banner says how to start afresh
    assert any("error 100004" in line for line in lines)
    code, lines, err = await _console(
        tmp_path, "show town-hall\nmembers town-hall\n", "--reset-demo"
    )
    assert code == 0, err
    assert "; reset, kept in" in lines[0]
    assert "8 members in town-hall:" in lines
    # The audit trail is kept: history still tells what was done before the reset.
    code, lines, _err = await _console(tmp_path, "history town-hall\n")
    assert any("destroy" in line for line in lines)


async def test_reset_demo_is_refused_for_a_real_room_engine(tmp_path: Path) -> None:
    code, lines, err = await _console(
        tmp_path,
        "",
        "--reset-demo",
        TENCENT_SDKAPPID="1400000777",
        TENCENT_SECRET_KEY=KEY,
        TENCENT_API_URL="http://127.0.0.1:9",
    )
    assert code == 2
    assert err.strip().splitlines() == [
        "roombot console: --reset-demo: TENCENT_* is configured, so there are no demo rooms to "
        "reset (it resets the embedded emulator's)"
    ]
    assert lines == []


async def test_a_request_that_needs_approval_is_refused_saying_how_to_ask_in_slack(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[approval]\nverbs = ["mute-all"]\napprovers = ["U0LEAD0001"]\n')
    code, lines, err = await _console(
        tmp_path,
        "/room mute-all room-test\nshow room-test\n",
        ROOMBOT_POLICY_FILE=str(policy),
    )
    text = "\n".join(lines)
    assert code != 0, err
    assert "❌ 'mute-all' was not run: 'mute-all' needs a second person's approval" in text
    assert (
        "the console cannot ask for it. Ask in Slack instead ('/room mute-all room-test')" in text
    )
    assert "audio ⛔ muted" not in text  # nothing ran


async def test_a_time_boxed_change_in_the_console_says_when_it_ends_and_timers_lists_it(
    tmp_path: Path,
) -> None:
    code, lines, err = await _console(
        tmp_path,
        "mute-all room-test --for 30m\ntimers\nshow room-test\ntimers room-2\n"
        "extend\ndisable-chat support-1 --for 1h\nkeep\nkeep\nmute-all standup --for 2h\n"
        "revert-now\nrevert-now\ntimers\n",
    )
    assert code == 1, err  # the second keep and the second revert-now fail, as they should
    text = "\n".join(lines)
    assert "✅ room-test — audio muted · RequestId Id-" in text
    # A time on another day (UTC) than now comes with its date: the test may run before midnight.
    at = r"(\d{4}-\d\d-\d\d )?\d\d:\d\d UTC"
    assert re.search(rf"This change reverts at {at}, in (29|30) min", text), text
    assert "1 time-boxed change to revert:" in text
    assert "⏰ room-test — audio muted (/room mute-all by U0OPERATOR), reverts at " in text
    assert re.search(rf"audio muted until {at} \(in (29|30) min\)", text), text
    assert "No time-boxed change in room-2 is waiting to be reverted." in text
    assert "'revert-now', 'extend' (30 min) or 'keep' act on its timer" in text
    assert re.search(rf"Extended: now reverts at {at}, in (59 min|1 h)", text), text
    assert "Kept: this change stays; it will not be reverted." in text
    assert "this timer has already run, or was kept or taken by someone" in text
    assert re.search(r"Time's up for U0OPERATOR's /room mute-all: reverting 1 room: standup", text)
    assert "✅ standup — audio unmuted · RequestId Id-" in text
    # Only the extended one is left.
    last = text[text.rindex("/room timers") :]
    assert "1 time-boxed change to revert:" in last
    assert "⏰ room-test — audio muted" in last  # kept: support-1's; reverted: standup's
