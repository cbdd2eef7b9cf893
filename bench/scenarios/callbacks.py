"""Callback load: does a stream of Room Engine member callbacks slow down `/room` acks?

roombot runs with `ROOMBOT_CALLBACK_TOKEN` set. Signed `/room` commands (`mute-all` /
`unmute-all room-N`, with their background work) arrive at a fixed rate, open loop (each is sent
at its scheduled time whatever the answers before it did), in two conditions measured in
alternating phases of the same run:

- `alone`: the commands only;
- `with callbacks`: the same commands, plus member enter/leave callbacks at `CALLBACK_RATE` per
  second to `POST /tencent/callback` (token and SdkAppid in the query, as Room Engine sends them),
  sent by a process of its own (`bench.callback_stream`) on the load generator's core, at a
  lower priority, so that sending them does not delay the load generator's readings of the acks.

Reported: ack latency per condition and their p99 ratio, and how fast callbacks are answered.
Member callbacks are counted inline (no I/O), so the ratio shows what parsing and answering them
costs the event loop the acks share.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bench import backends as fakes
from bench.load import Command, Shot, pool, send, slash_body
from bench.procs import REPO_ROOT, clean_env, cpu_seconds, pin
from bench.report import ScenarioResult, Table, Target
from bench.stack import (
    BACKENDS_NICE_UNDER_LOAD,
    CHANNEL,
    USERS,
    RunContext,
    drain,
    start_backends,
    start_roombot,
)
from bench.stats import latency_summary, percentile, ratio

ROOMS = 100
COMMAND_RATE = 25.0
CALLBACK_RATE = 200.0
TOKEN = "bench-callback-token-0123456789"
TARGET_ACK_RATIO = 1.2
TARGET_CALLBACK_P99_MS = 20.0
WINDOW_FLUSH_S = 1.1
ALONE = "alone"
WITH = "with callbacks"

_T = TypeVar("_T")


async def _paced(
    count: int, rate: float, shoot: Callable[[int], Coroutine[Any, Any, _T]]
) -> list[_T]:
    """Start `shoot(i)` at `start + i / rate` for each i, without waiting for earlier answers."""
    start = time.monotonic()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(shoot(i)))
    return list(await asyncio.gather(*tasks))


class _Stream:
    """A `bench.callback_stream` process, started and made ready before its phase begins."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def ready(cls, ctx: RunContext, url: str, count: int, offset: int) -> _Stream:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.callback_stream", url,
            "--token", TOKEN, "--sdkappid", str(fakes.SDKAPPID),
            "--count", str(count), "--rate", str(CALLBACK_RATE), "--offset", str(offset),
            env=clean_env(), cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        pin(proc.pid, ctx.placement.loadgen)
        if ctx.placement.loadgen:
            # Like the backends under the ack load: on the core it shares with the load
            # generator, it yields, so the load generator's readings of the acks stay exact.
            os.setpriority(os.PRIO_PROCESS, proc.pid, BACKENDS_NICE_UNDER_LOAD)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise RuntimeError(f"the callback stream did not start: {line!r}")
        return cls(proc)

    async def run(self) -> tuple[list[float], int]:
        """Let it go; its answers' latencies and how many were not 200."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        out, _ = await self.proc.communicate()
        result = json.loads(out.decode().strip().splitlines()[-1])
        return [float(x) for x in result["latencies"]], int(result["errors"])


async def run(ctx: RunContext) -> ScenarioResult:
    """Run the callback-load benchmark and return its tables and targets."""
    phase_s = 4.0 if ctx.quick else 8.0
    rounds = 2 if ctx.quick else 6
    commands_per_phase = int(phase_s * COMMAND_RATE)
    callbacks_per_phase = int(phase_s * CALLBACK_RATE)
    workdir = ctx.scratch("callbacks")
    backends = await start_backends(
        ctx, workdir, rooms=ROOMS, rate_limit=200, yield_to_loadgen=True
    )
    extra = {"ROOMBOT_CALLBACK_TOKEN": TOKEN}
    server = await start_roombot(ctx, ctx.variants[0], backends, workdir, extra_env=extra)
    events_url = server.base_url + "/slack/events"
    callback_url = server.base_url + "/tencent/callback"
    acks: dict[str, list[float]] = {ALONE: [], WITH: []}
    round_p99s: dict[str, list[float]] = {ALONE: [], WITH: []}
    ack_errors = {ALONE: 0, WITH: 0}
    cpu_s = {ALONE: 0.0, WITH: 0.0}
    answers: list[float] = []
    callback_errors = 0
    offset = 0
    commands_pool = pool(50)

    def commands(count: int) -> list[bytes]:
        nonlocal offset
        made = []
        for j in range(offset, offset + count):
            verb = "mute-all" if j % 2 == 0 else "unmute-all"
            command = Command(
                f"{verb} room-{j % ROOMS:04d}",
                USERS[j % len(USERS)],
                CHANNEL,
                backends.response_url(f"c{j}"),
            )
            made.append(slash_body(command))
        offset += count
        return made

    def slashes(bodies: list[bytes]) -> Callable[[int], Coroutine[Any, Any, Shot]]:
        async def shoot(i: int) -> Shot:
            return await send(commands_pool, events_url, bodies[i])

        return shoot

    try:
        warmup = commands(50)
        await _paced(len(warmup), COMMAND_RATE, slashes(warmup))
        await drain(ctx.session, server)
        for r in range(rounds):
            order = (ALONE, WITH) if r % 2 == 0 else (WITH, ALONE)
            for condition in order:
                bodies = commands(commands_per_phase)
                cpu0 = cpu_seconds(server.pid)
                slash = _paced(len(bodies), COMMAND_RATE, slashes(bodies))
                if condition == WITH:
                    stream = await _Stream.ready(
                        ctx, callback_url, callbacks_per_phase, r * callbacks_per_phase
                    )
                    shots, (latencies, failed) = await asyncio.gather(slash, stream.run())
                    answers += latencies
                    callback_errors += failed
                else:
                    shots = await slash
                acks[condition] += [s.latency_s for s in shots]
                round_p99s[condition].append(percentile([s.latency_s for s in shots], 99))
                ack_errors[condition] += sum(s.status != 200 or bool(s.body.strip()) for s in shots)
                await drain(ctx.session, server)
                cpu_s[condition] += cpu_seconds(server.pid) - cpu0
                await asyncio.sleep(WINDOW_FLUSH_S)
        stats = await backends.stats()
    finally:
        await commands_pool.close()
        await server.stop()
        await backends.stop()
    return _result(
        acks, ack_errors, answers, callback_errors, stats, phase_s, rounds, cpu_s, round_p99s
    )


def _result(
    acks: dict[str, list[float]],
    ack_errors: dict[str, int],
    answers: list[float],
    callback_errors: int,
    backend_stats: dict[str, Any],
    phase_s: float,
    rounds: int,
    cpu_s: dict[str, float],
    round_p99s: dict[str, list[float]],
) -> ScenarioResult:
    alone = latency_summary(acks[ALONE])
    loaded = latency_summary(acks[WITH])
    answered = latency_summary(answers)
    ack_ratio = ratio(loaded["p99_ms"], alone["p99_ms"])
    busy_s = phase_s * rounds
    per_round = [
        ratio(mine, base) for mine, base in zip(round_p99s[WITH], round_p99s[ALONE], strict=True)
    ]
    extra_cpu_ms = 1000 * (cpu_s[WITH] - cpu_s[ALONE]) / max(answered.get("n", 0), 1)
    rows = [
        [
            f"/room ack, {name}",
            summary["n"],
            summary["p50_ms"],
            summary["p95_ms"],
            summary["p99_ms"],
            summary["max_ms"],
            ack_errors[name],
        ]
        for name, summary in ((ALONE, alone), (WITH, loaded))
    ]
    rows.append(
        [
            "callback answer",
            answered["n"],
            answered["p50_ms"],
            answered["p95_ms"],
            answered["p99_ms"],
            answered["max_ms"],
            callback_errors,
        ]
    )
    table = Table(
        title=(
            f"Ack latency under callback load: {COMMAND_RATE:g} /room commands/s, with and "
            f"without {CALLBACK_RATE:g} member callbacks/s"
        ),
        headers=["what", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"],
        rows=rows,
        notes=[
            f"{rounds} rounds of two {phase_s:g}-s phases (commands alone, commands with "
            "callbacks), in alternating order; open loop: each request is sent at its scheduled "
            "time. Each phase ends once roombot's background work has drained.",
            "Commands: mute-all / unmute-all on one room each (parent post, Room Engine call, "
            "threaded reply in the background). Callbacks: MemberEnter / MemberLeave with the "
            "token and SdkAppid in the query, answered after authentication and parsing.",
            f"ack p99 with ÷ without callbacks: {ack_ratio:.2f}. roombot's CPU: "
            f"{100 * cpu_s[ALONE] / busy_s:.0f}% of a core alone, "
            f"{100 * cpu_s[WITH] / busy_s:.0f}% with callbacks, so about "
            f"{extra_cpu_ms:.2f} ms of CPU per callback.",
            "Per round, ack p99 with ÷ without callbacks ranged "
            f"{min(per_round):.2f}–{max(per_round):.2f} (how noisy the machine was).",
        ],
    )
    return ScenarioResult(
        name="callbacks",
        tables=[table],
        targets=[
            Target("ack p99 with ÷ without callback load", ack_ratio, TARGET_ACK_RATIO, "×"),
            Target("callback answer p99", answered["p99_ms"], TARGET_CALLBACK_P99_MS, " ms"),
        ],
        data={
            "params": {
                "command_rate": COMMAND_RATE,
                "callback_rate": CALLBACK_RATE,
                "phase_s": phase_s,
                "rounds": rounds,
            },
            "acks": {ALONE: alone, WITH: loaded},
            "callbacks": answered,
            "errors": {"acks": ack_errors, "callbacks": callback_errors},
            "server_cpu_s": cpu_s,
            "cpu_ms_per_callback": extra_cpu_ms,
            "ack_p99_ratio_per_round": per_round,
            "ack_p99_ms_per_round": round_p99s,
            "backends": backend_stats,
        },
    )
