"""Two-person approval across replicas (DESIGN §2.12): two `roombot serve --http` processes on one
PostgreSQL; a request awaits approval, and two approvers click Approve at the same moment, one
on each replica: Room Engine is called once, the record names one approver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.audit import RequestState, open_store
from bot.audit.records import ApprovalDecision
from handlers import approval_blocks as ab
from tests.e2e.cluster import running_cluster
from tests.e2e.test_replicas import button

pytestmark = pytest.mark.postgres

ALICE = "U0ALICE01"
BOB = "U0BOB0001"
ERIN = "U0ERIN001"


async def test_two_approvers_clicking_at_once_on_two_replicas_run_it_once(
    tmp_path: Path, pg_database: str
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f"""
        [roles.mods]
        verbs = ["mute-all", "show"]
        users = ["{ALICE}", "{BOB}", "{ERIN}"]

        [approval]
        verbs = ["mute-all"]
        approvers = ["{BOB}", "{ERIN}"]
        """,
        encoding="utf-8",
    )
    async with running_cluster(
        tmp_path,
        pg_database,
        replicas=2,
        rooms=["room-a", "room-b"],
        ROOMBOT_POLICY_FILE=str(policy),
    ) as cluster:
        status, ack, _ = await cluster.slash(0, "mute-all room-a room-b")
        assert status == 200
        assert "Approval pending" in ack
        await cluster.wait_for(lambda: any(button(m, ab.ACTION_APPROVE) for m in cluster.parents()))
        [request] = cluster.parents()
        approve = button(request, ab.ACTION_APPROVE)
        assert approve is not None
        assert cluster.calls() == []

        (_, first), (_, second) = await asyncio.gather(
            cluster.click(0, ab.ACTION_APPROVE, approve["value"], message=request, user=BOB),
            cluster.click(1, ab.ACTION_APPROVE, approve["value"], message=request, user=ERIN),
        )
        await cluster.wait_for(lambda: "Approved by" in cluster.message(request["ts"])["text"])
        await cluster.wait_for(lambda: len(cluster.thread(request)) >= 2)
        await cluster.settled()
        await asyncio.sleep(0.5)
        assert sorted(c.body["RoomInfo"]["RoomId"] for c in cluster.calls()) == [
            "room-a",
            "room-b",
        ]
        told = [b["text"] for key, b in cluster.slack.response_posts if key in (first, second)]
        assert len(told) == 1
        assert "already approved" in told[0]
        async with await open_store(pg_database) as store:
            record = await store.get_request(approve["value"])
        assert record is not None
        assert record.state is RequestState.REPORTED
        assert record.decision == ApprovalDecision.APPROVED
        assert record.decided_by in (BOB, ERIN)
        assert f"Approved by <@{record.decided_by}>" in cluster.message(request["ts"])["text"]
