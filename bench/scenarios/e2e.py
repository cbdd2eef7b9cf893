"""End-to-end overhead: from a `/room` command sent to its threaded reply reaching the fake Slack.

Commands go one at a time (the next once the previous request has finished), alternating between
the roombot variants running side by side, with the emulator answering at once, so every
millisecond is roombot, its libraries, loopback, and the fakes. The arrival of each step is
timestamped where it lands (the fake Slack and the emulator run in the backends process; Linux's
monotonic clock is shared by all processes):

    sent → ack → parent message posted → Room Engine call → threaded reply → parent's final status

Then roombot is run once more under `bench.sampler` (CPU-time sampling) for the profile: roombot's
CPU per command split by package, the top functions, and the share that is roombot's own code.
"""

from __future__ import annotations

import signal
from typing import Any

from bench.load import Command, send, slash_body
from bench.procs import Server, cpu_seconds, thread_cpu_seconds
from bench.profiling import OURS, summarize
from bench.report import ScenarioResult, Table, Target
from bench.stack import (
    CHANNEL,
    USERS,
    Backends,
    RunContext,
    Variant,
    start_backends,
    start_roombot,
)
from bench.stats import latency_summary

ROOMS = 100
WARMUP = 20
#: CPU per one-room write, background work included (the issue "One life for every request").
TARGET_CPU_MS = 6.0
STEPS = ("ack", "parent", "room_engine", "reply", "final")
_STEP_LABELS = {
    "ack": "ack received",
    "parent": "parent message posted",
    "room_engine": "Room Engine call arrives",
    "reply": "threaded reply arrives",
    "final": "parent's final status",
}


class Driver:
    """Sends commands one at a time (to any server) and reads each step's arrival time back.

    Only one request is in flight across all servers, so the calls the backends record between a
    send and its final status are that request's.
    """

    def __init__(self, ctx: RunContext, backends: Backends) -> None:
        self._ctx = ctx
        self._backends = backends
        self._sent = 0
        self._slack_index = 0
        self._tencent_index = 0

    async def one(self, server: Server) -> dict[str, float]:
        """Send one command and wait for its final status; seconds from send to each step."""
        i = self._sent
        self._sent += 1
        verb = "mute-all" if i % 2 == 0 else "unmute-all"
        command = Command(
            f"{verb} room-{i % ROOMS:04d}", USERS[0], CHANNEL, self._backends.response_url(f"e{i}")
        )
        url = server.base_url + "/slack/events"
        shot = await send(self._ctx.session, url, slash_body(command))
        if shot.status != 200 or shot.body.strip():
            raise RuntimeError(f"unexpected ack {shot.status}: {shot.body[:200]}")
        await self._backends.wait_finals(self._sent, timeout_s=30)
        slack = await self._backends.slack_calls(self._slack_index)
        tencent = await self._backends.tencent_calls(self._tencent_index)
        self._slack_index += len(slack)
        self._tencent_index += len(tencent)
        posts = [c for c in slack if c["method"] == "chat.postMessage"]
        parent = next(c for c in posts if not c["thread_ts"])
        reply = next(c for c in posts if c["thread_ts"])
        final = next(c for c in slack if c["final"])
        return {
            "ack": shot.latency_s,
            "parent": parent["at"] - shot.sent,
            "room_engine": tencent[0]["at"] - shot.sent,
            "reply": reply["at"] - shot.sent,
            "final": final["at"] - shot.sent,
        }


async def _measure(ctx: RunContext, count: int) -> dict[str, dict[str, Any]]:
    """Every variant at once, commands alternating between them (so drift hits all alike)."""
    workdir = ctx.scratch("e2e")
    backends = await start_backends(ctx, workdir, rooms=ROOMS)
    servers: list[tuple[str, Server]] = []
    try:
        for variant in ctx.variants:
            server = await start_roombot(ctx, variant, backends, ctx.scratch(f"e2e/{variant.name}"))
            servers.append((variant.name, server))
        driver = Driver(ctx, backends)
        for _name, server in servers:
            for _ in range(WARMUP):
                await driver.one(server)
        steps: dict[str, dict[str, list[float]]] = {
            name: {step: [] for step in STEPS} for name, _ in servers
        }
        cpu0 = {name: cpu_seconds(server.pid) for name, server in servers}
        threads0 = {name: thread_cpu_seconds(server.pid) for name, server in servers}
        for i in range(count):
            shift = i % len(servers)
            for name, server in servers[shift:] + servers[:shift]:
                for step, seconds in (await driver.one(server)).items():
                    steps[name][step].append(seconds)
        cpu = {name: cpu_seconds(server.pid) - cpu0[name] for name, server in servers}
        threads = {
            name: _per_thread(threads0[name], thread_cpu_seconds(server.pid))
            for name, server in servers
        }
    finally:
        for _name, server in servers:
            await server.stop()
        await backends.stop()
    return {
        name: {
            "steps": {step: latency_summary(values) for step, values in steps[name].items()},
            "cpu_ms_per_command": 1000 * cpu[name] / count,
            "thread_cpu_ms_per_command": {
                thread: 1000 * seconds / count for thread, seconds in threads[name].items()
            },
        }
        for name, _ in servers
    }


def _per_thread(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each thread (by name) used between two readings, busiest first."""
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    return dict(sorted(((n, s) for n, s in used.items() if s > 0), key=lambda x: -x[1]))


async def _profile(ctx: RunContext, variant: Variant, count: int) -> dict[str, Any]:
    workdir = ctx.scratch(f"e2e/{variant.name}-profile")
    profile = workdir / "profile.json"
    backends = await start_backends(ctx, workdir, rooms=ROOMS)
    try:
        server = await start_roombot(ctx, variant, backends, workdir, profile_to=profile)
        try:
            driver = Driver(ctx, backends)
            for _ in range(WARMUP):
                await driver.one(server)
            server.proc.send_signal(signal.SIGUSR1)
            cpu0 = cpu_seconds(server.pid)
            for _ in range(count):
                await driver.one(server)
            cpu = cpu_seconds(server.pid) - cpu0
            server.proc.send_signal(signal.SIGUSR2)
        finally:
            await server.stop()
    finally:
        await backends.stop()
    return summarize(profile, commands=count, cpu_s=cpu)


async def run(ctx: RunContext) -> ScenarioResult:
    """Run the end-to-end benchmark (every variant) and profile this checkout's roombot."""
    count = 100 if ctx.quick else 300
    profiled = 300 if ctx.quick else 1000
    measured = await _measure(ctx, count)
    profile = await _profile(ctx, ctx.variants[0], profiled)
    return _result(ctx, measured, profile, count, profiled)


def _result(
    ctx: RunContext,
    measured: dict[str, dict[str, Any]],
    profile: dict[str, Any],
    count: int,
    profiled: int,
) -> ScenarioResult:
    rows = []
    for name, data in measured.items():
        for step in STEPS:
            summary = data["steps"][step]
            rows.append([name, _STEP_LABELS[step], summary["p50_ms"], summary["p99_ms"]])
        rows.append([name, "roombot CPU per command (ms)", data["cpu_ms_per_command"], None])
        for thread, ms in data["thread_cpu_ms_per_command"].items():
            rows.append([name, f"… of which thread `{thread}` (ms)", ms, None])
    timeline = Table(
        title=f"End to end: {count} commands one at a time, emulator latency 0 "
        "(ms from sending the command)",
        headers=["roombot", "step", "p50 ms", "p99 ms"],
        rows=rows,
        notes=[
            "Arrival times are taken where each call lands (fake Slack, emulator), on the "
            "monotonic clock shared by all processes.",
            "The ack includes bolt's own wait: it polls for the listener's ack() every 10 ms.",
        ],
    )
    baseline = measured[ctx.variants[0].name]
    reply_p50 = baseline["steps"]["reply"]["p50_ms"]
    by_package = profile["by_package"]
    ours = by_package.get(OURS, {"ms_per_command": 0.0, "share": 0.0})
    split = Table(
        title=f"Where roombot's CPU goes per command (profile of {profiled} commands, "
        f"{profile['samples']} samples)",
        headers=["package", "ms per command", "share of roombot CPU"],
        rows=[
            [label, v["ms_per_command"], f"{100 * v['share']:.1f}%"]
            for label, v in by_package.items()
        ],
        notes=[
            f"roombot CPU per command under the profiler: {profile['cpu_ms_per_command']:.2f} ms "
            f"(without it: {baseline['cpu_ms_per_command']:.2f} ms).",
            f"roombot's own code (self time in bot/ and handlers/): "
            f"{ours['ms_per_command']:.3f} ms per command = {100 * ours['share']:.1f}% of "
            f"roombot's CPU, {100 * ours['ms_per_command'] / reply_p50:.1f}% of the "
            f"{reply_p50:.1f} ms end-to-end p50.",
            "Self time: C functions count to the Python function that called them.",
        ],
    )
    top = Table(
        title="Top functions by self time (ms per command)",
        headers=["function", "package", "ms per command"],
        rows=[
            [f"`{t['function']}`", t["package"], t["ms_per_command"]] for t in profile["top_self"]
        ],
    )
    whole = profile["cpu_ms_per_command"] * 0.99
    inclusive = Table(
        title="roombot's own functions, inclusive of what they call (ms per command)",
        headers=["function", "ms per command"],
        rows=[
            [f"`{t['function']}`", t["ms_per_command"]]
            for t in profile["ours_inclusive"]
            if t["ms_per_command"] < whole
        ],
    )
    return ScenarioResult(
        name="e2e",
        tables=[timeline, split, top, inclusive],
        targets=[
            Target(
                f"roombot CPU per command ({name})",
                float(data["cpu_ms_per_command"]),
                TARGET_CPU_MS,
                " ms",
            )
            for name, data in measured.items()
        ],
        data={
            "params": {"commands": count, "profiled_commands": profiled, "warmup": WARMUP},
            "measured": measured,
            "profile": profile,
        },
    )
