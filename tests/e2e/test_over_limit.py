"""`Alert.RequestOverLimit` across replicas, as real processes: two `roombot serve --http` on one
PostgreSQL, the emulator counting when each call arrives. A warning posted to one replica halves
the budget of the API it names on both: a command on the other replica then reaches Tencent at
half the rate (measured at the emulator), and the alert channel gets one message however many
warnings arrive. (Tencent documents the warning for Chat; whether Room Engine sends it is not
said, so it is tested as documented.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster, busiest_second, rooms, running_cluster
from tests.e2e.stack import SDKAPPID

pytestmark = pytest.mark.postgres

TOKEN = "e2e-over-limit-token-0123456789"
ALERTS = "C0ALERTS01"
RATE = 20


async def warn(cluster: Cluster, replica: int, api: str) -> None:
    """Post Tencent's warning that `api` passed 80% of its limit to one replica."""
    url = f"http://127.0.0.1:{cluster.replicas[replica].port}/tencent/callback"
    params = {
        "token": TOKEN,
        "SdkAppid": str(SDKAPPID),
        "CallbackCommand": "Alert.RequestOverLimit",
        "OptPlatform": "RESTAPI",
        "contenttype": "json",
    }
    body = {
        "CallbackCommand": "Alert.RequestOverLimit",
        "ServiceName": "room_engine_http_srv",
        "Command": api,
        "Request": 170,
        "Limit": 200,
    }
    async with cluster.session.post(url, params=params, data=json.dumps(body)) as response:
        assert response.status == 200
        assert await response.json() == {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}


async def metric(cluster: Cluster, replica: int, line_start: str) -> float:
    url = f"http://127.0.0.1:{cluster.replicas[replica].port}/metrics"
    async with cluster.session.get(url) as response:
        text = await response.text()
    [line] = [line for line in text.splitlines() if line.startswith(line_start)]
    return float(line.rsplit(" ", 1)[1])


async def mute(cluster: Cluster, replica: int, verb: str, names: list[str]) -> list[float]:
    """`verb` on `names` through one replica; when each `update_room_info` reached Tencent."""
    before = len(cluster.arrivals)
    status, _, _ = await cluster.slash(replica, f"{verb} " + " ".join(names))
    assert status == 200
    await cluster.wait_for(
        lambda: (
            sum(f"done: {len(names)}/{len(names)}" in m["text"] for m in cluster.parents())
            >= (1 if verb == "mute-all" else 2)
        ),
        timeout=30,
    )
    return [at for api, at in cluster.arrivals[before:] if api == "update_room_info"]


async def test_a_warning_to_one_replica_halves_that_api_on_every_replica(
    tmp_path: Path, pg_database: str
) -> None:
    names = rooms(40)  # more than roombot reads before writing: only update_room_info calls
    async with running_cluster(
        tmp_path,
        pg_database,
        replicas=2,
        rooms=names,
        rate_limit=RATE,
        ROOMBOT_CALLBACK_TOKEN=TOKEN,
        ROOMBOT_ALERT_CHANNEL=ALERTS,
    ) as cluster:
        gauge = 'roombot_rate_budget_limit{api="update_room_info"}'
        # At full budget: Tencent sees the writes at up to 20 a second.
        full = await mute(cluster, 1, "mute-all", names)
        assert len(full) == 40
        assert busiest_second(full) > RATE // 2
        assert await metric(cluster, 1, gauge) == RATE

        # Tencent warns replica 0 (three times, and once more to replica 1).
        for _ in range(3):
            await warn(cluster, 0, "update_room_info")
        await warn(cluster, 1, "update_room_info")

        # Replica 1, which received only the later warning, writes at half the rate.
        halved = await mute(cluster, 1, "unmute-all", names)
        assert len(halved) == 40
        assert busiest_second(halved) <= RATE // 2
        assert max(halved) - min(halved) >= 3.0  # 40 calls at 10/s, not at 20/s
        assert cluster.emulator.rate_limited == 0
        assert await metric(cluster, 0, gauge) == RATE // 2
        assert await metric(cluster, 1, gauge) == RATE // 2
        assert await metric(cluster, 1, 'roombot_rate_budget_limit{api="get_room_info"}') == RATE

        # One alert for the four warnings.
        await cluster.slack.wait_for(lambda: len(cluster.slack.messages(ALERTS)) >= 1)
        await asyncio.sleep(1.5)  # a second message would be out by now
        [alert] = cluster.slack.messages(ALERTS)
        assert "calls to `update_room_info` passed 80% of its limit" in alert["text"]
        assert "to 10 calls/s, on every replica, for 60 s" in alert["text"]
        counted = [
            await metric(cluster, i, 'roombot_rate_over_limit_alerts_total{api="update_room_info"}')
            for i in (0, 1)
        ]
        assert counted == [3, 1]
