"""What one command costs, counted: store transactions, Room Engine calls, Slack calls and CPU
for a one-room write, on each store backend (DESIGN §2.10: at most four store transactions a
write, the shared rate budget included, and no heartbeat write for a write that ends within a
third of its lease).

One roombot on SQLite and one on PostgreSQL (a throwaway server, `testkit.pgserver`) run side by
side against the same backends; one-room writes go one at a time, alternating between them, each
waiting for its final status (as in `e2e`). Counted over the measured writes:

- store transactions per write, by operation, from the replica's own counter
  (`roombot_store_transactions_total` on `/metrics`);
- on PostgreSQL also the database's count (`pg_stat_database.xact_commit`, read from another
  database once the counters have settled): every transaction, whoever makes it;
- Room Engine and Slack calls per write, as the backends received them;
- CPU per write (user + system, every thread of the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench.procs import Server, cpu_seconds
from bench.report import ScenarioResult, Table, Target
from bench.scenarios.e2e import ROOMS, WARMUP, Driver
from bench.scenarios.replicas import start_replica, temporary_database
from bench.stack import RunContext, start_backends
from testkit.pgserver import PostgresUnavailable

#: The issue's bound on a one-room write (DESIGN §2.10).
TARGET_TRANSACTIONS = 4.0
#: What a replica does whatever the traffic, counted apart and not charged to the writes: its
#: loop's look, every tick, for expired leases and due requests (one transaction), and the
#: readiness check's read of the database, which a `/metrics` scrape sets off when the last
#: check is older than 5 s (the bench's own reading of the counters does, once). A one-room
#: write reads nothing: tests/bot/test_request_costs.py shows it by the same counter.
IDLE_OPERATIONS = frozenset({"find_work", "read"})
#: PostgreSQL 15 backends report their statistics when idle within 10 s.
STATS_FLUSH_S = 11.0
_METRIC = "roombot_store_transactions_total"


async def _store_transactions(ctx: RunContext, server: Server) -> Counter[str]:
    """The replica's store transactions so far, by operation."""
    async with ctx.session.get(server.base_url + "/metrics") as response:
        text = await response.text()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith(_METRIC + "{"):
            labels, value = line[len(_METRIC) + 1 :].rsplit("} ", 1)
            operation = labels.split('operation="', 1)[1].split('"', 1)[0]
            counts[operation] += int(float(value))
    return counts


async def _xact_commits(url: str) -> tuple[int, int]:
    """The database's committed transactions and the sessions opened on it so far (each
    session's start commits one transaction of its own); read from the server's `postgres`
    database, so the reading is not counted. A backend reports its counts at most once a
    second, and an idle one within `STATS_FLUSH_S`: read after waiting that long."""
    name = urlsplit(url).path.lstrip("/")
    elsewhere = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    async with await psycopg.AsyncConnection.connect(elsewhere, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT xact_commit, sessions FROM pg_stat_database WHERE datname = %s", (name,)
        )
        row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def run(ctx: RunContext) -> ScenarioResult:
    """Count what one one-room write costs on each backend."""
    count = 50 if ctx.quick else 200
    workdir = ctx.scratch("costs")
    async with contextlib.AsyncExitStack() as stack:
        try:
            database = await stack.enter_async_context(temporary_database(ctx))
        except PostgresUnavailable as exc:
            raise RuntimeError(f"the costs scenario needs PostgreSQL: {exc}") from None
        backends = await start_backends(ctx, workdir, rooms=ROOMS)
        stack.push_async_callback(backends.stop)
        servers: dict[str, Server] = {}
        for backend, target in (
            ("SQLite", str(ctx.scratch("costs/sqlite") / "audit.sqlite3")),
            ("PostgreSQL", database),
        ):
            where = ctx.scratch(f"costs/{backend.lower()}")
            servers[backend] = await start_replica(ctx, backends, where, backend.lower(), target)
            stack.push_async_callback(servers[backend].stop)
        driver = Driver(ctx, backends)
        for server in servers.values():
            for _ in range(WARMUP):
                await driver.one(server)
        await asyncio.sleep(STATS_FLUSH_S)  # the database's counts are complete by now
        before = {name: await _store_transactions(ctx, s) for name, s in servers.items()}
        commits_before = await _xact_commits(database)
        started = time.monotonic()
        cpu_before = {name: cpu_seconds(s.pid) for name, s in servers.items()}
        slack_before = len(await backends.slack_calls())
        tencent_before = len(await backends.tencent_calls())
        calls: dict[str, dict[str, int]] = {n: {"slack": 0, "tencent": 0} for n in servers}
        for _ in range(count):
            for name, server in servers.items():
                await driver.one(server)
                slack_now = len(await backends.slack_calls())
                tencent_now = len(await backends.tencent_calls())
                calls[name]["slack"] += slack_now - slack_before
                calls[name]["tencent"] += tencent_now - tencent_before
                slack_before, tencent_before = slack_now, tencent_now
        cpu = {name: cpu_seconds(s.pid) - cpu_before[name] for name, s in servers.items()}
        await asyncio.sleep(STATS_FLUSH_S)
        after = {name: await _store_transactions(ctx, s) for name, s in servers.items()}
        commits_after = await _xact_commits(database)
        commits = commits_after[0] - commits_before[0]
        sessions = commits_after[1] - commits_before[1]
        window_s = time.monotonic() - started
    measured: dict[str, dict[str, Any]] = {}
    for name in servers:
        spent = after[name] - before[name]
        idle = {op: n for op, n in spent.items() if op in IDLE_OPERATIONS}
        writes = {op: n for op, n in spent.items() if op not in IDLE_OPERATIONS}
        measured[name] = {
            "writes": count,
            "store_transactions_per_write": sum(writes.values()) / count,
            "by_operation": {op: n / count for op, n in sorted(writes.items())},
            "idle_transactions_per_s": sum(idle.values()) / window_s,
            "all_store_transactions": sum(spent.values()),
            "room_engine_calls_per_write": calls[name]["tencent"] / count,
            "slack_calls_per_write": calls[name]["slack"] / count,
            "cpu_ms_per_write": 1000 * cpu[name] / count,
        }
    pg = measured["PostgreSQL"]
    idle_pg = pg["all_store_transactions"] - pg["store_transactions_per_write"] * count
    pg["database_transactions"] = commits
    pg["database_sessions_opened"] = sessions
    # The database counts the loop's idle transactions too: they are the replica's own count of
    # them (the same transactions), taken away.
    pg["database_transactions_per_write"] = (commits - idle_pg) / count
    return _result(measured, count)


def _sessions_note(measured: dict[str, dict[str, Any]]) -> str:
    opened = measured["PostgreSQL"].get("database_sessions_opened")
    return (
        f"Sessions opened on the database in the window: {opened} (pg_stat_database.sessions; "
        "each one's start is a transaction in the database's count)."
    )


def _result(measured: dict[str, dict[str, Any]], count: int) -> ScenarioResult:
    rows: list[list[Any]] = []
    for name, data in measured.items():
        by_op = ", ".join(f"{op} {n:g}" for op, n in data["by_operation"].items())
        rows.append(
            [
                name,
                data["store_transactions_per_write"],
                data.get("database_transactions_per_write"),
                by_op,
                data["idle_transactions_per_s"],
                data["room_engine_calls_per_write"],
                data["slack_calls_per_write"],
                data["cpu_ms_per_write"],
            ]
        )
    table = Table(
        title=f"What one one-room write costs ({count} writes one at a time per backend)",
        headers=[
            "backend",
            "store transactions",
            "database's own count",
            "by operation",
            "idle transactions/s",
            "Room Engine calls",
            "Slack calls",
            "CPU ms",
        ],
        rows=rows,
        notes=[
            "Store transactions: the replica's own counter (roombot_store_transactions_total) "
            "over the measured writes ÷ writes, the shared rate budget's included.",
            "Database's own count: pg_stat_database.xact_commit over the same window, less the "
            "replica's idle transactions, ÷ writes (the database counts every transaction it "
            "committed, whoever made it).",
            _sessions_note(measured),
            "Idle transactions: what a replica does whatever the traffic, per second over the "
            "window, not charged to the writes: its loop's look every tick for expired leases "
            "and due requests (find_work: one transaction a tick), and the readiness check's "
            "read a /metrics scrape sets off (the bench's own reading of these counters).",
            "Room Engine calls: the read before and the change. Slack calls: the parent, the "
            "threaded reply, the parent's final status.",
        ],
    )
    targets = [
        Target(
            f"store transactions per one-room write, {name}",
            float(data["store_transactions_per_write"]),
            TARGET_TRANSACTIONS,
        )
        for name, data in measured.items()
    ]
    targets.append(
        Target(
            "PostgreSQL transactions per one-room write (pg_stat_database)",
            float(measured["PostgreSQL"]["database_transactions_per_write"]),
            TARGET_TRANSACTIONS,
        )
    )
    return ScenarioResult(
        name="costs",
        tables=[table],
        targets=targets,
        data={"measured": measured},
    )
