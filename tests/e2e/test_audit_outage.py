"""#12.8 against a real `roombot serve`: the audit database goes away while roombot runs, and a
change is then refused — nothing is sent to Room Engine — and the requester is told why."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from testkit.slack_payloads import GENERAL
from tests.e2e.serve_proc import serve_process

pytestmark = pytest.mark.postgres


def _cut_off(database_url: str, admin_url: str) -> None:
    """A database outage as the bot sees it: no new connections, the open ones dropped."""
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )


async def test_a_database_outage_refuses_changes_and_says_so(
    tmp_path: Path, pg_database: str, pg_server: str
) -> None:
    async with serve_process(tmp_path, ROOMBOT_AUDIT_DB=pg_database) as bot:
        await asyncio.to_thread(_cut_off, pg_database, pg_server)
        status, _ack = await bot.slash_ack("mute-all room-test")
        assert status == 200
        await bot.slack.wait_for(
            lambda: any(
                "not done" in m["text"] for m in bot.slack.messages(GENERAL) if not m["thread_ts"]
            ),
            # About POOL_WAIT_S (3 s): the pool's wait is not repeated per retry. Before, the
            # refusal came after four 10 s waits for the lease, and four more for the rows.
            timeout=10,
        )
        assert [r.command for r in bot.emulator.requests if r.command != "get_room_info"] == []
        assert bot.emulator.rooms["room-test"]["IsAudioDisabled"] is False
        [parent] = [m for m in bot.slack.messages(GENERAL) if not m["thread_ts"]]
        assert parent["text"].splitlines()[-1] == (
            "❌ not done: the audit trail could not be written, so nothing was changed"
        )
        [reply] = bot.slack.thread(GENERAL, parent["ts"])
        assert "1 not attempted — the audit trail could not be written" in reply["text"]
        code = await bot.stop()
        log = bot.output.log
    assert code == 0
    assert "AUDIT TRAIL NOT WRITTEN" in log
    password = urlsplit(pg_database).password
    assert password
    assert password not in log
