"""Several replicas on one PostgreSQL, as real processes: three `roombot serve --http` with the
fake Slack and the emulator. Commands spread across replicas share one Room Engine budget; a
mention's retry on another replica and Undo clicked on two replicas at once act once; a replica
restarted in the middle of another's command leaves it alone; a replica killed in the middle of
its own command is reported in its thread by a survivor within the lease, and no row stays
pending. And one replica on SQLite, killed and restarted, tells the thread too."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bot.audit import Outcome
from handlers import blocks
from testkit.slack_payloads import message_ts
from tests.e2e.cluster import LEASE_S, Cluster, mention_envelope, rooms, running_cluster

pytestmark = pytest.mark.postgres

#: How long after its lease expires a survivor may take to report (one sweep, the reads, Slack).
REPORT_MARGIN_S = 7.0


def button(message: dict[str, Any], action_id: str) -> dict[str, Any] | None:
    """A message's button with `action_id`, or None."""
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return element
    return None


def thread_text(cluster: Cluster, parent: dict[str, Any]) -> str:
    return "\n".join(m["text"] for m in cluster.thread(parent))


async def test_commands_spread_across_replicas_share_one_room_engine_budget(
    tmp_path: Path, pg_database: str
) -> None:
    names = rooms(75)
    async with running_cluster(tmp_path, pg_database, rooms=names, rate_limit=20) as cluster:
        # Three 25-room commands at once, one per replica: 75 calls against a budget of 20/s.
        acks = await asyncio.gather(
            *(
                cluster.slash(i, "mute-all " + " ".join(names[25 * i : 25 * (i + 1)]))
                for i in range(3)
            )
        )
        assert [(status, body) for status, body, _ in acks] == [(200, "")] * 3
        await cluster.wait_for(
            lambda: sum("done: 25/25" in m["text"] for m in cluster.parents()) == 3
        )
        await cluster.settled()
        assert all(cluster.emulator.rooms[r]["IsAudioDisabled"] for r in names)
        # All three replicas together stayed within the one budget: no 60007 anywhere.
        assert cluster.emulator.rate_limited == 0
        assert cluster.busiest_second() <= 20
        assert len(cluster.calls()) == 75
        rows = await cluster.rows()
        assert len(rows) == 75
        assert {r.outcome for r in rows} == {Outcome.OK}
        assert len({r.request_key for r in rows}) == 3
        assert await cluster.leases() == []  # every lease released once delivered
        for parent in cluster.parents():
            assert "✅ `room-" in thread_text(cluster, parent)


async def test_a_mention_retried_to_other_replicas_acts_once(
    tmp_path: Path, pg_database: str
) -> None:
    async with running_cluster(tmp_path, pg_database) as cluster:
        envelope = mention_envelope("mute-all room-test", ts=message_ts())
        assert (await cluster.mention(0, envelope))[0] == 200
        # Slack did not see the ack in time and retries, landing on the other replicas.
        assert (await cluster.mention(1, envelope, retry=1))[0] == 200
        assert (await cluster.mention(2, envelope, retry=2))[0] == 200
        await cluster.wait_for(lambda: len(cluster.calls()) >= 1)
        await cluster.settled()
        await asyncio.sleep(0.5)
        assert len(cluster.calls()) == 1
        assert cluster.emulator.rooms["room-test"]["IsAudioDisabled"] is True
        root = envelope["event"]["ts"]
        replies = cluster.slack.thread("C0GENERAL1", root)
        assert sum(m["text"].startswith("<@U0ALICE01> ran `/room mute-all`") for m in replies) == 1
        assert len({r.request_key for r in await cluster.rows()}) == 1


async def test_undo_clicked_on_two_replicas_at_once_undoes_once(
    tmp_path: Path, pg_database: str
) -> None:
    async with running_cluster(tmp_path, pg_database, rooms=["room-a", "room-b"]) as cluster:
        await cluster.slash(0, "mute-all room-a room-b")
        await cluster.wait_for(
            lambda: any(
                button(m, blocks.ACTION_UNDO) for p in cluster.parents() for m in cluster.thread(p)
            )
        )
        [parent] = cluster.parents()
        [result] = cluster.thread(parent)
        undo = button(result, blocks.ACTION_UNDO)
        assert undo is not None
        before = len(cluster.calls())

        (_, first), (_, second) = await asyncio.gather(
            cluster.click(1, blocks.ACTION_UNDO, undo["value"], message=result),
            cluster.click(2, blocks.ACTION_UNDO, undo["value"], message=result),
        )
        await cluster.wait_for(lambda: "is undoing" in thread_text(cluster, parent))
        await cluster.settled()
        undo_calls = cluster.calls()[before:]
        assert sorted(c.body["RoomInfo"]["RoomId"] for c in undo_calls) == ["room-a", "room-b"]
        assert not cluster.emulator.rooms["room-a"]["IsAudioDisabled"]
        assert thread_text(cluster, parent).count("is undoing") == 1
        told = [
            body["text"] for key, body in cluster.slack.response_posts if key in (first, second)
        ]
        assert any("already undone" in text for text in told), told
        undone = [r for r in await cluster.rows() if r.undo_of is not None]
        assert len(undone) == 2


async def test_a_replica_restarted_mid_command_leaves_another_replicas_work_alone(
    tmp_path: Path, pg_database: str
) -> None:
    names = rooms(60)
    async with running_cluster(tmp_path, pg_database, rooms=names, rate_limit=10) as cluster:
        await cluster.slash(0, "mute-all " + " ".join(names))
        await cluster.wait_for(lambda: len(cluster.calls()) >= 8)
        leased = await cluster.leases()
        assert len(leased) == 1  # replica 0 holds its request

        # A rolling restart of replica 1 while replica 0 is a quarter of the way through.
        await cluster.restart(1)
        assert len(cluster.calls()) < 60, "the command finished before the restart"

        await cluster.wait_for(lambda: any("done: 60/60" in p["text"] for p in cluster.parents()))
        await cluster.settled()
        [parent] = cluster.parents()
        text = thread_text(cluster, parent)
        assert "stopped" not in text  # nobody took over live work
        assert "✅ done: 60/60 rooms set" in parent["text"]
        rows = await cluster.rows()
        assert [r.outcome for r in rows] == [Outcome.OK] * 60
        assert await cluster.leases() == []
        assert "taking over" not in cluster.replicas[1].log()
        assert len(cluster.calls()) == 60


async def test_a_replica_killed_mid_command_is_reported_in_its_thread_by_a_survivor(
    tmp_path: Path, pg_database: str
) -> None:
    names = rooms(60)
    async with running_cluster(tmp_path, pg_database, rooms=names, rate_limit=20) as cluster:
        await cluster.slash(0, "mute-all " + " ".join(names))
        await cluster.wait_for(lambda: len(cluster.calls()) >= 15)
        killed = await cluster.kill(0)
        sent = len(cluster.calls())
        assert sent < 60, "the command finished before the kill"
        [parent] = cluster.parents()
        assert "⏳" in parent["text"]  # the status line the dead replica left

        await cluster.wait_for(
            lambda: "stopped before it finished" in thread_text(cluster, parent),
            timeout=LEASE_S + REPORT_MARGIN_S + 5,
        )
        reported = time.monotonic() - killed
        assert reported <= LEASE_S + REPORT_MARGIN_S, f"reported {reported:.1f} s after the kill"

        await cluster.settled()
        muted = {r for r in names if cluster.emulator.rooms[r]["IsAudioDisabled"]}
        rows = await cluster.rows()
        assert len(rows) == 60
        assert Outcome.PENDING not in {r.outcome for r in rows}
        # Each verdict agrees with the room: muted ones are in place (or were recorded done).
        by_room = {r.room_id: r.outcome for r in rows}
        for room, outcome in by_room.items():
            if room in muted:
                assert outcome in (Outcome.OK, Outcome.IN_PLACE), (room, outcome)
            else:
                assert outcome is Outcome.NOT_APPLIED, (room, outcome)
        not_applied = [r for r, o in by_room.items() if o is Outcome.NOT_APPLIED]
        assert not_applied  # the kill came mid-way

        [report] = [m for m in cluster.thread(parent) if "stopped before it finished" in m["text"]]
        assert "Another replica read each room back:" in report["text"]
        assert f"{len(not_applied)} not applied" in report["text"]
        shown = json.dumps(report["blocks"], ensure_ascii=False)  # every line (the text is cut)
        for row in rows:
            if row.outcome is Outcome.IN_PLACE:
                assert f"`{row.room_id}` — audio muted — the change is in place" in shown
            elif row.outcome is Outcome.NOT_APPLIED:
                assert f"`{row.room_id}` — audio muted — not applied" in shown
            assert f"RequestId `{row.tencent_request_id}`" in shown
        parent_now = cluster.message(parent["ts"])
        assert "interrupted, then read back" in parent_now["text"]
        assert "⏳" not in parent_now["text"]
        assert await cluster.leases() == []

        # Retry (on another survivor) finishes the job.
        retry = button(report, blocks.ACTION_RETRY)
        assert retry is not None
        assert retry["value"] == rows[0].request_key
        await cluster.click(2, blocks.ACTION_RETRY, retry["value"], message=report)
        await cluster.wait_for(lambda: "is retrying" in thread_text(cluster, parent))
        await cluster.settled()
        assert all(cluster.emulator.rooms[r]["IsAudioDisabled"] for r in names)
        survivors = cluster.replicas[1].log() + cluster.replicas[2].log()
        assert survivors.count("taking over request") == 1


async def test_one_replica_on_sqlite_killed_mid_command_tells_the_thread_after_restarting(
    tmp_path: Path,
) -> None:
    names = rooms(40)
    database = str(tmp_path / "audit.sqlite3")
    async with running_cluster(
        tmp_path, database, replicas=1, rooms=names, rate_limit=10
    ) as cluster:
        await cluster.slash(0, "mute-all " + " ".join(names))
        await cluster.wait_for(lambda: len(cluster.calls()) >= 10)
        await cluster.kill(0)
        [parent] = cluster.parents()
        cluster.replicas[0] = await cluster.start("replica-0")

        await cluster.wait_for(
            lambda: "roombot stopped before it finished" in thread_text(cluster, parent)
        )
        await cluster.settled()
        report = thread_text(cluster, parent)
        assert "After restarting, it read each room back:" in report
        rows = await cluster.rows()
        assert Outcome.PENDING not in {r.outcome for r in rows}
        assert Outcome.UNKNOWN not in {r.outcome for r in rows}  # every room could be read
        assert "interrupted, then read back" in cluster.message(parent["ts"])["text"]
        assert json.dumps(cluster.message(parent["ts"])["blocks"]).count("⏳") == 0


async def test_a_paused_replica_that_lost_its_request_sends_and_posts_nothing_when_it_wakes(
    tmp_path: Path, pg_database: str
) -> None:
    """Fencing (DESIGN §2.10): replica 0 is paused (SIGSTOP) while its 40-room request waits for
    the rate budget; a survivor takes the request over, reads the rooms back and reports; a
    Retry runs what was not applied. Then replica 0 wakes (SIGCONT): it must send no call, write
    no row and post nothing: the survivor's report stands, and no room is changed twice."""
    names = rooms(40)
    rate = 8
    # The survivor reads every room back within the same budget.
    within = LEASE_S + REPORT_MARGIN_S + len(names) / rate
    async with running_cluster(tmp_path, pg_database, rooms=names, rate_limit=rate) as cluster:
        await cluster.slash(0, "mute-all " + " ".join(names))
        await cluster.wait_for(lambda: len(cluster.calls()) >= 3)
        paused = cluster.pause(0)
        try:
            [parent] = cluster.parents()
            await cluster.wait_for(
                lambda: "stopped before it finished" in thread_text(cluster, parent),
                timeout=within + 5,
            )
            assert time.monotonic() - paused <= within
            await cluster.settled()
            rows_then = [(r.id, r.outcome) for r in await cluster.rows()]
            not_applied = [o for _, o in rows_then if o is Outcome.NOT_APPLIED]
            assert not_applied, "the pause came mid-way"
            [report] = [
                m for m in cluster.thread(parent) if "stopped before it finished" in m["text"]
            ]
            retry = button(report, blocks.ACTION_RETRY)
            assert retry is not None
            await cluster.click(1, blocks.ACTION_RETRY, retry["value"], message=report)
            await cluster.wait_for(lambda: "is retrying" in thread_text(cluster, parent))
        finally:
            cluster.resume(0)
        await cluster.wait_for(
            lambda: "no longer this replica's to carry out" in cluster.replicas[0].log()
        )
        await cluster.wait_for(
            lambda: all(cluster.emulator.rooms[r]["IsAudioDisabled"] for r in names)
        )
        await cluster.settled()

        # Each room was changed once: by replica 0 before its pause, or by the Retry.
        per_room = [
            sum(1 for c in cluster.calls() if c.body["RoomInfo"]["RoomId"] == room)
            for room in names
        ]
        assert max(per_room) == 1, per_room
        # Replica 0 wrote nothing after the takeover: the survivor's verdicts stand.
        rows_now = {r.id: r.outcome for r in await cluster.rows()}
        assert all(rows_now[row_id] == outcome for row_id, outcome in rows_then)
        # ... and posted nothing: no "done" from it, the parent keeps the survivor's status
        # (the Retry has its own parent in the thread).
        thread = thread_text(cluster, parent)
        assert "✅ done: 40/40" not in thread
        assert "interrupted, then read back" in cluster.message(parent["ts"])["text"]
        assert await cluster.leases() == []
