"""What a benchmark ran on: the machine, the Python, the libraries, and the git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: The libraries whose versions change the figures.
_PACKAGES = ("slack_bolt", "slack_sdk", "aiohttp", "httpx", "httpcore", "pydantic", "sniffio")


def describe_machine() -> dict[str, Any]:
    """Cores, CPU model, memory, Python and library versions, and the load right now."""
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_mem_total_kib() / 1024 / 1024, 1),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg": loadavg(),
        "packages": {name: _version(name) for name in _PACKAGES},
    }


def git_commit(path: Path) -> dict[str, Any]:
    """The commit checked out at `path` and whether the tree has uncommitted changes."""

    def run(*args: str) -> str:
        try:
            result = subprocess.run(
                ["git", "-C", str(path), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return result.stdout.strip()

    commit = run("rev-parse", "HEAD")
    if not commit:
        return {"commit": None, "path": str(path)}
    return {
        "commit": commit,
        "short": commit[:9],
        "branch": run("rev-parse", "--abbrev-ref", "HEAD"),
        # Changed tracked code only: RESULTS.md and bench/out/ are what a run writes.
        "dirty": bool(
            run("status", "--porcelain", "--untracked-files=no", "--", "bot", "handlers", "bench")
        ),
        "path": str(path),
    }


def loadavg() -> list[float]:
    """The 1, 5 and 15-minute load averages (a noise indicator)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
