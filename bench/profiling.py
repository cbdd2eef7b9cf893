"""Reading a `bench.sampler` profile: where roombot's busy time went, by package and function."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

#: Package directory names → the label a report uses; first match wins.
_LIBRARIES = (
    ("slack_bolt", "slack_bolt"),
    ("slack_sdk", "slack_sdk"),
    ("aiohttp", "aiohttp"),
    ("yarl", "aiohttp"),
    ("multidict", "aiohttp"),
    ("propcache", "aiohttp"),
    ("httpx", "httpx"),
    ("httpcore", "httpx"),
    ("h11", "httpx"),
    ("anyio", "httpx"),
    ("pydantic", "pydantic"),
    ("pydantic_core", "pydantic"),
    ("pydantic_settings", "pydantic"),
)
OURS = "roombot (bot/, handlers/)"


def category(key: str) -> str:
    """The label for a sampler key `file:line:function`."""
    filename = key.rsplit(":", 2)[0]
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" not in parts and ("bot" in parts or "handlers" in parts):
        return OURS
    for directory, label in _LIBRARIES:
        if directory in parts:
            return label
    if "asyncio" in parts or parts[-1] in {"selectors.py"}:
        return "asyncio (event loop)"
    if filename.startswith("<frozen importlib"):
        return "import machinery"
    if parts[-1] in {"__init__.py", "handlers.py"} and "logging" in parts:
        return "logging"
    return "stdlib / other"


def short(key: str) -> str:
    """`package/module.py:function` for a sampler key."""
    filename, _line, function = key.rsplit(":", 2)
    parts = filename.replace("\\", "/").split("/")
    tail = "/".join(parts[-2:]) if len(parts) > 1 else parts[-1]
    return f"{tail}:{function}"


def summarize(
    path: Path, *, commands: int, cpu_s: float | None = None, top: int = 12
) -> dict[str, Any]:
    """CPU per command, its split by package, and the top functions by self time.

    Sample counts are scaled to `cpu_s` (the process's measured CPU time over the same span)
    when given, else to samples × interval.
    """
    data = json.loads(path.read_text())
    samples = int(data["samples"]) or 1
    busy = cpu_s if cpu_s is not None else samples * float(data["interval_s"])
    per_sample = busy / samples
    by_category: Counter[str] = Counter()
    for key, count in data["self"].items():
        by_category[category(key)] += count * per_sample
    top_self = [
        {
            "function": short(k),
            "package": category(k),
            "ms_per_command": 1000 * v * per_sample / commands,
        }
        for k, v in Counter(data["self"]).most_common(top)
    ]
    ours_inclusive = [
        {"function": short(k), "ms_per_command": 1000 * v * per_sample / commands}
        for k, v in Counter(data["inclusive"]).most_common()
        if category(k) == OURS
    ][:top]
    return {
        "samples": samples,
        "cpu_s": busy,
        "cpu_ms_per_command": 1000 * busy / commands,
        "by_package": {
            label: {"ms_per_command": 1000 * s / commands, "share": s / busy if busy else 0.0}
            for label, s in by_category.most_common()
        },
        "top_self": top_self,
        "ours_inclusive": ours_inclusive,
    }
