"""Starting, watching and stopping the processes a benchmark talks to.

Every server here binds port 0 on 127.0.0.1; the port it got is read back from /proc (the
process's listening socket), so nothing races for a "free" port. CPU time and RSS come from /proc
as well, which is why the benchmarks need Linux.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

#: The repository root: put on PYTHONPATH so the code under test is this checkout's.
REPO_ROOT = Path(__file__).resolve().parent.parent
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def clean_env(src: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without roombot's variables, plus `extra`.

    PYTHONPATH puts `src` (another source tree with `bot/` and `handlers/`, to compare a change)
    ahead of this repository, so `python -m bot` runs that tree's code and `bench`/`tests` still
    import from here.
    """
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_", "PYTHON"))
    }
    paths = [str(src)] if src is not None else []
    paths.append(str(REPO_ROOT))
    return {**base, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1", **extra}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" closing the command name: field 14 (utime) and 15 (stime) are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """User plus system CPU time so far of each of the process's threads: "main", or the
    thread's name (`/proc/PID/task/TID/comm`, Python does not set it) and id. Threads that
    ended are no longer counted."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        name = "main" if task.name == str(pid) else f"{comm} {task.name}"
        out[name] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return out


def rss_bytes(pid: int) -> int:
    """Resident set size now (VmRSS)."""
    return _status_kib(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    """The highest resident set size so far (VmHWM)."""
    return _status_kib(pid, "VmHWM") * 1024


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def listening_ports(pid: int) -> list[int]:
    """TCP ports the process listens on, found through its socket inodes in /proc/net/tcp."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:  # 0A = LISTEN
                    ports.append(int(parts[1].rsplit(":", 1)[1], 16))
    return sorted(set(ports))


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child before exec: if the benchmark dies, even by SIGKILL, its servers get
    # SIGTERM instead of serving on forever.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def pin(pid: int, cpus: set[int] | None) -> None:
    """Restrict `pid` to `cpus` (no-op for None)."""
    if cpus is not None:
        os.sched_setaffinity(pid, cpus)


@dataclass
class Server:
    """A benchmark subprocess serving HTTP on 127.0.0.1, with its log file."""

    name: str
    proc: asyncio.subprocess.Process
    log_path: Path
    port: int = 0

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        """The end of the process's combined output, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait up to `timeout_s` for a clean exit, else SIGKILL; the exit status."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        return int(self.proc.returncode or 0)


async def start_server(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    cpus: set[int] | None = None,
    nice: int = 0,
) -> Server:
    """Start `python argv...` with its output in `cwd/name.log`, pinned to `cpus`, at `nice`."""
    log_path = cwd / f"{name}.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            env=dict(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    server = Server(name=name, proc=proc, log_path=log_path)
    try:
        pin(proc.pid, cpus)
        if nice:
            os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
    except BaseException:
        await server.stop(5)
        raise
    return server


async def wait_listening(
    server: Server, health_path: str = "/healthz", timeout_s: float = 30
) -> None:
    """Wait until the server listens (its one TCP port is read back) and answers `health_path`."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            _check_alive(server)
            ports = listening_ports(server.pid)
            if ports:
                server.port = ports[0]
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(server.base_url + health_path) as response:
                        if response.status == 200:
                            return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{server.name} not ready in {timeout_s:g} s:\n{server.log_tail()}")


async def wait_json_line(server: Server, timeout_s: float = 30) -> dict[str, str]:
    """Wait for the first line of the server's output and read it as a JSON object."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _check_alive(server)
        text = server.log_path.read_text(errors="replace")
        if "\n" in text:
            first = text.split("\n", 1)[0]
            data = json.loads(first)
            if not isinstance(data, dict):
                raise RuntimeError(f"{server.name} printed {first!r}, not a JSON object")
            return {str(k): str(v) for k, v in data.items()}
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{server.name} printed nothing in {timeout_s:g} s:\n{server.log_tail()}")


def _check_alive(server: Server) -> None:
    if server.proc.returncode is not None:
        raise RuntimeError(
            f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
        )
