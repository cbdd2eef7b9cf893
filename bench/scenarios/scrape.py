"""What operating roombot costs: ack latency with and without a 10/s scrape, same process.

One `roombot serve --http` gets the ack benchmark's load (signed `/room` commands at concurrency
50, the `write` and `ack-only` mixes) in alternating rounds: plain, scraped, scraped, plain, …
During a scraped round a scraper GETs `/metrics` and `/readyz` ten times a second each (a
Prometheus scrape and a readiness probe far more eager than any real one). Same process, same
warm state, alternating rounds: what differs is only the scraping.

Also reported: how many readiness checks the probes caused (`auth.test` calls reaching the fake
Slack, one per check), which the 5 s cache keeps near one per 5 s whatever the probe rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp

from bench.load import Command, fire, pool
from bench.procs import Server, cpu_seconds
from bench.report import ScenarioResult, Table, Target
from bench.scenarios.ack import RATE_LIMIT, ROOMS, WINDOW_FLUSH_S, bad_answer, commands_for
from bench.stack import RunContext, drain, start_backends, start_roombot
from bench.stats import latency_summary, percentile, ratio

MIXES = ("write", "ack-only")
SCRAPE_HZ = 10.0
SCRAPED_PATHS = ("/metrics", "/readyz")
#: Scraping may make the ack p99 at most this much worse (noise included) to count as free.
TARGET_RATIO = 1.10


async def _scrape(
    session: aiohttp.ClientSession, base_url: str, stop: asyncio.Event, seen: Counter[str]
) -> None:
    """GET each of `SCRAPED_PATHS` `SCRAPE_HZ` times a second until `stop` is set."""
    loop = asyncio.get_running_loop()
    due = loop.time()

    async def one(path: str) -> None:
        try:
            async with session.get(base_url + path) as response:
                await response.read()
                seen[f"{path} {response.status}"] += 1
        except aiohttp.ClientError:
            seen[f"{path} error"] += 1

    while not stop.is_set():
        await asyncio.gather(*(one(path) for path in SCRAPED_PATHS))
        due += 1 / SCRAPE_HZ
        await asyncio.sleep(max(0.0, due - loop.time()))


async def _round(
    ctx: RunContext,
    server: Server,
    loadgen: aiohttp.ClientSession,
    scraper: aiohttp.ClientSession,
    commands: list[Command],
    *,
    mix: str,
    scrape: bool,
    seen: Counter[str],
) -> dict[str, Any]:
    stop = asyncio.Event()
    task = asyncio.create_task(_scrape(scraper, server.base_url, stop, seen)) if scrape else None
    if task is not None:
        await asyncio.sleep(0.3)  # scraping is under way before the first command
    cpu0 = cpu_seconds(server.pid)
    started = time.monotonic()
    shots = await fire(loadgen, server.base_url + "/slack/events", commands, concurrency=50)
    ack_s = time.monotonic() - started
    drain_s = await drain(ctx.session, server)
    cpu_s = cpu_seconds(server.pid) - cpu0
    if mix == "write":
        await asyncio.sleep(WINDOW_FLUSH_S)
    if task is not None:
        stop.set()
        await task
    return {
        "latencies": [s.latency_s for s in shots],
        "errors": sum(bad_answer(mix, s, False) for s in shots),
        "cpu_s": cpu_s,
        "ack_s": ack_s,
        "drain_s": drain_s,
        "elapsed_s": time.monotonic() - started,
    }


async def run(ctx: RunContext) -> ScenarioResult:
    """Run the scrape benchmark on this checkout (the first variant) and return its tables."""
    total = 400 if ctx.quick else 2000
    rounds = 2 if ctx.quick else 8
    warmup = 50 if ctx.quick else 100
    per_round = total // rounds
    workdir = ctx.scratch("scrape")
    backends = await start_backends(
        ctx, workdir, rooms=ROOMS, rate_limit=RATE_LIMIT, yield_to_loadgen=True
    )
    variant = ctx.variants[0]
    server = await start_roombot(
        ctx, variant, backends, ctx.scratch(f"scrape/{variant.name}"), rate_limit=RATE_LIMIT
    )
    loadgen = pool(50)
    scraper = aiohttp.ClientSession()
    seen: Counter[str] = Counter()
    samples: dict[tuple[str, bool], dict[str, Any]] = {}
    checks = {"scraped_s": 0.0, "auth_tests": 0}
    try:
        offset = 0
        await fire(
            loadgen,
            server.base_url + "/slack/events",
            commands_for(backends, "write", warmup, offset),
            concurrency=50,
        )
        await drain(ctx.session, server)
        offset += warmup
        for mix in MIXES:
            for r in range(rounds):
                for scrape in (False, True) if r % 2 == 0 else (True, False):
                    entry = samples.setdefault(
                        (mix, scrape),
                        {"latencies": [], "errors": 0, "cpu_s": 0.0, "ack_s": 0.0, "p99s": []},
                    )
                    commands = commands_for(backends, mix, per_round, offset)
                    offset += per_round
                    auth0 = (await backends.stats())["slack_methods"].get("auth.test", 0)
                    result = await _round(
                        ctx, server, loadgen, scraper, commands, mix=mix, scrape=scrape, seen=seen
                    )
                    if scrape:
                        auth1 = (await backends.stats())["slack_methods"].get("auth.test", 0)
                        checks["auth_tests"] += auth1 - auth0
                        checks["scraped_s"] += result["elapsed_s"]
                    entry["latencies"] += result["latencies"]
                    entry["errors"] += result["errors"]
                    entry["cpu_s"] += result["cpu_s"]
                    entry["ack_s"] += result["ack_s"]
                    entry["p99s"].append(percentile(result["latencies"], 99))
        backend_stats = await backends.stats()
    finally:
        await loadgen.close()
        await scraper.close()
        await server.stop()
        await backends.stop()
    return _result(samples, seen, checks, backend_stats, total, rounds, warmup)


def _result(
    samples: dict[tuple[str, bool], dict[str, Any]],
    seen: Counter[str],
    checks: dict[str, Any],
    backend_stats: dict[str, Any],
    total: int,
    rounds: int,
    warmup: int,
) -> ScenarioResult:
    rows = []
    targets = []
    summaries: dict[str, Any] = {}
    for mix in MIXES:
        plain = latency_summary(samples[(mix, False)]["latencies"])
        for scrape in (False, True):
            entry = samples[(mix, scrape)]
            summary = latency_summary(entry["latencies"])
            n = summary["n"]
            p99_ratio = ratio(summary["p99_ms"], plain["p99_ms"])
            per_round = [
                ratio(mine, base)
                for mine, base in zip(entry["p99s"], samples[(mix, False)]["p99s"], strict=True)
            ]
            label = "scraped 10/s" if scrape else "not scraped"
            summaries[f"{mix}/{label}"] = {
                **summary,
                "p99_ratio_to_not_scraped": p99_ratio,
                "p99_ratio_per_round": per_round,
                "cpu_ms_per_command": 1000 * entry["cpu_s"] / n,
                "acks_per_s": n / entry["ack_s"],
                "errors": entry["errors"],
            }
            rows.append(
                [
                    mix,
                    label,
                    n,
                    summary["p50_ms"],
                    summary["p95_ms"],
                    summary["p99_ms"],
                    summary["max_ms"],
                    "1.00" if not scrape else p99_ratio,
                    None if not scrape else f"{min(per_round):.2f}–{max(per_round):.2f}",
                    1000 * entry["cpu_s"] / n,
                    n / entry["ack_s"],
                    entry["errors"],
                ]
            )
            if scrape:
                targets.append(
                    Target(f"ack p99 scraped / not scraped ({mix})", p99_ratio, TARGET_RATIO, "×")
                )
    scrapes = sum(count for key, count in seen.items() if key.startswith("/metrics"))
    probes = sum(count for key, count in seen.items() if key.startswith("/readyz"))
    scraped_s = checks["scraped_s"]
    table = Table(
        title=f"Scrape cost: {total} signed /room commands per mix and condition, one roombot, "
        "with and without /metrics + /readyz at 10/s each",
        headers=[
            "mix",
            "scraping",
            "n",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "p99 ÷ not scraped",
            "per round",
            "CPU ms/cmd",
            "acks/s",
            "errors",
        ],
        rows=rows,
        notes=[
            f"{rounds} alternating rounds per mix and condition on the same process, after "
            f"{warmup} warm-up commands; each round ends when background work has drained.",
            f"Scraped rounds: {scrapes} GET /metrics and {probes} GET /readyz in {scraped_s:.0f} s "
            f"({dict(sorted(seen.items()))}); the readiness checks they caused: "
            f"{checks['auth_tests']} auth.test calls (the cache allows one per 5 s: "
            f"≤ {scraped_s / 5 + len(MIXES) * rounds:.0f}).",
            "CPU ms/cmd: server CPU over the round (scraping included in scraped rounds) ÷ "
            "commands.",
        ],
    )
    return ScenarioResult(
        name="scrape",
        tables=[table],
        targets=targets,
        data={
            "params": {
                "commands_per_mix_and_condition": total,
                "rounds": rounds,
                "warmup": warmup,
                "scrape_hz": SCRAPE_HZ,
                "paths": list(SCRAPED_PATHS),
            },
            "summaries": summaries,
            "scrapes": dict(seen),
            "readiness_checks": checks,
            "backends": backend_stats,
        },
    )
