"""Time-boxed changes across replicas, as real processes on one PostgreSQL (DESIGN §2.11): three
`roombot serve --http` over one due revert call Room Engine once per room; a replica killed
(SIGKILL) after its time-boxed change leaves its timer to the survivors, which revert it in the
change's thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster, running_cluster

pytestmark = pytest.mark.postgres

ROOMS = ("room-a", "room-b")


def _thread_text(cluster: Cluster) -> str:
    """The change's thread so far ("" before its parent is posted)."""
    parents = cluster.parents()
    assert len(parents) <= 1
    return "\n".join(m["text"] for p in parents for m in cluster.thread(p))


def _unmuted(cluster: Cluster) -> bool:
    return all(cluster.emulator.rooms[r]["IsAudioDisabled"] is False for r in ROOMS)


async def test_three_replicas_revert_a_due_change_once_per_room(
    tmp_path: Path, pg_database: str
) -> None:
    async with running_cluster(tmp_path, pg_database, rooms=ROOMS) as cluster:
        await cluster.slash(1, "mute-all room-a room-b --for 10s")
        await cluster.wait_for(lambda: "This change reverts at" in _thread_text(cluster))
        assert not _unmuted(cluster)
        assert len(cluster.calls()) == 2
        await cluster.wait_for(lambda: _unmuted(cluster), timeout=30)
        await cluster.wait_for(lambda: "Time's up for" in _thread_text(cluster))
        await cluster.settled()
        # Three loops looked for due work; one of them reverted: one call per room.
        bodies = [c.body["RoomInfo"] for c in cluster.calls()]
        assert sorted((b["RoomId"], b["IsAudioDisabled"]) for b in bodies) == [
            ("room-a", False),
            ("room-a", True),
            ("room-b", False),
            ("room-b", True),
        ]
        assert _thread_text(cluster).count("Time's up for") == 1
        reverts = [r for r in await cluster.rows() if r.verb == "revert"]
        assert sorted(r.room_id or "" for r in reverts) == list(ROOMS)
        assert await cluster.leases() == []


async def test_a_killed_replicas_timer_is_reverted_by_a_survivor(
    tmp_path: Path, pg_database: str
) -> None:
    async with running_cluster(tmp_path, pg_database, rooms=ROOMS) as cluster:
        await cluster.slash(0, "mute-all room-a room-b --for 10s")
        await cluster.wait_for(lambda: "This change reverts at" in _thread_text(cluster))
        await cluster.kill(0)  # SIGKILL: the replica that made the change is gone
        await cluster.wait_for(lambda: _unmuted(cluster), timeout=30)
        await cluster.wait_for(lambda: "Time's up for" in _thread_text(cluster))
        await cluster.settled()
        assert len(cluster.calls()) == 4
        text = _thread_text(cluster)
        assert "audio unmuted · RequestId `Id-" in text
