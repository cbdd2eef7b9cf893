"""Ack latency: signed `/room` commands at a fixed concurrency, to roombot and to a bare `AsyncApp`.

Both servers run as subprocesses on the same dedicated core, get the same load in the same run,
and are measured in alternating rounds (bare, roombot, roombot, bare, …) so that drifting machine
noise hits both alike. Two command mixes:

- `write`: `mute-all room-N` / `unmute-all room-N`, the common case. roombot acks, then posts the
  parent message, calls Room Engine and threads the outcome; that background work shares the
  event loop with the acks that follow, which is the point of measuring under load. Each round
  ends once roombot has no background work left, so rounds never overlap.
- `ack-only`: the same commands with `--dry-run`, answered entirely inside the ack: the cost of
  roombot's own ack path (parse, policy, rendering) without any background work.

CPU per command is the server process's CPU time over the round (background work included)
divided by the commands sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench.load import Command, Shot, fire, pool
from bench.procs import Server, cpu_seconds
from bench.report import ScenarioResult, Table, Target
from bench.stack import (
    CHANNEL,
    USERS,
    Backends,
    RunContext,
    drain,
    start_backends,
    start_bare,
    start_roombot,
)
from bench.stats import latency_summary, percentile, ratio

ROOMS = 100
RATE_LIMIT = 200  # the most roombot may use, so background work drains quickly
#: DESIGN §2.10's bound (the issue "One life for every request"; it was 1.5 before).
TARGET_RATIO = 1.25
MIXES = ("write", "ack-only")
BARE = "bare AsyncApp"
WINDOW_FLUSH_S = 1.1


def commands_for(backends: Backends, mix: str, count: int, offset: int) -> list[Command]:
    """`count` commands of `mix` (write, or ack-only with --dry-run) over the benchmark rooms."""
    commands = []
    for j in range(offset, offset + count):
        verb = "mute-all" if j % 2 == 0 else "unmute-all"
        text = f"{verb} room-{j % ROOMS:04d}" + (" --dry-run" if mix == "ack-only" else "")
        commands.append(
            Command(text, USERS[j % len(USERS)], CHANNEL, backends.response_url(f"a{j}"))
        )
    return commands


def bad_answer(mix: str, shot: Shot, is_bare: bool) -> bool:
    """True when `shot` is not the answer its mix expects (an empty ack, or an ephemeral one)."""
    if shot.status != 200:
        return True
    if is_bare:
        return False
    # A write is acked with an empty body; a dry run is answered in the ack, ephemerally.
    return bool(shot.body.strip()) if mix == "write" else "ephemeral" not in shot.body


async def run(ctx: RunContext) -> ScenarioResult:
    """Run the ack benchmark and return its tables and targets."""
    total = 400 if ctx.quick else 2000
    concurrency = 50
    rounds = 2 if ctx.quick else 8
    warmup = 50 if ctx.quick else 100
    per_round = total // rounds
    workdir = ctx.scratch("ack")
    backends = await start_backends(
        ctx, workdir, rooms=ROOMS, rate_limit=RATE_LIMIT, yield_to_loadgen=True
    )
    servers: list[tuple[str, Server]] = []
    pools: dict[str, aiohttp.ClientSession] = {}
    try:
        servers.append((BARE, await start_bare(ctx, backends, workdir)))
        for variant in ctx.variants:
            server = await start_roombot(
                ctx, variant, backends, ctx.scratch(f"ack/{variant.name}"), rate_limit=RATE_LIMIT
            )
            servers.append((variant.name, server))
        pools = {name: pool(concurrency) for name, _ in servers}
        offset = 0
        for name, server in servers:
            await fire(
                pools[name],
                server.base_url + "/slack/events",
                commands_for(backends, "write", warmup, offset),
                concurrency=concurrency,
            )
            await drain(ctx.session, server)
            offset += warmup
        samples: dict[tuple[str, str], dict[str, Any]] = {}
        for mix in MIXES:
            for r in range(rounds):
                shift = r % len(servers)
                for name, server in servers[shift:] + servers[:shift]:
                    entry = samples.setdefault(
                        (mix, name),
                        {
                            "latencies": [],
                            "errors": 0,
                            "cpu_s": 0.0,
                            "ack_s": 0.0,
                            "drain_s": 0.0,
                            "rate_limited": 0,
                            "round_p99s": [],
                        },
                    )
                    commands = commands_for(backends, mix, per_round, offset)
                    offset += per_round
                    limited0 = (await backends.stats())["rate_limited"]
                    cpu0 = cpu_seconds(server.pid)
                    started = time.monotonic()
                    shots = await fire(
                        pools[name],
                        server.base_url + "/slack/events",
                        commands,
                        concurrency=concurrency,
                    )
                    entry["ack_s"] += time.monotonic() - started
                    entry["drain_s"] += await drain(ctx.session, server)
                    entry["cpu_s"] += cpu_seconds(server.pid) - cpu0
                    entry["rate_limited"] += (await backends.stats())["rate_limited"] - limited0
                    entry["latencies"] += [s.latency_s for s in shots]
                    entry["round_p99s"].append(percentile([s.latency_s for s in shots], 99))
                    if mix == "write" and name != BARE:
                        # Let this round's Room Engine calls leave the emulator's one-second
                        # window, so they are not counted against the next server's round.
                        await asyncio.sleep(WINDOW_FLUSH_S)
                    entry["errors"] += sum(bad_answer(mix, s, name == BARE) for s in shots)
        backend_stats = await backends.stats()
    finally:
        for session in pools.values():
            await session.close()
        for _name, server in servers:
            await server.stop()
        await backends.stop()
    return _result(ctx, samples, backend_stats, total, concurrency, rounds, warmup)


def _result(
    ctx: RunContext,
    samples: dict[tuple[str, str], dict[str, Any]],
    backend_stats: dict[str, Any],
    total: int,
    concurrency: int,
    rounds: int,
    warmup: int,
) -> ScenarioResult:
    rows = []
    targets = []
    summaries: dict[str, dict[str, Any]] = {}
    for mix in MIXES:
        bare = latency_summary(samples[(mix, BARE)]["latencies"])
        bare_rounds = samples[(mix, BARE)]["round_p99s"]
        for (entry_mix, name), entry in samples.items():
            if entry_mix != mix:
                continue
            summary = latency_summary(entry["latencies"])
            n = summary["n"]
            p99_ratio = ratio(summary["p99_ms"], bare["p99_ms"])
            per_round = [
                ratio(mine, base)
                for mine, base in zip(entry["round_p99s"], bare_rounds, strict=True)
            ]
            summaries[f"{mix}/{name}"] = {
                **summary,
                "p99_ratio_to_bare": p99_ratio,
                "errors": entry["errors"],
                "cpu_ms_per_command": 1000 * entry["cpu_s"] / n,
                "acks_per_s": n / entry["ack_s"],
                "drain_s": entry["drain_s"],
                "rate_limited": entry["rate_limited"],
                "p99_ratio_per_round": per_round,
            }
            rows.append(
                [
                    mix,
                    name,
                    n,
                    summary["p50_ms"],
                    summary["p95_ms"],
                    summary["p99_ms"],
                    summary["max_ms"],
                    "1.00" if name == BARE else p99_ratio,
                    None if name == BARE else f"{min(per_round):.2f}–{max(per_round):.2f}",
                    1000 * entry["cpu_s"] / n,
                    n / entry["ack_s"],
                    entry["rate_limited"] if mix == "write" and name != BARE else None,
                    entry["errors"],
                ]
            )
            if name != BARE and mix == "write":
                targets.append(
                    Target(f"ack p99 / bare p99 ({name}, write)", p99_ratio, TARGET_RATIO, "×")
                )
    table = Table(
        title=f"Ack latency: {total} signed /room commands per server at concurrency {concurrency}",
        headers=[
            "mix",
            "server",
            "n",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "p99 ÷ bare",
            "per round",
            "CPU ms/cmd",
            "acks/s",
            "60007",
            "errors",
        ],
        rows=rows,
        notes=[
            f"{rounds} interleaved rounds per mix after {warmup} warm-up commands per server; "
            "each roombot round ends when its background work has drained.",
            "write: mute-all/unmute-all on one room (ack, then parent post, Room Engine call, "
            "threaded reply in the background); ack-only: the same with --dry-run, answered "
            "inside the ack.",
            "per round: the lowest and highest p99 ÷ bare p99 of single rounds (the same round "
            "number for both), to show how noisy the machine was.",
            "CPU ms/cmd: server CPU over the round, background work included.",
            f'60007: Room Engine answers "frequency limit exceeded" during the server\'s rounds '
            f"(ROOMBOT_RATE_LIMIT={RATE_LIMIT}, emulator limit {RATE_LIMIT}/s, Tencent's own); "
            "roombot retries them.",
        ],
    )
    return ScenarioResult(
        name="ack",
        tables=[table],
        targets=targets,
        data={
            "params": {
                "commands_per_server_and_mix": total,
                "concurrency": concurrency,
                "rounds": rounds,
                "warmup": warmup,
                "rate_limit": RATE_LIMIT,
            },
            "summaries": summaries,
            "backends": backend_stats,
        },
    )
