"""Several replicas on one PostgreSQL: one budget for all, acks as fast as one replica's, and a
killed replica's work reported by a survivor within the lease.

Three `roombot serve --http` replicas share a PostgreSQL database (a throwaway server with
PostgreSQL's durable defaults, `testkit.pgserver`), beside one replica on SQLite for comparison,
all in the same run against the same backends (fake Slack, and the emulator enforcing the bot's
budget of `RATE` calls/s, Room Engine `RTT_MS` away as in `bulk`). Three parts:

- **budget**: 20 users each send a 10-room command at the same moment, spread round-robin over
  the replicas (`ROOMBOT_RATE_LIMIT=RATE` on each: the budget is for all of them together).
  Reported: the busiest one-second window of one API's Room Engine arrivals across all replicas
  against the budget (per API, like Tencent's limit), 60007 answers, and the wall time from the
  sends to the last threaded reply against the ideal N / rate (N: the calls of the busiest API).
  Each repetition starts cold, as in `bulk`.
- **ack**: signed write commands at a fixed concurrency, in rounds taking turns: to the one
  SQLite replica, spread over the three PostgreSQL replicas, to one PostgreSQL replica alone,
  and spread over three processes sharing nothing (a SQLite file each: what co-locating three
  processes on one core costs, apart from the database); the p99 of each, and its ratio.
- **kill**: the same 20 × 10 burst, and one replica is killed (SIGKILL) a third of the way
  through. Reported: the time from the kill to the last survivor's report on the dead replica's
  unfinished requests (in their threads), against `ROOMBOT_LEASE_S` (its default, 30) + 5 s; and
  that no audit row stays pending nor any lease held.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import psycopg

from bench.load import Command, fire, pool
from bench.procs import Server, cpu_seconds, start_server, wait_listening
from bench.report import ScenarioResult, Table, Target
from bench.scenarios.bulk import BUDGET_HEADERS, budget_cells, burst
from bench.stack import CHANNEL, USERS, Backends, RunContext, drain, roombot_env, start_backends
from bench.stats import latency_summary, percentile, ratio
from testkit.pgserver import PostgresUnavailable, TemporaryPostgres

RATE = 100
REPLICAS = 3
USERS_AT_ONCE = 20
ROOMS_EACH = 10
ROOMS = USERS_AT_ONCE * ROOMS_EACH
RTT_MS = 20.0
HANDSHAKE_RTTS = 2.0
#: The lease the replicas run with: ROOMBOT_LEASE_S's default, what production runs.
LEASE_S = 30.0
TARGET_WALL_RATIO = 1.10
TARGET_ACK_RATIO = 1.2
TARGET_REPORT_MARGIN_S = 5.0
#: Pause before each burst: past httpx's keep-alive expiry, as in `bulk`.
COLD_S = 5.5
ACK_CONCURRENCY = 30
#: How a parent's status line starts once its request has finished (bot/wording/results.py).
_FINAL_MARKS = ("✅", "❌", "⚠️")
SQLITE = "1 replica, SQLite"
CLUSTER = f"{REPLICAS} replicas, PostgreSQL"
ONE_PG = "1 replica, PostgreSQL"
#: The control: as many processes as replicas on the one core, but sharing nothing (a SQLite
#: file each), to tell what co-locating them costs from what the shared database costs.
SPLIT = f"{REPLICAS} processes, a SQLite file each"


def _rooms(first: int, count: int) -> str:
    return " ".join(f"room-{i:04d}" for i in range(first, first + count))


def _pin_tree(root: int, cpus: set[int] | None) -> None:
    """Pin a process and its children (PostgreSQL's postmaster forks one per connection, which
    then inherits the postmaster's affinity)."""
    if cpus is None:
        return
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    todo = [root]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, cpus)
        todo += children.get(pid, [])


@contextlib.asynccontextmanager
async def temporary_database(ctx: RunContext) -> AsyncIterator[str]:
    """A throwaway PostgreSQL with durable settings, pinned beside the backends; its URL."""
    server = TemporaryPostgres(durable=True)
    await asyncio.to_thread(server.start)
    try:
        pid = server.postmaster_pid
        if pid is not None:
            _pin_tree(pid, ctx.placement.backends)
        url = server.url.rsplit("/", 1)[0] + "/roombot_bench"
        async with await psycopg.AsyncConnection.connect(server.url, autocommit=True) as conn:
            await conn.execute("CREATE DATABASE roombot_bench")
        yield url
    finally:
        await asyncio.to_thread(server.stop)


async def start_replica(
    ctx: RunContext, backends: Backends, workdir: Path, name: str, audit_db: str
) -> Server:
    env = roombot_env(backends, workdir, rate_limit=RATE, src=None)
    env["ROOMBOT_AUDIT_DB"] = audit_db
    env["ROOMBOT_LEASE_S"] = f"{LEASE_S:g}"
    argv = ["-m", "bot", "serve", "--http", "--host", "127.0.0.1", "--port", "0"]
    server = await start_server(name, argv, env=env, cwd=workdir, cpus=ctx.placement.server)
    await wait_listening(server)
    return server


def _burst(backends: Backends, tag: str, verb: str) -> list[Command]:
    return [
        Command(
            f"{verb} {_rooms(u * ROOMS_EACH, ROOMS_EACH)}",
            USERS[u],
            CHANNEL,
            backends.response_url(f"{tag}-{u}"),
        )
        for u in range(USERS_AT_ONCE)
    ]


def _urls(servers: Sequence[Server]) -> list[str]:
    return [s.base_url + "/slack/events" for s in servers]


async def _budget_case(
    backends: Backends, replicas: Sequence[Server], tag: str, verb: str
) -> dict[str, Any]:
    """The 20 × 10 burst over the replicas: wall vs ideal, busiest second, 60007s."""
    return await burst(backends, _urls(replicas), _burst(backends, tag, verb), timeout_s=90)


def _ack_commands(backends: Backends, count: int, offset: int) -> list[Command]:
    return [
        Command(
            f"{'mute-all' if j % 2 == 0 else 'unmute-all'} room-{j % ROOMS:04d}",
            USERS[j % len(USERS)],
            CHANNEL,
            backends.response_url(f"a{j}"),
        )
        for j in range(offset, offset + count)
    ]


async def _ack_rounds(
    ctx: RunContext,
    backends: Backends,
    sqlite: Server,
    replicas: Sequence[Server],
    split: Sequence[Server],
    *,
    rounds: int,
    per_round: int,
) -> dict[str, dict[str, Any]]:
    """Rounds of write commands in turn: to the SQLite replica, spread over the PostgreSQL
    replicas, to one of them alone (what the database itself costs an ack), and spread over
    processes sharing nothing (what co-locating them on one core costs)."""
    targets = {
        SQLITE: [sqlite],
        CLUSTER: list(replicas),
        ONE_PG: [replicas[0]],
        SPLIT: list(split),
    }
    samples: dict[str, dict[str, Any]] = {
        name: {"latencies": [], "round_p99s": [], "errors": 0, "cpu_s": 0.0} for name in targets
    }
    offset = 0
    async with pool(ACK_CONCURRENCY) as session:
        for servers in targets.values():  # warm-up, not measured
            await fire(
                session,
                _urls(servers),
                _ack_commands(backends, 60, offset),
                concurrency=ACK_CONCURRENCY,
            )
            offset += 60
            for server in servers:
                await drain(ctx.session, server)
        for r in range(rounds):
            order = list(targets.items())
            for name, servers in order[r % len(order) :] + order[: r % len(order)]:
                cpu0 = sum(cpu_seconds(server.pid) for server in servers)
                shots = await fire(
                    session,
                    _urls(servers),
                    _ack_commands(backends, per_round, offset),
                    concurrency=ACK_CONCURRENCY,
                )
                offset += per_round
                for server in servers:
                    await drain(ctx.session, server)
                await asyncio.sleep(1.1)  # this round's calls leave the emulator's window
                entry = samples[name]
                entry["cpu_s"] += sum(cpu_seconds(server.pid) for server in servers) - cpu0
                entry["latencies"] += [s.latency_s for s in shots]
                entry["round_p99s"].append(percentile([s.latency_s for s in shots], 99))
                entry["errors"] += sum(1 for s in shots if s.status != 200 or s.body.strip())
    return {
        name: {
            **latency_summary(s["latencies"]),
            "round_p99s": s["round_p99s"],
            "errors": s["errors"],
            "cpu_ms_per_command": 1000 * s["cpu_s"] / max(1, len(s["latencies"])),
        }
        for name, s in samples.items()
    }


async def _kill_case(
    backends: Backends, replicas: list[Server], database: str, verb: str
) -> dict[str, Any]:
    """The burst again; SIGKILL replica 0 a third of the way through; time the reports."""
    before = await backends.stats()
    messages_before = await backends.messages()
    commands = _burst(backends, "k", verb)
    victim_users = {USERS[u] for u in range(0, USERS_AT_ONCE, len(replicas))}
    async with pool(len(commands)) as session:
        shots = await fire(session, _urls(replicas), commands, concurrency=len(commands))
    if any(s.status != 200 for s in shots):
        raise RuntimeError("unexpected acks in the kill case")
    expected_calls = 2 * ROOMS  # each 10-room command reads, then writes
    while True:  # polling another process's counter: no event to wait on
        made = (await backends.stats())["tencent_calls"] - before["tencent_calls"]
        if made >= expected_calls // 3:
            break
        await asyncio.sleep(0.01)
    victim = replicas[0]
    victim.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    await victim.proc.wait()
    calls_at_kill = (await backends.stats())["tencent_calls"] - before["tencent_calls"]

    # The victim's requests, one per user: each ends with its own final status (it finished
    # before the kill) or a survivor's report, in its thread or, when the kill came before the
    # lease knew the thread, in the channel under the request's head.
    deadline = killed + LEASE_S + 60
    first_message = len(messages_before)
    while True:
        messages = (await backends.messages())[first_message:]
        reported = {m["thread_ts"] for m in messages if m["takeover"] and m["thread_ts"]}
        unsettled = []
        for user in victim_users:
            mine = f"<@{user}>"
            top = [m for m in messages if not m["thread_ts"] and m["head"].startswith(mine)]
            settled = any(
                m["takeover"]  # reported in the channel, under the request's head
                or m["ts"] in reported
                or m["last_line"].startswith(_FINAL_MARKS)
                for m in top
            )
            if not settled:
                unsettled.append(user)
        if not unsettled:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the requests of {unsettled} were never reported")
        await asyncio.sleep(0.1)
    slack = await backends.slack_calls(before["slack_calls"])
    reports = [c for c in slack if c["takeover"]]
    report_times = [c["at"] - killed for c in reports]
    async with await psycopg.AsyncConnection.connect(database) as conn:
        cur = await conn.execute("SELECT count(*) FROM audit_entries WHERE outcome = 'pending'")
        pending = (await cur.fetchone() or (0,))[0]
        cur = await conn.execute("SELECT count(*) FROM requests WHERE owner IS NOT NULL")
        leases = (await cur.fetchone() or (0,))[0]
    return {
        "killed_after_calls": calls_at_kill,
        "victim_requests": len(victim_users),
        "reported_requests": len(reports),
        "finished_before_kill": len(victim_users) - len(reports),
        "first_report_s": min(report_times) if report_times else None,
        "last_report_s": max(report_times) if report_times else None,
        "pending_rows_after": int(pending),
        "leases_after": int(leases),
    }


async def run(ctx: RunContext) -> ScenarioResult:
    """Run the three parts and report them against their targets."""
    reps = 1 if ctx.quick else 3
    rounds = 2 if ctx.quick else 4
    per_round = 75 if ctx.quick else 150
    workdir = ctx.scratch("replicas")
    async with contextlib.AsyncExitStack() as stack:
        try:
            database = await stack.enter_async_context(temporary_database(ctx))
        except PostgresUnavailable as exc:
            raise RuntimeError(f"the replicas scenario needs PostgreSQL: {exc}") from None
        backends = await start_backends(
            ctx, workdir, rooms=ROOMS, rate_limit=RATE, rtt_ms=RTT_MS, handshake_rtts=HANDSHAKE_RTTS
        )
        stack.push_async_callback(backends.stop)
        replicas: list[Server] = []
        for i in range(REPLICAS):
            where = ctx.scratch(f"replicas/r{i}")
            replicas.append(await start_replica(ctx, backends, where, f"replica-{i}", database))
            stack.push_async_callback(replicas[-1].stop)
        sqlite_db = str(ctx.scratch("replicas/sqlite") / "audit.sqlite3")
        sqlite = await start_replica(
            ctx, backends, ctx.scratch("replicas/sqlite"), "sqlite", sqlite_db
        )
        stack.push_async_callback(sqlite.stop)
        split: list[Server] = []
        for i in range(REPLICAS):
            where = ctx.scratch(f"replicas/split{i}")
            split.append(
                await start_replica(
                    ctx, backends, where, f"split-{i}", str(where / "audit.sqlite3")
                )
            )
            stack.push_async_callback(split[-1].stop)

        budget_runs = []
        baseline_runs = []
        await _budget_case(backends, replicas, "w", "mute-all")  # warm-up
        await _budget_case(backends, [sqlite], "ws", "unmute-all")
        for rep in range(reps):
            verb = "unmute-all" if rep % 2 == 0 else "mute-all"
            await asyncio.sleep(COLD_S)
            budget_runs.append(await _budget_case(backends, replicas, f"b{rep}", verb))
            await asyncio.sleep(COLD_S)
            other = "mute-all" if verb == "unmute-all" else "unmute-all"
            baseline_runs.append(await _budget_case(backends, [sqlite], f"s{rep}", other))

        acks = await _ack_rounds(
            ctx, backends, sqlite, replicas, split, rounds=rounds, per_round=per_round
        )

        await asyncio.sleep(COLD_S)
        kill = await _kill_case(backends, replicas, database, "mute-all")
    return _result(
        {CLUSTER: budget_runs, SQLITE: baseline_runs},
        acks,
        kill,
        reps=reps,
        rounds=rounds,
        per_round=per_round,
    )


def _result(
    budget_runs: dict[str, list[dict[str, Any]]],
    acks: dict[str, dict[str, Any]],
    kill: dict[str, Any],
    *,
    reps: int,
    rounds: int,
    per_round: int,
) -> ScenarioResult:
    rows = [[name, *budget_cells(runs)] for name, runs in budget_runs.items()]
    cluster_runs = budget_runs[CLUSTER]
    ratios = [r["wall_s"] / r["ideal_s"] for r in cluster_runs]
    busiest = max(r["max_calls_in_1s"] for r in cluster_runs)
    limited = sum(r["rate_limited"] for r in cluster_runs)
    budget = Table(
        title=f"Replicas: {USERS_AT_ONCE} users × {ROOMS_EACH} rooms at once, "
        f"ROOMBOT_RATE_LIMIT={RATE} (for all replicas together)",
        headers=["servers", *BUDGET_HEADERS],
        rows=rows,
        notes=[
            f"{CLUSTER}: commands go round-robin to the replicas; each replica's "
            f"ROOMBOT_RATE_LIMIT is {RATE}, the budget all of them share. {SQLITE}: the same "
            "burst to one replica, in the same run, for comparison. The emulator refuses "
            f"(60007) more than {RATE} calls/s per API; busiest 1 s counts every replica's calls "
            "to one API.",
            "wall: from the sends to the last threaded reply; ideal: the calls of the busiest "
            f"API the work needs / {RATE} per s; calls/s: Room Engine arrivals from first to "
            "last. Each repetition "
            f"starts after {COLD_S:g} s idle; Room Engine is {RTT_MS:g} ms away "
            f"(+{HANDSHAKE_RTTS:g} round trips for a new connection).",
            "PostgreSQL runs with its durable defaults (fsync, synchronous_commit) on the "
            "backends' core; every roombot process is pinned to the other core.",
        ],
    )
    sqlite_p99 = acks[SQLITE]["p99_ms"]
    cluster_p99 = acks[CLUSTER]["p99_ms"]
    ack_ratio = ratio(cluster_p99, sqlite_p99)
    one_ratio = ratio(acks[ONE_PG]["p99_ms"], sqlite_p99)
    split_ratio = ratio(acks[SPLIT]["p99_ms"], sqlite_p99)
    ack_table = Table(
        title=f"Replicas: ack latency, {rounds} alternating rounds of {per_round} write "
        f"commands at concurrency {ACK_CONCURRENCY}",
        headers=[
            "servers",
            "n",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "p99 per round",
            "CPU ms/cmd",
            "errors",
        ],
        rows=[
            [
                name,
                a["n"],
                a["p50_ms"],
                a["p95_ms"],
                a["p99_ms"],
                a["max_ms"],
                " ".join(f"{1000 * p:.0f}" for p in a["round_p99s"]),
                a["cpu_ms_per_command"],
                a["errors"],
            ]
            for name, a in acks.items()
        ],
        notes=[
            f"p99 ÷ p99 of one SQLite replica: {REPLICAS} PostgreSQL replicas {ack_ratio:.2f}×; "
            f"one PostgreSQL replica alone {one_ratio:.2f}×; {REPLICAS} processes sharing "
            f"nothing {split_ratio:.2f}×. The rounds take turns; each drains the background "
            "work before the next.",
            "Every roombot process is pinned to the same core (this machine has two; the other "
            f"runs the load generator, the backends and PostgreSQL), so {REPLICAS} processes "
            "time-share one core, which replicas on their own hosts would not. An ack touches no "
            "database; each process lets its background work wait while it has acks to send, "
            "but cannot hold back another process's work: the last row is that cost alone.",
        ],
    )
    report_margin = (kill["last_report_s"] or float("nan")) - LEASE_S
    kill_table = Table(
        title="Replicas: one replica killed (SIGKILL) during the burst, "
        f"ROOMBOT_LEASE_S={LEASE_S:g}",
        headers=[
            "killed after calls",
            "its requests",
            "finished before",
            "reported by survivors",
            "first report s",
            "last report s",
            "pending rows after",
            "leases after",
        ],
        rows=[
            [
                kill["killed_after_calls"],
                kill["victim_requests"],
                kill["finished_before_kill"],
                kill["reported_requests"],
                kill["first_report_s"],
                kill["last_report_s"],
                kill["pending_rows_after"],
                kill["leases_after"],
            ]
        ],
        notes=[
            "Seconds from the SIGKILL to a survivor's report in the request's thread. A lease "
            f"is renewed once it is past a third of its life ({LEASE_S / 3:g} s), so it expires "
            f"{2 * LEASE_S / 3:g}–{LEASE_S:g} s after the kill; survivors look every 2 s, then "
            'read each room back (within the shared budget) and post. "leases after": '
            "requests still held by a replica when every report is in.",
        ],
    )
    targets = [
        Target(f"busiest 1 s, {REPLICAS} replicas together", float(busiest), float(RATE), " calls"),
        Target(f"60007 answers, {REPLICAS} replicas", float(limited), 0.0),
        Target(
            f"replicas wall ÷ ideal, worst of {len(ratios)}", max(ratios), TARGET_WALL_RATIO, "×"
        ),
        Target(
            f"ack p99, {REPLICAS} replicas (one shared core) ÷ 1 on SQLite",
            ack_ratio,
            TARGET_ACK_RATIO,
            "×",
        ),
        Target("ack p99, 1 replica on PostgreSQL ÷ 1 on SQLite", one_ratio, TARGET_ACK_RATIO, "×"),
        Target(
            f"ack p99, {REPLICAS} replicas ÷ {REPLICAS} processes sharing nothing (one core)",
            ratio(cluster_p99, acks[SPLIT]["p99_ms"]),
            TARGET_ACK_RATIO,
            "×",
        ),
        Target(
            "SIGKILL → survivor's report",
            kill["last_report_s"] if kill["last_report_s"] is not None else float("nan"),
            LEASE_S + TARGET_REPORT_MARGIN_S,
            " s",
        ),
        Target("audit rows left pending after a SIGKILL", float(kill["pending_rows_after"]), 0.0),
    ]
    return ScenarioResult(
        name="replicas",
        tables=[budget, ack_table, kill_table],
        targets=targets,
        data={
            "params": {
                "rate": RATE,
                "replicas": REPLICAS,
                "users": USERS_AT_ONCE,
                "rooms_each": ROOMS_EACH,
                "lease_s": LEASE_S,
                "reps": reps,
                "ack_rounds": rounds,
                "ack_per_round": per_round,
            },
            "budget_runs": budget_runs,
            "acks": acks,
            "kill": {**kill, "report_margin_s": report_margin},
        },
    )
