"""Standing the benchmark stack up: the backends process, `roombot serve --http`, the bare app.

Placement on the machine (`Placement`): the server under test gets a core of its own; the load
generator (this process) and the backends share the other. In the ack benchmark the backends run
at a lower priority so that answering roombot's Slack calls does not hold up the load generator's
clock readings; elsewhere the backends' speed is part of what is measured, so they run at normal
priority. On a machine with one core, or with `--no-pin`, nothing is pinned.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import backends as fakes
from bench.procs import Server, clean_env, start_server, wait_json_line, wait_listening

#: Slack user IDs the benchmarks send commands as (all allow-listed).
USERS = tuple(f"U0BENCH{i:02d}" for i in range(20))
CHANNEL = "C0BENCH01"
#: Niceness of the backends when they must yield to the load generator on their shared core.
BACKENDS_NICE_UNDER_LOAD = 10


@dataclass(frozen=True)
class Placement:
    """Which CPUs each process may use (None: anywhere)."""

    server: set[int] | None
    loadgen: set[int] | None
    backends: set[int] | None

    @classmethod
    def choose(cls, *, pin: bool) -> Placement:
        """Server on the first usable CPU, load generator and backends on the rest."""
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < 2:
            return cls(None, None, None)
        rest = set(cpus[1:])
        return cls({cpus[0]}, rest, rest)

    def describe(self) -> dict[str, Any]:
        """For the JSON report."""

        def show(cpus: set[int] | None) -> Any:
            return sorted(cpus) if cpus else "any"

        return {
            "server": show(self.server),
            "loadgen": show(self.loadgen),
            "backends": show(self.backends),
        }


@dataclass(frozen=True)
class Variant:
    """A roombot to measure: this checkout (`src` None) or another source tree."""

    name: str
    src: Path | None = None


@dataclass
class RunContext:
    """What every scenario needs: sizes, placement, a scratch directory, the variants."""

    quick: bool
    placement: Placement
    workdir: Path
    variants: list[Variant]
    session: aiohttp.ClientSession

    def scratch(self, name: str) -> Path:
        """A fresh sub-directory of the scratch directory."""
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


class Backends:
    """A running backends process and a client for its control API."""

    def __init__(self, server: Server, urls: dict[str, str], session: aiohttp.ClientSession):
        self.server = server
        self.slack_api_url = urls["slack_api_url"]
        self.emulator_url = urls["emulator_url"]
        self.control_url = urls["control_url"]
        self._session = session

    def response_url(self, key: str) -> str:
        """A response_url the fake Slack accepts."""
        return self.slack_api_url.removesuffix("/api/") + f"/response/{key}"

    async def _get(self, path: str, **params: Any) -> Any:
        async with self._session.get(self.control_url + path, params=params) as response:
            return await response.json()

    async def stats(self) -> dict[str, Any]:
        """Call counts, final statuses seen, and the emulator's 60007 count."""
        data: dict[str, Any] = await self._get("/stats")
        return data

    async def slack_calls(self, since: int = 0) -> list[dict[str, Any]]:
        """Slack calls from index `since` (method, at, channel, ts, thread_ts, texts, final)."""
        data: list[dict[str, Any]] = await self._get("/slack-calls", since=since)
        return data

    async def tencent_calls(self, since: int = 0) -> list[dict[str, Any]]:
        """Room Engine calls from index `since` (command, at, code)."""
        data: list[dict[str, Any]] = await self._get("/tencent-calls", since=since)
        return data

    async def messages(self) -> list[dict[str, Any]]:
        """The fake Slack's messages as they stand now (channel, ts, thread_ts, head,
        last_line, takeover)."""
        data: list[dict[str, Any]] = await self._get("/messages")
        return data

    async def wait_finals(self, count: int, timeout_s: float = 60.0) -> None:
        """Return once `count` requests in total have had their parent's final status posted."""
        data = await self._get("/wait", finals=count, timeout=timeout_s)
        if not data.get("ok"):
            raise RuntimeError(
                f"only {data.get('finals')} of {count} requests finished within {timeout_s:g} s"
            )

    async def stop(self) -> None:
        """Stop the process."""
        await self.server.stop()


async def start_backends(
    ctx: RunContext,
    workdir: Path,
    *,
    rooms: int,
    rate_limit: int = 200,
    yield_to_loadgen: bool = False,
    rtt_ms: float = 0.0,
    handshake_rtts: float = 0.0,
) -> Backends:
    """Start `python -m bench.backends` and wait for its URLs."""
    nice = BACKENDS_NICE_UNDER_LOAD if yield_to_loadgen and ctx.placement.backends else 0
    server = await start_server(
        "backends",
        [
            "-m",
            "bench.backends",
            "--rooms",
            str(rooms),
            "--rate-limit",
            str(rate_limit),
            "--rtt-ms",
            str(rtt_ms),
            "--handshake-rtts",
            str(handshake_rtts),
        ],
        env=clean_env(),
        cwd=workdir,
        cpus=ctx.placement.backends,
        nice=nice,
    )
    try:
        urls = await wait_json_line(server)
        result = Backends(server, urls, ctx.session)
        await result.stats()
    except BaseException:
        await server.stop(5)
        raise
    return result


def roombot_env(
    backends: Backends, workdir: Path, *, rate_limit: int, src: Path | None
) -> dict[str, str]:
    """The environment `roombot serve --http` runs with in every benchmark."""
    return clean_env(
        src,
        SLACK_BOT_TOKEN=fakes.BOT_TOKEN,
        SLACK_SIGNING_SECRET=fakes.SIGNING_SECRET,
        SLACK_API_URL=backends.slack_api_url,
        TENCENT_SDKAPPID=str(fakes.SDKAPPID),
        TENCENT_SECRET_KEY=fakes.SECRET_KEY,
        TENCENT_API_URL=backends.emulator_url,
        ROOMBOT_ALLOWED_USERS=",".join(USERS),
        ROOMBOT_AUDIT_DB=str(workdir / "audit.sqlite3"),
        ROOMBOT_RATE_LIMIT=str(rate_limit),
        # Benchmarks measure the request path itself, not a person clicking "Confirm".
        ROOMBOT_CONFIRM_ABOVE="0",
    )


async def start_roombot(
    ctx: RunContext,
    variant: Variant,
    backends: Backends,
    workdir: Path,
    *,
    rate_limit: int = 200,
    profile_to: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Server:
    """`python -m bot serve --http --host 127.0.0.1 --port 0`, optionally under bench.sampler,
    with `extra_env` added to the usual environment."""
    argv = ["-m", "bot", "serve", "--http", "--host", "127.0.0.1", "--port", "0"]
    if profile_to is not None:
        argv = ["-m", "bench.sampler", str(profile_to), *argv]
    env = roombot_env(backends, workdir, rate_limit=rate_limit, src=variant.src)
    env.update(extra_env or {})
    server = await start_server(variant.name, argv, env=env, cwd=workdir, cpus=ctx.placement.server)
    await wait_listening(server)
    return server


async def start_bare(ctx: RunContext, backends: Backends, workdir: Path) -> Server:
    """The baseline bare `AsyncApp` (bench/bare_app.py), served the same way."""
    env = clean_env(
        SLACK_BOT_TOKEN=fakes.BOT_TOKEN,
        SLACK_SIGNING_SECRET=fakes.SIGNING_SECRET,
        SLACK_API_URL=backends.slack_api_url,
    )
    server = await start_server(
        "bare-app", ["-m", "bench.bare_app"], env=env, cwd=workdir, cpus=ctx.placement.server
    )
    await wait_listening(server)
    return server


async def in_flight(session: aiohttp.ClientSession, server: Server) -> int:
    """Background jobs the server reports in /healthz."""
    async with session.get(server.base_url + "/healthz") as response:
        data = await response.json()
    return int(data.get("in_flight", 0))


async def drain(session: aiohttp.ClientSession, server: Server, timeout_s: float = 120.0) -> float:
    """Wait until the server has no background work left; returns how long that took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while await in_flight(session, server):
        if loop.time() - started > timeout_s:
            raise RuntimeError(f"{server.name} still busy after {timeout_s:g} s")
        await asyncio.sleep(0.05)
    return loop.time() - started
