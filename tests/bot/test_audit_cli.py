"""`roombot audit`: every format and filter (on both backends, with the same output), bad input
as one line and exit 2, and reading that never creates or disturbs a database."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import time
from pathlib import Path

import pytest

from bot.audit import NewEntry, Outcome, open_store
from bot.cli import main

HOUR = 3600.0


def _new(room: str, user: str, key: str, outcome: Outcome = Outcome.OK) -> NewEntry:
    return NewEntry(
        request_key=key,
        source="slash",
        user_id=user,
        verb="mute-all",
        raw_text=f"/room mute-all {room}",
        room_id=room,
        patch={"IsAudioDisabled": True},
        outcome=outcome,
    )


async def _populate(path: str | Path) -> None:
    """Four rows: k-old (3 days ago), k1 (3 h ago), k2 (2 h ago), k3 (1 h ago, failed)."""
    now = time.time()
    moments = iter([now - 72 * HOUR, now - 3 * HOUR, now - 2 * HOUR, now - HOUR, now - HOUR + 1])
    async with await open_store(path, clock=lambda: next(moments)) as store:
        await store.record([_new("room-a", "U1", "k-old")])
        await store.record([_new("room-a", "U1", "k1")])
        await store.record([_new("room-b", "U2", "k2")])
        [row_id] = await store.begin([_new("room-a", "U2", "k3", Outcome.PENDING)])
        await store.complete(
            row_id,
            outcome=Outcome.FAILED,
            error_code=100004,
            error_info="room not exist",
            tencent_request_id="Id-fail-O-Seq-9",
            latency_ms=42.0,
        )


@pytest.fixture
def db(target: str | Path, monkeypatch: pytest.MonkeyPatch) -> str | Path:
    asyncio.run(_populate(target))
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(target))
    return target


def _jsonl(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    assert main(["audit", "--format", "jsonl", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _keys(capsys: pytest.CaptureFixture[str], *args: str) -> list[object]:
    return [row["request_key"] for row in _jsonl(capsys, *args)]


def test_table_is_the_default_newest_first(
    db: str | Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[0].split()[:3] == ["time", "user", "source"]
    assert len(lines) == 5
    assert lines[1].split()[1:] == [
        "U2",
        "slash",
        "mute-all",
        "room-a",
        "failed",
        "100004",
        "Id-fail-O-Seq-9",
        "42",
    ]
    assert [line.split()[4] for line in lines[1:]] == ["room-a", "room-b", "room-a", "room-a"]


def test_jsonl_has_every_field(db: str | Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _jsonl(capsys)
    # An export runs oldest first (a table newest first).
    assert [row["request_key"] for row in rows] == ["k-old", "k1", "k2", "k3"]
    failed = rows[-1]
    assert failed["outcome"] == "failed"
    assert failed["error_code"] == 100004
    assert failed["error_info"] == "room not exist"
    assert failed["tencent_request_id"] == "Id-fail-O-Seq-9"
    assert failed["latency_ms"] == 42.0
    assert failed["patch"] == {"IsAudioDisabled": True}
    assert failed["raw_text"] == "/room mute-all room-a"
    assert {"id", "created_at", "finished_at", "undo_of", "detail", "previous"} <= set(failed)


def test_csv_has_a_header_row(db: str | Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["request_key"] for row in rows] == ["k-old", "k1", "k2", "k3"]
    assert rows[3]["error_code"] == "100004"
    assert rows[2]["room_id"] == "room-b"


def test_filters(db: str | Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _keys(capsys, "--room", "room-a") == ["k-old", "k1", "k3"]
    assert _keys(capsys, "--user", "U2") == ["k2", "k3"]
    assert _keys(capsys, "--room", "room-a", "--user", "U1") == ["k-old", "k1"]
    assert _keys(capsys, "--since", "24h") == ["k1", "k2", "k3"]
    assert _keys(capsys, "--since", "150m") == ["k2", "k3"]
    assert _keys(capsys, "--since", "1w") == ["k-old", "k1", "k2", "k3"]
    assert _keys(capsys, "--since", "1w", "--until", "150m") == ["k-old", "k1"]
    # --limit: the newest N, still oldest first.
    assert _keys(capsys, "--limit", "2") == ["k2", "k3"]
    assert _keys(capsys, "--room", "room-a", "--since", "24h", "--limit", "1") == ["k3"]


def test_since_an_iso_date(db: str | Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _keys(capsys, "--since", "2000-01-01") == ["k-old", "k1", "k2", "k3"]
    assert _keys(capsys, "--since", "2999-01-01T00:00Z") == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_nothing_matching_prints_nothing_for_tools(
    db: str | Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "--room", "nowhere", "--format", fmt]) == 0
    assert capsys.readouterr().out == ""


def test_nothing_matching_says_so_in_a_table(
    db: str | Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "--user", "U999"]) == 0
    assert capsys.readouterr().out == "no entries\n"


@pytest.mark.parametrize("since", ["3x", "yesterday", "-1h", "24 h"])
def test_bad_since_is_one_line_and_exit_2(
    db: str | Path, since: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", f"--since={since}"]) == 2  # "=" so argparse takes "-1h" as a value
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("roombot audit: --since:")
    assert repr(since) in lines[0]


def test_bad_limit_is_exit_2(db: str | Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--limit", "0"]) == 2
    assert "--limit" in capsys.readouterr().err


def test_a_missing_database_is_exit_2_and_is_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nope.sqlite3"
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(path))
    assert main(["audit"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert str(path) in lines[0]
    assert "no audit database" in lines[0]
    assert os.listdir(tmp_path) == []


def test_the_default_path_is_read_from_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # conftest chdirs to tmp_path and clears ROOMBOT_AUDIT_DB.
    assert main(["audit"]) == 2
    assert "roombot-audit.sqlite3" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
    asyncio.run(_populate(tmp_path / "roombot-audit.sqlite3"))
    assert main(["audit", "--format", "jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_an_unreadable_database_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "corrupt.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(path))
    assert main(["audit"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("roombot audit:")
    assert "Traceback" not in captured.err


async def test_reading_while_the_bot_runs_shows_pending_and_disturbs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "live.sqlite3"
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(path))
    async with await open_store(path) as bot:
        [row_id] = await bot.begin([_new("room-live", "U1", "in-flight", Outcome.PENDING)])
        # main() runs its own event loop, so it goes on a thread here.
        assert await asyncio.to_thread(main, ["audit", "--format", "jsonl"]) == 0
        [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert row["outcome"] == "pending"
        # Reading did not mark the in-flight row unknown; the bot completes it normally.
        await bot.complete(row_id, outcome=Outcome.OK)
        done = await bot.get(row_id)
    assert done is not None
    assert done.outcome is Outcome.OK
    assert done.detail is None


@pytest.mark.postgres
def test_both_backends_print_the_same(
    tmp_path: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outputs: dict[str, list[str]] = {}
    for name, where in (("sqlite", str(tmp_path / "same.sqlite3")), ("postgresql", pg_url)):

        async def fill(where: str = where) -> None:
            times = iter(range(1_700_000_000, 1_700_000_100, 7))
            async with await open_store(where, clock=lambda: float(next(times))) as store:
                await store.record([_new("room-a", "U1", "k1"), _new("room-b", "U2", "k1")])
                [row_id] = await store.begin([_new("room-ü", "U2", "k2", Outcome.PENDING)])
                await store.complete(
                    row_id,
                    outcome=Outcome.FAILED,
                    error_code=100004,
                    error_info='room not exist, "quoted", comma',
                    tencent_request_id="Id-x-O-Seq-1",
                    latency_ms=12.345,
                    previous={"IsAudioDisabled": False},
                )

        asyncio.run(fill())
        monkeypatch.setenv("ROOMBOT_AUDIT_DB", where)
        outputs[name] = []
        for fmt in ("table", "jsonl", "csv"):
            assert main(["audit", "--format", fmt, "--since", "2000-01-01"]) == 0
            outputs[name].append(capsys.readouterr().out)
    assert outputs["sqlite"] == outputs["postgresql"]
    assert "room-ü" in outputs["postgresql"][0]


def test_changes_made_outside_roombot_are_listed_and_marked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.sqlite3"

    async def populate() -> None:
        async with await open_store(path) as store:
            await store.record(
                [
                    NewEntry(
                        request_key="tencent-1",
                        source="tencent",
                        user_id="ops-console",
                        verb="outside-update",
                        raw_text="Room.CallbackAfterUpdateRoomInfo (OptPlatform Web)",
                        room_id="room-a",
                        patch={"IsAudioDisabled": False},
                        previous={"IsAudioDisabled": True},
                        outcome=Outcome.OK,
                        detail="reported by a Room Engine callback",
                    )
                ]
            )

    asyncio.run(populate())
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(path))
    assert main(["audit"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[1:5] == ["ops-console", "tencent", "outside-update", "room-a"]
    # A Room Engine operator is no Slack user: --user refuses it, --operator takes it.
    assert main(["audit", "--format", "jsonl", "--user", "ops-console"]) == 2
    assert "Slack user ID" in capsys.readouterr().err
    assert main(["audit", "--format", "jsonl", "--operator", "ops-console"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["source"], record["patch"], record["previous"]) == (
        "tencent",
        {"IsAudioDisabled": False},
        {"IsAudioDisabled": True},
    )
