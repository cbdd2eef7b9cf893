"""`roombot emulator` as a user runs it: a real process, a real port, SIGTERM to stop."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.budget import RateBudget
from bot.models import RoomPatch
from bot.tencent.client import RoomEngineClient

#: Each test runs `roombot emulator` as a real process.
pytestmark = pytest.mark.slow

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"


class Emulator:
    """A `python -m bot emulator` child process and the lines it printed so far."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**base, **(env or {})},
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("Stop with"):
                self._ready.set()
        self._ready.set()

    def wait_ready(self) -> str:
        assert self._ready.wait(timeout=30), "emulator did not start"
        text = "\n".join(self.lines)
        match = re.search(r"^  TENCENT_API_URL=(http://\S+)$", text, re.MULTILINE)
        assert match, text
        return match.group(1)

    def env_line(self, name: str) -> str:
        for line in self.lines:
            if line.startswith(f"  {name}="):
                return line.split("=", 1)[1]
        raise AssertionError(f"{name} not printed: {self.lines}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        return code


@pytest.fixture
def spawned() -> Iterator[list[Emulator]]:
    procs: list[Emulator] = []
    yield procs
    for proc in procs:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(timeout=30)


async def test_demo_emulator_serves_the_client_and_stops_on_sigterm(
    spawned: list[Emulator],
) -> None:
    emu = Emulator("--room", "room-test", "--room", "ops")
    spawned.append(emu)
    base_url = emu.wait_ready()
    assert base_url.startswith("http://127.0.0.1:")
    sdkappid = int(emu.env_line("TENCENT_SDKAPPID"))
    secret = emu.env_line("TENCENT_SECRET_KEY").split()[0]
    assert re.fullmatch(r"[0-9a-f]{64}", secret)  # generated for this run, so shown
    assert emu.env_line("TENCENT_ADMIN_ID") == "administrator"
    assert "2 room(s): ops, room-test" in "\n".join(emu.lines)

    async with RoomEngineClient(
        base_url=base_url,
        sdkappid=sdkappid,
        secret_key=secret,
        admin_id="administrator",
        rate_budget=RateBudget(50),
    ) as client:
        await client.update_room_info(RoomPatch.of("ops", {"IsMessageDisabled": True}))
        snap = await client.get_room_info("ops")
    assert snap.room.is_message_disabled is True

    assert emu.stop(signal.SIGTERM) == 0
    assert "stopped after 2 request(s)" in emu.lines[-1]


def test_sigint_also_exits_zero(spawned: list[Emulator]) -> None:
    emu = Emulator()
    spawned.append(emu)
    emu.wait_ready()
    text = "\n".join(emu.lines)
    assert "room-test" in text  # no rooms given: the demo rooms are seeded
    assert emu.stop(signal.SIGINT) == 0


def test_configured_credentials_are_used_but_the_key_is_not_printed(
    spawned: list[Emulator], tmp_path: Path
) -> None:
    rooms = tmp_path / "rooms.json"
    rooms.write_text(json.dumps({"from-file": {"RoomName": "From file"}}))
    emu = Emulator(
        "--rooms-file",
        str(rooms),
        "--latency-ms",
        "5",
        env={
            "TENCENT_SDKAPPID": "1400123456",
            "TENCENT_SECRET_KEY": KEY,
            "TENCENT_ADMIN_ID": "ops_admin",
        },
    )
    spawned.append(emu)
    emu.wait_ready()
    assert emu.env_line("TENCENT_SDKAPPID") == "1400123456"
    assert emu.env_line("TENCENT_ADMIN_ID") == "ops_admin"
    assert "configured" in emu.env_line("TENCENT_SECRET_KEY")
    text = "\n".join(emu.lines)
    assert KEY not in text
    assert "from-file" in text
    assert "latency_s 0.005" in text
    assert emu.stop() == 0
    assert emu.proc.stderr is not None
    assert KEY not in emu.proc.stderr.read()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-rate", "1.5"], "fail_rate"),
        (["--rooms-file", "/nonexistent/rooms.json"], "cannot read rooms file"),
        (["--room", "bad room id"], "room ID"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], message: str) -> None:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "emulator", "--port", "0", *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_port_in_use_exits_2_with_one_line() -> None:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
    }
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "bot", "emulator", "--port", str(port)],
            capture_output=True,
            text=True,
            env=base,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"roombot emulator: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in lines[0].lower()


def test_rooms_file_formats(tmp_path: Path) -> None:
    from bot.tencent.emulator_cli import EmulatorUsageError, load_rooms_file

    listing = tmp_path / "list.json"
    listing.write_text(json.dumps(["a", {"RoomId": "b", "MaxMemberCount": 9}]))
    assert load_rooms_file(listing) == ["a", {"RoomId": "b", "MaxMemberCount": 9}]
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"c": {"RoomName": "C"}}))
    assert load_rooms_file(mapping) == [{"RoomName": "C", "RoomId": "c"}]
    for bad in ("{not json", "42", '{"c": 1}'):
        broken = tmp_path / "bad.json"
        broken.write_text(bad)
        with pytest.raises(EmulatorUsageError):
            load_rooms_file(broken)


@pytest.mark.slow
async def test_callback_url_and_token_options(spawned: list[Emulator]) -> None:
    from aiohttp import web

    got: list[tuple[dict[str, str], object]] = []

    async def receive(request: web.Request) -> web.Response:
        got.append((dict(request.query), await request.json()))
        return web.json_response({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0})

    app = web.Application()
    app.router.add_post("/cb", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    target = f"http://127.0.0.1:{runner.addresses[0][1]}/cb"
    try:
        emu = Emulator(
            "--callback-url",
            f"{target}?token=query-secret",
            "--callback-token",
            "sign-secret",
            "--other-admin",
            "ops-console",
            env={"TENCENT_SECRET_KEY": KEY},
        )
        spawned.append(emu)
        base_url = emu.wait_ready()
        banner = "\n".join(emu.lines)
        assert f"callbacks: every command to {target}, signed" in banner
        assert "also 'ops-console'" in banner
        async with RoomEngineClient(
            base_url=base_url,
            sdkappid=int(emu.env_line("TENCENT_SDKAPPID")),
            secret_key=KEY,
            admin_id="ops-console",
            rate_budget=RateBudget(50),
        ) as client:
            await client.update_room_info(RoomPatch.of("room-test", {"IsAudioDisabled": True}))
            members = await client.get_room_members("room-test")
        assert [m.role for m in members.members].count("Owner") == 1  # demo members
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.05)
        assert emu.stop() == 0
    finally:
        await runner.cleanup()
    ((query, body),) = got
    assert query["token"] == "query-secret"
    assert query["CallbackCommand"] == "Room.CallbackAfterUpdateRoomInfo"
    signed = f"sign-secret{query['RequestTime']}".encode()
    assert query["Sign"] == hashlib.sha256(signed).hexdigest()
    assert isinstance(body, dict)
    assert body["Operator_Account"] == "ops-console"
    assert "1 callback(s) sent" in emu.lines[-1]
    text = "\n".join(emu.lines)
    assert "query-secret" not in text
    assert "sign-secret" not in text
