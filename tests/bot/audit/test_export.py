"""`roombot audit --format md|csv|jsonl`: stable columns, paging that loses and repeats nothing
(ties in time included), spreadsheet formulas neutralised, no Slack markup, `--user` taking
only IDs, plans that use the time index, and a million rows exported in constant memory (slow).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.audit import NewEntry, Outcome, open_store
from bot.audit.export import (
    EXPORT_COLUMNS,
    check_user_id,
    csv_cell,
    plain_text,
    stream_entries,
    window_sql,
)
from bot.audit.rows import SELECT_ENTRIES
from bot.audit.sql import translate
from bot.cli import main

T0 = 1_700_000_000.0


def _row(key: str, room: str, **fields: object) -> NewEntry:
    values: dict[str, object] = {
        "request_key": key,
        "source": "slash",
        "user_id": "U0ALICE01",
        "verb": "mute-all",
        "raw_text": f"/room mute-all {room}",
        "room_id": room,
        "outcome": Outcome.OK,
    }
    values.update(fields)
    return NewEntry(**values)  # type: ignore[arg-type]


def test_the_columns_are_stable() -> None:
    # docs/audit.md documents these, in this order; scripts and SIEM parsers rely on them.
    assert EXPORT_COLUMNS == (
        "id",
        "created_at",
        "finished_at",
        "request_key",
        "source",
        "user_id",
        "verb",
        "raw_text",
        "room_id",
        "team_id",
        "channel_id",
        "reason",
        "patch",
        "previous",
        "outcome",
        "detail",
        "undo_of",
        "error_code",
        "error_info",
        "tencent_request_id",
        "latency_ms",
        "approval",
    )


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("<#C123|general>", "#general (C123)"),
        ("<#C123>", "#C123"),
        ("<@U1>", "@U1"),
        ("<@U1|bob>", "@bob (U1)"),
        ("<!subteam^S0OPS|@ops>", "@ops"),
        ("<!here>", "@here"),
        ("<https://x.example/a|runbook>", "runbook (https://x.example/a)"),
        ("<https://x.example/a>", "https://x.example/a"),
        ("`room-1` is locked", "'room-1' is locked"),
    ],
)
def test_slack_markup_becomes_plain_text(text: str, plain: str) -> None:
    assert plain_text(text) == plain


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_a_formula_cell_is_neutralised(cell: str) -> None:
    assert csv_cell(cell) == "'" + cell
    assert csv_cell("plain " + cell) == "plain " + cell


@pytest.mark.parametrize("user", ["bob", "@bob", "<@U1>", "u0alice01", "C0GENERAL1", ""])
def test_user_must_be_a_slack_user_id(user: str) -> None:
    with pytest.raises(ValueError, match="Slack user ID"):
        check_user_id(user)
    assert check_user_id("U0ALICE01") == "U0ALICE01"
    assert check_user_id("W0ENTERPRISE") == "W0ENTERPRISE"


def test_user_given_a_name_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(tmp_path / "a.sqlite3"))
    assert main(["audit", "--format", "csv", "--user", "@bob"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("roombot audit: --user: expected a Slack user ID")
    assert "'@bob'" in line


async def test_pages_lose_and_repeat_nothing_even_at_the_same_time(target: str | Path) -> None:
    # Three rows share each moment: a page boundary falls inside a tie.
    times = iter(T0 + i // 3 for i in range(100))
    async with await open_store(target, clock=lambda: next(times)) as store:
        for i in range(10):
            await store.record([_row(f"k{i}", f"room-{i % 2}")])
        everything = [e async for e in stream_entries(store, page_rows=1_000)]
        for size in (1, 2, 3, 4):
            paged = [e.id async for e in stream_entries(store, page_rows=size)]
            assert paged == [e.id for e in everything]
        assert [e.created_at for e in everything] == sorted(e.created_at for e in everything)
        window = [
            e.request_key
            async for e in stream_entries(store, since=T0 + 1, until=T0 + 3, page_rows=2)
        ]
        assert window == ["k3", "k4", "k5", "k6", "k7", "k8"]
        room = [e.request_key async for e in stream_entries(store, rooms=["room-1"], page_rows=2)]
        assert room == ["k1", "k3", "k5", "k7", "k9"]


async def _hostile(target: str | Path) -> None:
    async with await open_store(target, clock=lambda: T0) as store:
        await store.record(
            [
                _row(
                    "k-evil",
                    "room-1",
                    reason='=HYPERLINK("http://evil.example","click")',
                    raw_text="-2+3 <#C123|general>",
                    detail="@SUM(A1) asked in <#C123|general> by <@U0BOB0001>",
                    outcome=Outcome.FAILED,
                    error_info="\tleading tab",
                    error_code=100004,
                )
            ]
        )


def test_csv_export_is_safe_in_a_spreadsheet(
    target: str | Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_hostile(target))
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(target))
    assert main(["audit", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert list(row) == list(EXPORT_COLUMNS)
    assert row["reason"] == '\'=HYPERLINK("http://evil.example","click")'
    assert row["raw_text"] == "'-2+3 #general (C123)"
    assert row["detail"] == "'@SUM(A1) asked in #general (C123) by @U0BOB0001"
    assert row["error_info"] == "'\tleading tab"
    # No cell a spreadsheet would evaluate.
    assert all(not v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in row.values())
    assert "<" not in out


def test_md_and_jsonl_exports_carry_no_slack_markup(
    target: str | Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_hostile(target))
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(target))
    assert main(["audit", "--format", "md"]) == 0
    head, rule, line = capsys.readouterr().out.splitlines()
    assert head.startswith("| time (UTC) | request | user |")
    assert set(rule) <= {"|", "-"}
    cells = [c.strip() for c in line.strip("|").split(" | ")]
    assert cells[:9] == [
        "2023-11-14T22:13:20Z",
        "k-evil",
        "U0ALICE01",
        "slash",
        "mute-all",
        "room-1",
        "failed",
        "100004",
        "",
    ]
    assert cells[10] == "@SUM(A1) asked in #general (C123) by @U0BOB0001"
    assert main(["audit", "--format", "jsonl"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["detail"] == "@SUM(A1) asked in #general (C123) by @U0BOB0001"
    assert record["raw_text"] == "-2+3 #general (C123)"  # JSON needs no formula guard


# -- the plans --------------------------------------------------------------------------------


def _page_sql(dialect: str) -> tuple[str, dict[str, object]]:
    where, params = window_sql(rooms=[], user=None, since=T0, until=T0 + 3600, after=(T0 + 10, 5))
    sql = f"{SELECT_ENTRIES}{where} ORDER BY created_at, id LIMIT 2000"
    return translate(sql, now="0", locking=False, in_list=lambda n: f"IN ({n})"), params


async def test_a_window_page_is_a_range_on_the_time_index_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "plan.sqlite3"
    async with await open_store(path) as store:
        await store.record([_row("k", "room-1")])
    sql, params = _page_sql("sqlite")
    sql = sql.replace("%(", ":").replace(")s", "")
    with sqlite3.connect(path) as conn:
        conn.execute("ANALYZE")
        plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "USING INDEX audit_entries_time (created_at>? AND created_at<?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # the index order is the output order


@pytest.mark.postgres
async def test_a_window_page_is_a_range_on_the_time_index_postgres(pg_url: str) -> None:
    import psycopg

    async with await open_store(pg_url, clock=lambda: T0) as store:
        await store.record([_row(f"k{i}", "room-1") for i in range(50)])
    sql, params = _page_sql("postgresql")
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        await conn.execute("SET enable_seqscan = off")  # a small table: ask what it would use
        cur = await conn.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in await cur.fetchall())
    assert "audit_entries_time" in plan, plan
    assert "Index Cond: ((created_at >=" in plan, plan


# -- a million rows ---------------------------------------------------------------------------


def _fill_sqlite(path: Path, rows: int) -> None:
    asyncio.run(_hostile(path))  # creates and migrates the database
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
            INSERT INTO audit_entries (request_key, created_at, finished_at, user_id, source,
                verb, raw_text, reason, room_id, patch, outcome, tencent_request_id, latency_ms)
            SELECT 'req-' || (i / 200), {T0} + i * 0.01, {T0} + i * 0.01 + 0.2, 'U0ALICE01',
                   'slash', 'mute-all', '/room mute-all room-' || (i % 500),
                   'incident 42: spam in the room', 'room-' || (i % 500),
                   '{{"IsAudioDisabled":true}}', 'ok', 'Id-' || hex(randomblob(16)) || '-O-Seq-1',
                   12.5
              FROM n
            """  # noqa: S608
        )


def _export_peak_rss_kib(db: str, fmt: str) -> int:
    """The peak RSS of a `roombot audit --format FMT` process writing to /dev/null."""
    code = (
        "import resource, sys\n"
        "from bot.cli import main\n"
        f"status = main(['audit', '--format', '{fmt}'])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    env = {**os.environ, "ROOMBOT_AUDIT_DB": db}
    with open(os.devnull, "w") as devnull:
        done = subprocess.run(
            [sys.executable, "-c", code],
            stdout=devnull,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            check=True,
            timeout=900,
        )
    return int(done.stderr.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_million_rows_export_in_constant_memory(tmp_path: Path, fmt: str) -> None:
    small, large = tmp_path / "small.sqlite3", tmp_path / "large.sqlite3"
    _fill_sqlite(small, 10_000)
    _fill_sqlite(large, 1_000_000)
    started = time.monotonic()
    peak_small = _export_peak_rss_kib(str(small), fmt)
    middle = time.monotonic()
    peak_large = _export_peak_rss_kib(str(large), fmt)
    took = time.monotonic() - middle
    growth_mib = (peak_large - peak_small) / 1024
    print(
        f"\n{fmt}: 10k rows peak RSS {peak_small / 1024:.1f} MiB "
        f"({middle - started:.1f} s), 1M rows {peak_large / 1024:.1f} MiB ({took:.1f} s), "
        f"growth {growth_mib:.1f} MiB"
    )
    # 100 times the rows, the same memory give or take allocator noise (the 1M rows' text
    # alone is ~300 MiB).
    assert growth_mib < 16, (peak_small, peak_large)
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss >= peak_large


def _history_sql() -> tuple[str, dict[str, object]]:
    from bot.audit.rows import entries_query

    sql, params = entries_query(room="room-1", user=None, since=None, limit=10)
    return translate(sql, now="0", locking=False, in_list=lambda n: f"IN ({n})"), params


async def test_history_is_an_index_lookup_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    async with await open_store(path) as store:
        await store.record([_row("k", "room-1")])
    sql, params = _history_sql()
    sql = sql.replace("%(", ":").replace(")s", "")
    with sqlite3.connect(path) as conn:
        conn.execute("ANALYZE")
        plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "USING INDEX audit_entries_room_time (room_id=?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


@pytest.mark.postgres
async def test_history_is_an_index_lookup_postgres(pg_url: str) -> None:
    import psycopg

    async with await open_store(pg_url, clock=lambda: T0) as store:
        await store.record([_row(f"k{i}", f"room-{i % 5}") for i in range(50)])
    sql, params = _history_sql()
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        await conn.execute("SET enable_seqscan = off")
        cur = await conn.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in await cur.fetchall())
    assert "audit_entries_room_time" in plan, plan
    assert "Index Cond: (room_id = " in plan, plan
