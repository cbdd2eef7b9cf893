"""Memory: roombot's resident set size before and after thousands of commands.

Commands (`mute-all`/`unmute-all` on one room, the full write path) go in batches of 100 at
concurrency 20; after each batch the benchmark waits for roombot's background work to drain and
reads VmRSS from /proc, so the samples show retained memory, not work in flight. "Before" is after
a warm-up batch (first-use imports, caches and connection pools are not growth); the RSS right
after start-up is reported too. The slope over the second half tells a leak from a plateau.
"""

from __future__ import annotations

from typing import Any

from bench.load import Command, fire, pool
from bench.procs import peak_rss_bytes, rss_bytes
from bench.report import ScenarioResult, Table, Target
from bench.stack import CHANNEL, USERS, RunContext, Variant, drain, start_backends, start_roombot
from bench.stats import slope

ROOMS = 100
BATCH = 100
CONCURRENCY = 20
TARGET_MB = 20.0
_MB = 1024 * 1024


async def _variant(ctx: RunContext, variant: Variant, total: int) -> dict[str, Any]:
    workdir = ctx.scratch(f"memory/{variant.name}")
    backends = await start_backends(ctx, workdir, rooms=ROOMS)
    try:
        server = await start_roombot(ctx, variant, backends, workdir)
        url = server.base_url + "/slack/events"
        sent = 0

        async def batch(session: Any) -> None:
            nonlocal sent
            commands = []
            for j in range(sent, sent + BATCH):
                verb = "mute-all" if j % 2 == 0 else "unmute-all"
                commands.append(
                    Command(
                        f"{verb} room-{j % ROOMS:04d}",
                        USERS[j % len(USERS)],
                        CHANNEL,
                        backends.response_url(f"m{j}"),
                    )
                )
            sent += BATCH
            shots = await fire(session, url, commands, concurrency=CONCURRENCY)
            bad = [s for s in shots if s.status != 200 or s.body.strip()]
            if bad:
                raise RuntimeError(f"{len(bad)} unexpected acks, e.g. {bad[0].status}")
            await drain(ctx.session, server)

        try:
            start = rss_bytes(server.pid)
            async with pool(CONCURRENCY) as session:
                await batch(session)
                before = rss_bytes(server.pid)
                samples = []
                for _ in range(total // BATCH):
                    await batch(session)
                    samples.append((sent - BATCH, rss_bytes(server.pid)))
            after = rss_bytes(server.pid)
            peak = peak_rss_bytes(server.pid)
        finally:
            await server.stop()
        stats = await backends.stats()
    finally:
        await backends.stop()
    half = samples[len(samples) // 2 :]
    per_thousand = slope([n / 1000 for n, _ in half], [r / _MB for _, r in half])
    return {
        "commands": total,
        "rss_start_mb": start / _MB,
        "rss_before_mb": before / _MB,
        "rss_after_mb": after / _MB,
        "peak_mb": peak / _MB,
        "growth_mb": (after - before) / _MB,
        "growth_from_start_mb": (after - start) / _MB,
        "second_half_mb_per_1000": per_thousand,
        "samples": [{"commands": n, "rss_mb": r / _MB} for n, r in samples],
        "backends": stats,
    }


async def run(ctx: RunContext) -> ScenarioResult:
    """Measure RSS growth over the commands for every variant."""
    total = 1000 if ctx.quick else 5000
    results = {v.name: await _variant(ctx, v, total) for v in ctx.variants}
    rows = [
        [
            name,
            r["commands"],
            r["rss_start_mb"],
            r["rss_before_mb"],
            r["rss_after_mb"],
            r["growth_mb"],
            r["growth_from_start_mb"],
            r["second_half_mb_per_1000"],
            r["peak_mb"],
        ]
        for name, r in results.items()
    ]
    table = Table(
        title=f"Memory: roombot RSS over {total} commands (MB = MiB)",
        headers=[
            "roombot",
            "commands",
            "at start",
            "before",
            "after",
            "growth",
            "growth from start",
            "MB per 1000 (2nd half)",
            "peak",
        ],
        rows=rows,
        notes=[
            f"before: after a warm-up batch of {BATCH}; every sample is taken once background "
            f"work has drained; batches of {BATCH} at concurrency {CONCURRENCY}, "
            "ROOMBOT_RATE_LIMIT=200.",
        ],
    )
    targets = [
        Target(f"RSS growth over {total} commands ({name})", r["growth_mb"], TARGET_MB, " MB")
        for name, r in results.items()
    ]
    return ScenarioResult(
        name="memory",
        tables=[table],
        targets=targets,
        data={"params": {"commands": total, "batch": BATCH}, "runs": results},
    )
