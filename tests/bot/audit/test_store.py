"""AuditStore: rows written before and completed after a call, a restarted process's requests,
queries, claims, errors as AuditError, and SQLite kept off the event loop.

Tests taking the `store` or `target` fixture run on both backends (SQLite, then PostgreSQL);
the others are about SQLite itself."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.audit import (
    AuditError,
    AuditStore,
    NewEntry,
    NewRequest,
    Outcome,
    RequestState,
    open_store,
)
from bot.audit.sql import Body, Query
from bot.audit.sqlite_dialect import SqliteDialect
from testkit.clock import FakeClock


def entry(room: str | None = "room-1", **overrides: Any) -> NewEntry:
    values: dict[str, Any] = {
        "request_key": "req-1",
        "source": "slash",
        "user_id": "U111",
        "verb": "mute-all",
        "raw_text": "/room mute-all room-1",
        "room_id": room,
        "team_id": "T1",
        "channel_id": "C1",
        "reason": "incident 42",
        "patch": {"IsAudioDisabled": True},
    }
    values.update(overrides)
    return NewEntry(**values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
async def store(target: str | Path, clock: FakeClock) -> AsyncIterator[AuditStore]:
    opened = await open_store(target, clock=clock)
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[AuditStore]:
    opened = await open_store(tmp_path / "audit.sqlite3", clock=clock)
    assert isinstance(opened.dialect, SqliteDialect)
    yield opened
    await opened.close()


# -- begin / complete / record ------------------------------------------------------------------


async def test_begin_writes_pending_rows_with_every_field(
    store: AuditStore, clock: FakeClock
) -> None:
    ids = await store.begin([entry("room-1"), entry("room-2", previous={"IsAudioDisabled": False})])
    assert len(ids) == 2
    assert ids[0] < ids[1]
    first = await store.get(ids[0])
    assert first is not None
    assert first.id == ids[0]
    assert first.outcome is Outcome.PENDING
    assert first.created_at == clock.now
    assert first.finished_at is None
    assert (first.request_key, first.source, first.user_id, first.verb) == (
        "req-1",
        "slash",
        "U111",
        "mute-all",
    )
    assert first.raw_text == "/room mute-all room-1"
    assert (first.room_id, first.team_id, first.channel_id) == ("room-1", "T1", "C1")
    assert first.reason == "incident 42"
    assert first.patch == {"IsAudioDisabled": True}
    assert first.previous is None
    assert first.tencent_request_id is None
    assert first.latency_ms is None
    second = await store.get(ids[1])
    assert second is not None
    assert second.previous == {"IsAudioDisabled": False}


async def test_complete_records_the_outcome_and_keeps_what_it_is_not_given(
    store: AuditStore, clock: FakeClock
) -> None:
    [row_id] = await store.begin([entry(previous={"IsAudioDisabled": False}, detail="note")])
    clock.now += 2.5
    await store.complete(
        row_id,
        outcome=Outcome.FAILED,
        tencent_request_id="Id-abc-O-Seq-1",
        error_code=100004,
        error_info="room not exist",
        latency_ms=312.5,
    )
    done = await store.get(row_id)
    assert done is not None
    assert done.outcome is Outcome.FAILED
    assert done.finished_at == clock.now
    assert done.created_at == clock.now - 2.5
    assert done.tencent_request_id == "Id-abc-O-Seq-1"
    assert (done.error_code, done.error_info, done.latency_ms) == (100004, "room not exist", 312.5)
    assert done.previous == {"IsAudioDisabled": False}
    assert done.detail == "note"


async def test_complete_can_set_previous_values_read_after_begin(store: AuditStore) -> None:
    [row_id] = await store.begin([entry()])
    await store.complete(row_id, outcome=Outcome.NOOP, previous={"IsAudioDisabled": True})
    done = await store.get(row_id)
    assert done is not None
    assert done.outcome is Outcome.NOOP
    assert done.previous == {"IsAudioDisabled": True}


async def test_complete_twice_or_an_unknown_row_is_an_audit_error(store: AuditStore) -> None:
    [row_id] = await store.begin([entry()])
    await store.complete(row_id, outcome=Outcome.OK)
    with pytest.raises(AuditError, match=str(row_id)):
        await store.complete(row_id, outcome=Outcome.FAILED)
    with pytest.raises(AuditError, match="9999"):
        await store.complete(9999, outcome=Outcome.OK)
    kept = await store.get(row_id)
    assert kept is not None
    assert kept.outcome is Outcome.OK


async def test_complete_many_completes_every_row_in_one_call(store: AuditStore) -> None:
    ids = await store.begin([entry(f"room-{i}") for i in range(3)])
    await store.complete_many(
        [
            (ids[0], {"outcome": Outcome.OK, "tencent_request_id": "r0", "latency_ms": 10.0}),
            (ids[1], {"outcome": "failed", "error_code": 100001, "error_info": "busy"}),
            (ids[2], {"outcome": Outcome.NOOP}),
        ]
    )
    rows = await store.rows_for_request("req-1")
    assert [r.outcome for r in rows] == [Outcome.OK, Outcome.FAILED, Outcome.NOOP]
    assert rows[0].tencent_request_id == "r0"
    assert rows[1].error_code == 100001


async def test_complete_many_records_the_good_rows_and_names_the_bad(store: AuditStore) -> None:
    [good] = await store.begin([entry()])
    with pytest.raises(AuditError, match="4242"):
        await store.complete_many([(4242, {"outcome": Outcome.OK}), (good, {"outcome": "ok"})])
    done = await store.get(good)
    assert done is not None
    assert done.outcome is Outcome.OK


async def test_complete_arguments_are_checked_before_writing(store: AuditStore) -> None:
    [row_id] = await store.begin([entry()])
    with pytest.raises(ValueError, match="pending"):
        await store.complete(row_id, outcome=Outcome.PENDING)
    with pytest.raises(ValueError, match="bogus"):
        await store.complete_many([(row_id, {"outcome": "bogus"})])
    with pytest.raises(TypeError):
        await store.complete_many([(row_id, {"outcome": "ok", "colour": "red"})])
    still = await store.get(row_id)
    assert still is not None
    assert still.outcome is Outcome.PENDING


async def test_record_writes_finished_rows(store: AuditStore, clock: FakeClock) -> None:
    ids = await store.record(
        [
            entry("room-1", outcome=Outcome.DENIED, detail="no role grants lockdown"),
            entry(None, verb=None, outcome=Outcome.INVALID, detail="unknown verb 'mutee'"),
            entry("room-2", outcome=Outcome.DRY_RUN),
        ]
    )
    rows = [await store.get(i) for i in ids]
    assert [r.outcome for r in rows if r] == [Outcome.DENIED, Outcome.INVALID, Outcome.DRY_RUN]
    for row in rows:
        assert row is not None
        assert row.finished_at == row.created_at == clock.now
    assert rows[0] is not None
    assert rows[0].detail == "no role grants lockdown"
    assert rows[1] is not None
    assert (rows[1].room_id, rows[1].verb) == (None, None)


async def test_begin_and_record_refuse_the_wrong_kind_of_row(store: AuditStore) -> None:
    with pytest.raises(ValueError, match="pending"):
        await store.begin([entry(outcome=Outcome.OK)])
    with pytest.raises(ValueError, match="begin"):
        await store.record([entry()])
    assert await store.query() == []
    assert await store.begin([]) == []
    # Outcomes given as plain strings are understood too.
    [row_id] = await store.begin([entry(outcome="pending")])
    assert len(await store.record([entry(outcome="denied")])) == 1
    row = await store.get(row_id)
    assert row is not None
    assert row.outcome is Outcome.PENDING


async def test_undo_rows_point_at_the_original(store: AuditStore) -> None:
    [original] = await store.begin([entry()])
    await store.complete(original, outcome=Outcome.OK, previous={"IsAudioDisabled": False})
    [undo] = await store.begin(
        [entry(request_key="req-2", source="button", verb="undo", undo_of=original)]
    )
    row = await store.get(undo)
    assert row is not None
    assert row.undo_of == original


async def test_a_batch_is_one_transaction(store: AuditStore) -> None:
    # The second row names an undo target that does not exist: the whole batch is refused.
    with pytest.raises(AuditError):
        await store.begin([entry("room-1"), entry("room-2", undo_of=12345)])
    assert await store.query() == []


async def test_a_patch_that_is_not_json_is_an_audit_error(store: AuditStore) -> None:
    with pytest.raises(AuditError, match="patch"):
        await store.begin([entry(patch={"when": object()})])


async def test_get_unknown_row_is_none(store: AuditStore) -> None:
    assert await store.get(1) is None


async def test_rows_for_request_in_id_order(store: AuditStore) -> None:
    await store.begin([entry("a", request_key="other")])
    ids = await store.begin([entry("b"), entry("c")])
    ids += await store.record([entry("d", outcome=Outcome.DENIED)])
    rows = await store.rows_for_request("req-1")
    assert [r.id for r in rows] == ids
    assert [r.room_id for r in rows] == ["b", "c", "d"]
    assert await store.rows_for_request("nope") == []


# -- query --------------------------------------------------------------------------------------


async def _three_hours_of_history(store: AuditStore, clock: FakeClock) -> None:
    start = clock.now
    for hour, (room, user) in enumerate([("r1", "U1"), ("r2", "U1"), ("r1", "U2")]):
        clock.now = start + hour * 3600
        await store.record([entry(room, user_id=user, outcome=Outcome.OK, request_key=f"k{hour}")])


async def test_query_is_newest_first(store: AuditStore, clock: FakeClock) -> None:
    await _three_hours_of_history(store, clock)
    rows = await store.query()
    assert [r.request_key for r in rows] == ["k2", "k1", "k0"]


async def test_query_newest_first_within_one_batch_by_id(store: AuditStore) -> None:
    ids = await store.begin([entry("a"), entry("b")])
    assert [r.id for r in await store.query()] == list(reversed(ids))


async def test_query_filters(store: AuditStore, clock: FakeClock) -> None:
    await _three_hours_of_history(store, clock)
    start = clock.now - 2 * 3600
    assert [r.request_key for r in await store.query(room="r1")] == ["k2", "k0"]
    assert [r.request_key for r in await store.query(user="U1")] == ["k1", "k0"]
    assert [r.request_key for r in await store.query(room="r1", user="U1")] == ["k0"]
    assert [r.request_key for r in await store.query(since=start + 3600)] == ["k2", "k1"]
    assert [r.request_key for r in await store.query(since=start + 3601)] == ["k2"]
    assert [r.request_key for r in await store.query(limit=2)] == ["k2", "k1"]
    assert await store.query(room="nowhere") == []
    with pytest.raises(ValueError, match="limit"):
        await store.query(limit=0)


# -- a restarted process ----------------------------------------------------------------------


def _request(key: str = "req-1") -> NewRequest:
    return NewRequest(
        request_key=key,
        kind="request",
        source="slash",
        user_id="U111",
        verb="mute-all",
        raw_text="mute-all room-1",
        plan={},
        reply={"adapter": "slack", "channel": "C1"},
    )


async def test_a_restarted_process_takes_its_predecessors_requests_at_once(
    tmp_path: Path,
) -> None:
    # The same host and pid as this process, another random part: its predecessor (a restarted
    # container keeps its pid 1). Its lease has 30 s to run, yet it is taken over at once.
    path = tmp_path / "audit.sqlite3"
    predecessor = f"{socket.gethostname()}:{os.getpid()}:0000dead"
    first = await open_store(path, owner=predecessor)
    assert first.recovered == 0
    lease = await first.claim_request(_request())
    assert lease is not None
    [row_id] = await first.begin_request(lease, [entry()])
    await first.close()  # as if the process stopped mid-call

    async with await open_store(path) as second:
        assert second.recovered == 1
        [taken] = await second.take_over()
        assert taken.request_key == "req-1"
        assert taken.previous_owner == predecessor
        assert taken.lease.fence == 2
        assert [r.id for r in taken.unsettled_rows] == [row_id]
        assert taken.record.state is RequestState.RUNNING


async def test_a_live_replicas_requests_wait_for_their_lease(tmp_path: Path) -> None:
    # Another process on this host that is still running (this one, under another name: its
    # pid is alive) keeps its requests until its lease runs out.
    path = tmp_path / "audit.sqlite3"
    alive = f"{socket.gethostname()}:1:cafe0000"  # pid 1 always runs
    async with await open_store(path, owner=alive) as running:
        assert await running.claim_request(_request()) is not None
        async with await open_store(path) as other:
            assert other.recovered == 0
            assert await other.take_over() == []


# -- claims -------------------------------------------------------------------------------------


async def test_claim_is_true_only_the_first_time(store: AuditStore) -> None:
    assert await store.claim("Ev123") is True
    assert await store.claim("Ev123") is False
    assert await store.claim("Ev124") is True
    with pytest.raises(ValueError, match="empty"):
        await store.claim("")


async def test_concurrent_claims_of_one_key_let_one_through(store: AuditStore) -> None:
    results = await asyncio.gather(*(store.claim("click-7") for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]


async def test_claims_are_shared_by_stores_on_one_database(target: str | Path) -> None:
    async with await open_store(target) as a, await open_store(target) as b:
        assert await a.claim("Ev1") is True
        assert await b.claim("Ev1") is False
        assert await b.claim("Ev2") is True
        assert await a.claim("Ev2") is False
        keys = [f"Ev-{i}" for i in range(50)]
        results = await asyncio.gather(*(s.claim(key) for key in keys for s in (a, b)))
    for key, via_a, via_b in zip(keys, results[0::2], results[1::2], strict=True):
        assert sorted([via_a, via_b]) == [False, True], key


async def test_claims_are_forgotten_after_a_day(store: AuditStore, clock: FakeClock) -> None:
    assert await store.claim("Ev1") is True
    clock.now += 86_000
    assert await store.claim("Ev1") is False
    clock.now += 401
    assert await store.claim("Ev1") is True


async def test_claimed_reads_which_keys_are_claimed_without_claiming(
    store: AuditStore, clock: FakeClock
) -> None:
    assert await store.claimed([]) == frozenset()
    assert await store.claim("echo:1") is True
    assert await store.claim("echo:3") is True
    assert await store.claimed(["echo:1", "echo:2", "echo:3", "echo:1"]) == {"echo:1", "echo:3"}
    assert await store.claim("echo:2") is True  # reading did not claim it
    many = [f"k{i}" for i in range(1200)]  # more than one statement's worth of parameters
    assert await store.claimed(many) == frozenset()
    clock.now += 86_401
    assert await store.claimed(["echo:1", "echo:3"]) == frozenset()  # forgotten after a day


# -- what a room's trail says about its settings ------------------------------------------------


async def test_room_trail_holds_the_rows_that_say_something_about_settings(
    store: AuditStore,
) -> None:
    changed = await store.record([entry("room-1", outcome=Outcome.OK, previous={"x": 1})])
    pending = await store.begin([entry("room-1", request_key="req-2")])
    await store.record(
        [
            entry("room-1", request_key="req-3", outcome=outcome)
            for outcome in (Outcome.DENIED, Outcome.INVALID, Outcome.DRY_RUN, Outcome.CANCELLED)
        ]
    )
    failed = await store.record(
        [entry("room-1", request_key="req-4", outcome=Outcome.FAILED, patch=None, previous={})]
    )
    await store.record([entry("room-1", request_key="req-5", outcome=Outcome.OK, patch=None)])
    await store.record([entry("room-2", request_key="req-6", outcome=Outcome.OK)])
    outside = await store.record(
        [entry("room-1", request_key="req-7", source="tencent", outcome=Outcome.NOOP)]
    )
    rows = await store.room_trail("room-1")
    assert [r.id for r in rows] == [outside[0], failed[0], pending[0], changed[0]]
    assert [r.id for r in await store.room_trail("room-1", limit=2)] == [outside[0], failed[0]]
    assert await store.room_trail("room-9") == []
    with pytest.raises(ValueError, match="limit"):
        await store.room_trail("room-1", limit=0)


# -- storage settings and threading -------------------------------------------------------------


def _synchronous() -> Body[int]:
    result = yield Query("PRAGMA synchronous")
    return int(result.scalar())


def _thread() -> Body[int]:
    yield Query("SELECT 1")
    return threading.get_ident()


async def test_file_is_in_wal_mode_with_synchronous_normal(
    sqlite_store: AuditStore, tmp_path: Path
) -> None:
    await sqlite_store.begin([entry()])
    with sqlite3.connect(tmp_path / "audit.sqlite3") as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    synchronous = await sqlite_store.dialect.read("read a pragma", _synchronous)
    assert synchronous == 1  # NORMAL


async def test_all_sqlite_work_runs_on_one_worker_thread(sqlite_store: AuditStore) -> None:
    idents = {await sqlite_store.dialect.read("probe", _thread) for _ in range(5)}
    await sqlite_store.begin([entry()])
    idents.add(await sqlite_store.dialect.write("probe", _thread))
    assert len(idents) == 1
    assert threading.get_ident() not in idents


async def test_memory_database_works(clock: FakeClock) -> None:
    async with await open_store(":memory:", clock=clock) as mem:
        [row_id] = await mem.begin([entry()])
        assert (await mem.get(row_id)) is not None
        assert await mem.claim("x") is True


async def test_the_event_loop_runs_while_a_big_write_waits_for_the_disk(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    async with await open_store(path) as store:
        # Another connection holds the write lock, so the store's write must wait. Only the
        # ticker (running on the event loop) releases it: if the write blocked the loop, the
        # ticker could never run and the write would time out with AuditError.
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        ticks = 0
        pending_at_release = False
        write = asyncio.ensure_future(
            store.begin([entry(f"room-{i}", request_key="big") for i in range(2_000)])
        )

        async def ticker() -> None:
            nonlocal ticks, pending_at_release
            while True:
                ticks += 1
                if ticks == 50:
                    pending_at_release = not write.done()
                    blocker.execute("COMMIT")
                await asyncio.sleep(0)

        ticking = asyncio.create_task(ticker())
        try:
            ids = await write
        finally:
            ticking.cancel()
            blocker.close()
        assert ticks >= 50
        assert pending_at_release
        assert len(ids) == 2_000
        assert len(set(ids)) == 2_000
        assert len(await store.rows_for_request("big")) == 2_000


# -- errors -------------------------------------------------------------------------------------


async def test_a_corrupt_file_is_an_audit_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes" * 200)
    with pytest.raises(AuditError, match="cannot open the audit database"):
        await open_store(path)


async def test_an_unopenable_path_is_an_audit_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError):
        await open_store(tmp_path / "no-such-dir" / "audit.sqlite3")
    with pytest.raises(AuditError):
        await open_store(tmp_path)  # a directory


async def test_writes_to_a_read_only_store_are_audit_errors(target: str | Path) -> None:
    async with await open_store(target) as writer:
        [row_id] = await writer.begin([entry()])
    async with await open_store(target, read_only=True) as reader:
        assert reader.recovered == 0
        row = await reader.get(row_id)
        assert row is not None
        with pytest.raises(AuditError, match=r"readonly|read-only"):
            await reader.begin([entry()])
        with pytest.raises(AuditError):
            await reader.claim("Ev1")


async def test_read_only_open_never_creates_a_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    with pytest.raises(AuditError):
        await open_store(path, read_only=True)
    assert os.listdir(tmp_path) == []


async def test_a_closed_store_raises_audit_error(target: str | Path) -> None:
    store = await open_store(target)
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(AuditError, match="closed"):
        await store.begin([entry()])
    with pytest.raises(AuditError, match="closed"):
        await store.claim("x")


async def test_a_lock_held_too_long_is_an_audit_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.audit.sqlite_dialect.BUSY_TIMEOUT_S", 0.05)
    path = tmp_path / "audit.sqlite3"
    async with await open_store(path) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(AuditError, match="locked"):
                await store.begin([entry()])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        # The store is still usable once the lock is gone.
        assert len(await store.begin([entry()])) == 1
