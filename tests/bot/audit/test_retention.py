"""Audit retention (DESIGN §2.14) on both backends: what a prune deletes and what it never
touches (unfinished requests, pending rows, rows an `undo_of` or a waiting plan points at),
batches that converge, a dry run that counts exactly what a prune then deletes, two pruners at
once, the background pruner, and `roombot audit prune`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from bot import metrics
from bot.audit import AuditStore, NewEntry, Outcome, RequestState, open_store
from bot.audit.retention import AuditPruner, prune
from bot.audit.sql import Body, Query
from bot.cli import main
from tests.bot.requestkit import new_request

DAY = 86_400.0
NOW = 1_765_000_000.0
OLD = NOW - 500 * DAY
RETENTION = 400 * DAY


def _row(key: str, room: str = "room-1", **fields: object) -> NewEntry:
    values: dict[str, object] = {
        "request_key": key,
        "source": "slash",
        "user_id": "U0ALICE01",
        "verb": "mute-all",
        "raw_text": f"mute-all {room}",
        "room_id": room,
        "patch": {"IsAudioDisabled": True},
        "outcome": Outcome.OK,
    }
    values.update(fields)
    return NewEntry(**values)  # type: ignore[arg-type]


async def _set_state(store: AuditStore, key: str, state: RequestState) -> None:
    def body() -> Body[None]:
        yield Query(
            "UPDATE requests SET state = %(state)s, owner = NULL WHERE request_key = %(key)s",
            {"state": state.value, "key": key},
        )

    await store.dialect.write("set a state", body)


async def _keys(store: AuditStore) -> list[str]:
    return sorted({r.request_key for r in await store.query(limit=100_000)})


async def _requests(store: AuditStore) -> list[str]:
    def body() -> Body[list[str]]:
        result = yield Query("SELECT request_key FROM requests ORDER BY request_key")
        return [str(key) for (key,) in result.rows]

    return await store.dialect.read("list requests", body)


async def _populate(store: AuditStore, at: list[float]) -> dict[str, int]:
    """Old and new rows of every kind; returns ids worth naming."""
    at[0] = OLD
    # A finished old request: its rows and its record go.
    await store.record_request(new_request("k-done", plan={}))
    await store.record([_row("k-done"), _row("k-done", "room-2")])
    await _set_state(store, "k-done", RequestState.REPORTED)
    # Old rows of no record at all (an older version's): they go.
    await store.record([_row("k-legacy")])
    # An old request still scheduled, and one awaiting approval: kept with their rows.
    [pointed_by_plan] = await store.record([_row("k-target")])
    await store.record_request(
        new_request(
            "k-scheduled",
            kind="revert",
            plan={"undo_of": [["room-1", None, pointed_by_plan]]},
            run_after=NOW + DAY,
        )
    )
    await store.record([_row("k-scheduled", outcome=Outcome.DRY_RUN)])
    await store.record_request(
        new_request("k-approval", plan={}, waiting=RequestState.AWAITING_APPROVAL)
    )
    await store.record([_row("k-approval", outcome=Outcome.DENIED)])
    # An old pending row (its call may still answer): kept.
    await store.begin([_row("k-pending", outcome=Outcome.PENDING)])
    # An old row undone by an old undo: both go (the undo first).
    [undone_old] = await store.record([_row("k-undone-old")])
    await store.record([_row("k-undo-old", verb="undo", undo_of=undone_old)])
    # An old row undone recently: the old row stays as long as its undo does.
    [undone_new] = await store.record([_row("k-undone-new")])
    at[0] = NOW - DAY
    await store.record([_row("k-undo-new", verb="undo", undo_of=undone_new)])
    await store.record([_row("k-recent")])
    at[0] = NOW
    return {"pointed_by_plan": pointed_by_plan, "undone_new": undone_new}


KEPT = [
    "k-approval",
    "k-pending",
    "k-recent",
    "k-scheduled",
    "k-target",
    "k-undo-new",
    "k-undone-new",
]


async def test_prune_deletes_old_rows_and_never_what_is_in_use(target: str | Path) -> None:
    at = [NOW]
    async with await open_store(target, clock=lambda: at[0]) as store:
        await _populate(store, at)
        before = (
            metrics.REGISTRY.get_sample_value("roombot_audit_pruned_total", {"kind": "rows"}) or 0.0
        )
        dry = await prune(store, RETENTION, now=NOW, dry_run=True, batch=1)
        assert (dry.rows, dry.requests, dry.dry_run) == (5, 1, True)
        assert len(await _keys(store)) == 11  # a dry run deletes nothing
        # Batches of one row: the undo goes before the row it undid, in a later batch.
        done = await prune(store, RETENTION, now=NOW, batch=1)
        assert (done.rows, done.requests, done.busy) == (dry.rows, dry.requests, False)
        assert await _keys(store) == KEPT
        assert await _requests(store) == ["k-approval", "k-scheduled"]
        after = metrics.REGISTRY.get_sample_value("roombot_audit_pruned_total", {"kind": "rows"})
        assert after == before + 5
        again = await prune(store, RETENTION, now=NOW)
        assert (again.rows, again.requests) == (0, 0)
        # Once the recent undo is old too, the row it undid may go as well.
        later = await prune(store, RETENTION, now=NOW + 400 * DAY)
        assert "k-undone-new" not in await _keys(store)
        assert "k-undo-new" not in await _keys(store)
        assert later.rows == 3  # the recent row, the undo and the row it undid
        assert await _keys(store) == ["k-approval", "k-pending", "k-scheduled", "k-target"]


async def _fill(store: AuditStore, count: int) -> None:
    for start in range(0, count, 500):
        await store.record([_row(f"k{i}", f"room-{i % 7}") for i in range(start, start + 500)])


@pytest.mark.parametrize("batch", [37, 1000])
async def test_two_pruners_at_once_delete_everything_once(target: str | Path, batch: int) -> None:
    clock: Callable[[], float] = lambda: OLD  # noqa: E731
    async with await open_store(target, clock=clock) as first:
        await _fill(first, 3_000)
        [undone] = await first.record([_row("k-undone")])
        await first.record([_row("k-undo", verb="undo", undo_of=undone)])
        await first.record_request(
            new_request("k-waiting", waiting=RequestState.SCHEDULED, run_after=NOW + DAY)
        )
        await first.record([_row("k-waiting")])
        async with await open_store(target, clock=clock) as second:
            results = await asyncio.gather(
                prune(first, RETENTION, now=NOW, batch=batch),
                prune(second, RETENTION, now=NOW, batch=batch),
            )
            assert sum(r.rows for r in results) == 3_002
            # Whoever found the other pruning stopped; the other went on to the end.
            assert not all(r.busy for r in results)
            assert await _keys(second) == ["k-waiting"]


async def test_the_background_pruner_prunes_at_start_then_waits(target: str | Path) -> None:
    at = [OLD]
    async with await open_store(target, clock=lambda: at[0]) as store:
        await store.record([_row("k-old")])
        at[0] = NOW
        await store.record([_row("k-new")])
        slept: list[float] = []
        waiting = asyncio.Event()

        async def sleep(seconds: float) -> None:
            slept.append(seconds)
            if len(slept) > 1:
                waiting.set()
                await asyncio.Event().wait()  # the next round never comes in this test

        pruner = AuditPruner(
            store, RETENTION, interval_s=3600, first_after_s=5, clock=lambda: NOW, sleep=sleep
        )
        pruner.start()
        await asyncio.wait_for(waiting.wait(), 10)
        await pruner.stop()
        assert slept == [5, 3600]
        assert pruner.last is not None
        assert pruner.last.rows == 1
        assert await _keys(store) == ["k-new"]


def test_roombot_audit_prune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.sqlite3"

    async def fill() -> None:
        at = [OLD]
        async with await open_store(path, clock=lambda: at[0]) as store:
            await store.record([_row("k-old")])
            at[0] = NOW + 1_000 * DAY  # "now" for the rows; the CLI's now is the real clock
            await store.record([_row("k-future")])

    asyncio.run(fill())
    monkeypatch.setenv("ROOMBOT_AUDIT_DB", str(path))
    assert main(["audit", "prune"]) == 2
    assert "--older-than 400d, or set ROOMBOT_AUDIT_RETENTION" in capsys.readouterr().err
    assert main(["audit", "--dry-run"]) == 2
    assert "for `roombot audit prune`" in capsys.readouterr().err
    assert main(["audit", "prune", "--older-than", "forever"]) == 2
    assert "must be a duration like" in capsys.readouterr().err
    assert main(["audit", "prune", "--older-than", "400d", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("would prune 1 audit row(s) and 0 request record(s) older than ")
    assert out.rstrip().endswith("(nothing deleted: --dry-run)")
    monkeypatch.setenv("ROOMBOT_AUDIT_RETENTION", "400d")
    assert main(["audit", "prune"]) == 0
    assert capsys.readouterr().out.startswith("pruned 1 audit row(s) and 0 request record(s)")
    assert main(["audit", "--format", "jsonl"]) == 0
    assert '"k-future"' in capsys.readouterr().out
