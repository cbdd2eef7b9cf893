"""A real `roombot serve` process (HTTP mode or Socket Mode) with its fakes, for the tests of how
it is operated: probes, metrics, logs, start-up failures.

`serve_process()` starts the emulator and a `FakeSlack` (with a `FakeSocketMode` attached in
Socket Mode), then `python -m bot serve`, and waits until `/healthz` answers. Its output is read
as it comes, so a chatty process never blocks on a full pipe. `run_serve()` runs one that is
expected to stop by itself (a start-up failure) and returns its status and output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.tencent.emulator import RoomEngineEmulator
from testkit.slack_api import FakeSlack
from testkit.slack_payloads import form_body, sign, slash_command
from testkit.socket_mode import FakeSocketMode
from tests.e2e.stack import ALICE, BOT_TOKEN, SDKAPPID, SECRET_KEY, SIGNING_SECRET

APP_TOKEN = "xapp-1-A0ROOMBOT1-serve-proc"


def free_port() -> int:
    """A port nobody listens on (as far as the system knows right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without roombot's variables (or PORT), plus `extra`."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_")) and k != "PORT"
    }
    return {**base, **extra}


@dataclass
class Output:
    """Everything a process wrote, collected while it runs."""

    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        """stderr as one text."""
        return "\n".join(self.stderr)


async def _collect(stream: asyncio.StreamReader | None, lines: list[str]) -> None:
    if stream is None:
        return
    while line := await stream.readline():
        lines.append(line.decode(errors="replace").rstrip("\n"))


@dataclass
class Served:
    """A running `roombot serve` and the fakes it talks to."""

    proc: asyncio.subprocess.Process
    port: int
    slack: FakeSlack
    emulator: RoomEngineEmulator
    session: aiohttp.ClientSession
    output: Output
    socket_mode: FakeSocketMode | None = None
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    async def get(self, path: str) -> tuple[int, str]:
        """GET `path`; the status and the body."""
        async with self.session.get(self.base_url + path) as response:
            return response.status, await response.text()

    async def ready(self) -> tuple[int, dict[str, Any]]:
        """GET /readyz; the status and its JSON."""
        status, text = await self.get("/readyz")
        return status, json.loads(text)

    async def post(
        self, body: bytes, headers: dict[str, str], path: str = "/slack/events"
    ) -> tuple[int, str]:
        """POST raw `body` with `headers` (nothing added)."""
        async with self.session.post(self.base_url + path, data=body, headers=headers) as reply:
            return reply.status, await reply.text()

    async def slash(self, text: str, user: str = ALICE) -> tuple[int, str]:
        """A signed `/room text` over HTTP."""
        body = form_body(slash_command(text, user_id=user, response_url=self.slack.response_url()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **sign(body, SIGNING_SECRET),
        }
        return await self.post(body, headers)

    async def slash_ack(self, text: str, user: str = ALICE) -> tuple[int, dict[str, Any]]:
        """`slash`, with the ack's JSON body ({} for an empty ack)."""
        status, body = await self.slash(text, user)
        return status, (json.loads(body) if body.strip() else {})

    async def wait_ready(self, want: int, timeout: float = 15.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Poll /readyz until it answers `want`; its JSON. Raises AssertionError on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: tuple[int, dict[str, Any]] = (0, {})
        while loop.time() < deadline:
            last = await self.ready()
            if last[0] == want:
                return last[1]
            await asyncio.sleep(0.2)
        raise AssertionError(f"/readyz did not answer {want} within {timeout} s: {last}")

    async def stop(self) -> int:
        """SIGTERM, then the exit status (output stays in `output`)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), timeout=30)
        await asyncio.gather(*self._readers)
        return code


def _settings(slack: FakeSlack, emulator: RoomEngineEmulator, tmp_path: Path) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "TENCENT_SDKAPPID": str(SDKAPPID),
        "TENCENT_SECRET_KEY": SECRET_KEY,
        "TENCENT_API_URL": emulator.base_url,
        "ROOMBOT_AUDIT_DB": str(tmp_path / "audit.sqlite3"),
        "ROOMBOT_ALLOWED_USERS": ALICE,
    }


@asynccontextmanager
async def serve_process(
    tmp_path: Path,
    *,
    socket_mode: bool = False,
    rooms: Sequence[str] = ("room-test",),
    emulator: RoomEngineEmulator | None = None,
    port_from_env: bool = False,
    python: str = sys.executable,
    **env: str,
) -> AsyncIterator[Served]:
    """`roombot serve` (HTTP, or Socket Mode with `socket_mode`) on a free port (`--port`, or
    `$PORT` with `port_from_env`), healthy, against `emulator` (not started yet) or a new one
    holding `rooms`. `env` adds to or replaces the settings (ALICE is allowed everything
    unless `ROOMBOT_ALLOWED_USERS=""`). `python` runs `-m bot` (a wrapper may stand in)."""
    emulator = emulator or RoomEngineEmulator(
        sdkappid=SDKAPPID, secret_key=SECRET_KEY, rooms=list(rooms)
    )
    await emulator.start()
    slack = FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    await slack.start()
    fake_socket = None
    settings = _settings(slack, emulator, tmp_path)
    argv = ["serve", "--host", "127.0.0.1"]
    if socket_mode:
        fake_socket = FakeSocketMode()
        await fake_socket.start()
        slack.attach_socket_mode(fake_socket)
        settings["SLACK_APP_TOKEN"] = APP_TOKEN
        del settings["SLACK_SIGNING_SECRET"]
    else:
        argv.append("--http")
    port = free_port()
    if port_from_env:
        settings["PORT"] = str(port)
    else:
        argv += ["--port", str(port)]
    proc = await asyncio.create_subprocess_exec(
        python, "-m", "bot", *argv,
        env=clean_env(**{**settings, **env}), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output = Output()
    readers = [
        asyncio.create_task(_collect(proc.stdout, output.stdout)),
        asyncio.create_task(_collect(proc.stderr, output.stderr)),
    ]
    session = aiohttp.ClientSession()
    served = Served(proc, port, slack, emulator, session, output, fake_socket, readers)
    original = emulator
    try:
        await _wait_healthy(served)
        yield served
    finally:
        await session.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for reader in readers:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if fake_socket is not None:
            await fake_socket.stop()
        await slack.stop()
        await original.stop()
        if served.emulator is not original:
            await served.emulator.stop()


async def _wait_healthy(served: Served) -> None:
    for _ in range(300):
        if served.proc.returncode is not None:
            await asyncio.sleep(0.1)
            raise AssertionError(
                f"roombot exited early with {served.proc.returncode}: {served.output.log}"
            )
        with contextlib.suppress(aiohttp.ClientError):
            status, _ = await served.get("/healthz")
            if status == 200:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"roombot did not become healthy: {served.output.log}")


async def run_serve(
    tmp_path: Path,
    *args: str,
    env: dict[str, str],
    timeout: float = 60.0,  # noqa: ASYNC109
) -> tuple[int, str, str]:
    """Run `python -m bot serve ARGS` that should stop by itself; status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", *args,
        env=clean_env(**env), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def configured_fakes(
    tmp_path: Path, *, bot_token: str | None = BOT_TOKEN, app_token: str | None = None
) -> tuple[FakeSlack, RoomEngineEmulator, dict[str, str]]:
    """Started fakes and the settings that point at them (caller stops the fakes)."""
    emulator = RoomEngineEmulator(sdkappid=SDKAPPID, secret_key=SECRET_KEY, rooms=["room-test"])
    await emulator.start()
    slack = FakeSlack(bot_token=bot_token, app_token=app_token)
    await slack.start()
    return slack, emulator, _settings(slack, emulator, tmp_path)
