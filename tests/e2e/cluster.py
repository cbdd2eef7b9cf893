"""A cluster of replicas for end-to-end tests: several `roombot serve --http` processes on one
audit database, one FakeSlack and one Room Engine emulator, all on 127.0.0.1.

There is no load balancer: a test sends each request to the replica of its choice (`slash(i,
…)`, `mention(i, …)`, `click(i, …)`), kills one (`kill(i)`, SIGKILL), pauses one (`pause(i)`,
SIGSTOP; `resume(i)`, SIGCONT) or restarts one (`restart(i)`, SIGTERM then a fresh process).
The emulator records when each Room Engine call arrived (`arrivals`), so a test can check the
busiest one-second window across every replica. Each replica's output goes to a log file
(`Replica.log()`), never to a pipe nobody reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from aiohttp import web

from bot.audit import AuditEntry, open_store
from bot.tencent.emulator import RoomEngineEmulator
from testkit.slack_api import FakeSlack
from testkit.slack_payloads import (
    app_mention,
    block_actions,
    form_body,
    interactive_body,
    sign,
    slash_command,
)
from tests.e2e.stack import ALICE, BOT_TOKEN, GENERAL, SDKAPPID, SECRET_KEY, SIGNING_SECRET

#: The lease the replicas run with (ROOMBOT_LEASE_S's smallest value), to keep takeovers fast.
LEASE_S = 5


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    """One `roombot serve --http` process."""

    name: str
    port: int
    proc: asyncio.subprocess.Process
    log_path: Path

    @property
    def url(self) -> str:
        """Where Slack's requests go."""
        return f"http://127.0.0.1:{self.port}/slack/events"

    def log(self) -> str:
        """Everything the process has written so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Cluster:
    """Running replicas and the fakes they share. Requests are signed as Slack signs them."""

    replicas: list[Replica]
    slack: FakeSlack
    emulator: RoomEngineEmulator
    database: str
    env: dict[str, str]
    workdir: Path
    session: aiohttp.ClientSession
    #: (Room Engine command, `time.monotonic()` of its arrival), in arrival order.
    arrivals: list[tuple[str, float]] = field(default_factory=list)
    _keys: int = 0
    _generation: int = 0
    _paused: set[int] = field(default_factory=set)

    # -- requests --------------------------------------------------------------------------------

    async def post(
        self,
        replica: int,
        body: bytes,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """POST a signed `body` to one replica's /slack/events; the status and the body."""
        all_headers = {
            "Content-Type": content_type,
            **sign(body, SIGNING_SECRET),
            **(headers or {}),
        }
        async with self.session.post(
            self.replicas[replica].url, data=body, headers=all_headers
        ) as response:
            return response.status, await response.text()

    def response_url(self) -> tuple[str, str]:
        """A fresh response_url and its key in the fake Slack."""
        self._keys += 1
        key = f"r{self._keys}"
        return key, self.slack.response_url(key)

    async def slash(self, replica: int, text: str, *, user: str = ALICE) -> tuple[int, str, str]:
        """`/room text` to one replica: the HTTP status, the ack's body, the response_url key."""
        key, url = self.response_url()
        body = form_body(slash_command(text, user_id=user, channel_id=GENERAL, response_url=url))
        status, answer = await self.post(replica, body)
        return status, answer, key

    async def mention(
        self, replica: int, envelope: dict[str, Any], *, retry: int = 0
    ) -> tuple[int, str]:
        """Deliver an `app_mention` envelope to one replica (`retry` > 0: as Slack's retry)."""
        headers = {}
        if retry:
            headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        body = json.dumps(envelope).encode()
        return await self.post(replica, body, content_type="application/json", headers=headers)

    async def click(
        self,
        replica: int,
        action_id: str,
        value: str,
        *,
        message: dict[str, Any],
        user: str = ALICE,
    ) -> tuple[int, str]:
        """Click a button of a message in the fake Slack (`message` as `FakeSlack.messages()`
        gives it) on one replica; the status and the response_url key of the click."""
        key, url = self.response_url()
        payload = block_actions(
            action_id,
            value,
            message_ts=message["ts"],
            thread_ts=message.get("thread_ts"),
            response_url=url,
            message=message,
            user_id=user,
        )
        status, _ = await self.post(replica, interactive_body(payload))
        assert status == 200
        return status, key

    # -- what happened -----------------------------------------------------------------------------

    def parents(self) -> list[dict[str, Any]]:
        """Top-level messages in the channel, oldest first."""
        return [m for m in self.slack.messages(GENERAL) if m["thread_ts"] is None]

    def thread(self, parent: dict[str, Any]) -> list[dict[str, Any]]:
        """The replies under a parent message."""
        return self.slack.thread(GENERAL, parent["ts"])

    def message(self, ts: str) -> dict[str, Any]:
        """A message as it stands now (updates applied)."""
        return next(m for m in self.slack.messages(GENERAL) if m["ts"] == ts)

    def calls(self, command: str = "update_room_info") -> list[Any]:
        """The emulator's recorded requests for `command`."""
        return [r for r in self.emulator.requests if r.command == command]

    def busiest_second(self) -> int:
        """The most Room Engine calls of one API that arrived within any one-second window
        (Tencent's limit, and roombot's budget, are per API: counting every API together, a
        replica's readiness probe, a `get_room_info`, made 21 of a burst of 20 writes)."""
        apis = {api for api, _ in self.arrivals}
        return max(
            (busiest_second(at for name, at in self.arrivals if name == api) for api in apis),
            default=0,
        )

    async def rows(self) -> list[AuditEntry]:
        """Every audit row, oldest first (read through a store of this test's own)."""
        async with await open_store(self.database, read_only=True) as store:
            return sorted(await store.query(limit=100_000), key=lambda r: r.id)

    async def leases(self) -> list[tuple[str, str]]:
        """(request key, owner) of every request held by a replica (a lease) in the database."""
        async with await psycopg.AsyncConnection.connect(self.database) as conn:
            cur = await conn.execute(
                "SELECT request_key, owner FROM requests WHERE owner IS NOT NULL "
                "ORDER BY created_at"
            )
            return [(str(key), str(owner)) for key, owner in await cur.fetchall()]

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 20.0,  # noqa: ASYNC109
    ) -> None:
        """Poll until `predicate()` holds (AssertionError with what Slack saw otherwise)."""
        await self.slack.wait_for(predicate, timeout=timeout)

    async def settled(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Wait until no live replica has background work, for a quiet moment (a paused
        replica is not asked: it cannot answer)."""
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 0.3:
            assert time.monotonic() < deadline, "replicas still busy"
            busy = False
            for index, replica in enumerate(self.replicas):
                if replica.proc.returncode is not None or index in self._paused:
                    continue
                async with self.session.get(f"http://127.0.0.1:{replica.port}/healthz") as r:
                    busy = busy or bool((await r.json())["in_flight"])
            if busy:
                quiet_since = time.monotonic()
            await asyncio.sleep(0.05)

    # -- processes ---------------------------------------------------------------------------------

    async def kill(self, replica: int) -> float:
        """SIGKILL one replica (no shutdown of any kind); returns when it died (monotonic)."""
        proc = self.replicas[replica].proc
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await proc.wait()
        return killed

    def pause(self, replica: int) -> float:
        """SIGSTOP one replica (as a long GC pause, a frozen VM or a partition would hold it);
        returns when (monotonic)."""
        self.replicas[replica].proc.send_signal(signal.SIGSTOP)
        self._paused.add(replica)
        return time.monotonic()

    def resume(self, replica: int) -> None:
        """SIGCONT a paused replica: it goes on from where it was."""
        self.replicas[replica].proc.send_signal(signal.SIGCONT)
        self._paused.discard(replica)

    async def stop(self, replica: int) -> int:
        """SIGTERM one replica and wait for its exit status."""
        proc = self.replicas[replica].proc
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(proc.wait(), timeout=60)

    async def restart(self, replica: int) -> Replica:
        """SIGTERM one replica, then start a fresh process in its place (a rolling restart)."""
        code = await self.stop(replica)
        assert code == 0, self.replicas[replica].log()
        self.replicas[replica] = await self.start(self.replicas[replica].name)
        return self.replicas[replica]

    async def start(self, name: str) -> Replica:
        """Start one more `roombot serve --http` process and wait until it is healthy."""
        self._generation += 1
        port = free_port()
        log_path = self.workdir / f"{name}-{self._generation}.log"
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "serve", "--http",
                "--host", "127.0.0.1", "--port", str(port),
                env=self.env, cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        replica = Replica(name, port, proc, log_path)
        try:
            await _wait_healthy(self.session, replica)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        return replica


def _base_env(**settings: str) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
    }
    return {**base, "PYTHONUNBUFFERED": "1", **settings}


async def _wait_healthy(session: aiohttp.ClientSession, replica: Replica) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if replica.proc.returncode is not None:
            raise AssertionError(
                f"{replica.name} exited with {replica.proc.returncode}:\n{replica.log()}"
            )
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"http://127.0.0.1:{replica.port}/healthz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{replica.name} did not become healthy:\n{replica.log()}")


def _arrival_recorder(
    arrivals: list[tuple[str, float]],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        arrivals.append((request.path.rsplit("/", 1)[-1], time.monotonic()))
        return await handler(request)

    return record


@asynccontextmanager
async def running_cluster(
    workdir: Path,
    database: str,
    *,
    replicas: int = 3,
    rooms: Iterable[str | dict[str, Any]] = ("room-test",),
    rate_limit: int = 20,
    **settings: str,
) -> AsyncIterator[Cluster]:
    """Start the fakes and `replicas` roombot processes on `database` (a PostgreSQL URL, or a
    SQLite path for one replica). The emulator refuses (60007) more than `rate_limit` calls per
    second per API, the bot's own budget: whatever all replicas together send beyond it shows.
    `settings` are more environment variables for every replica."""
    arrivals: list[tuple[str, float]] = []
    emulator = RoomEngineEmulator(
        sdkappid=SDKAPPID, secret_key=SECRET_KEY, rooms=list(rooms), rate_limit_per_api=rate_limit
    )
    emulator.app.middlewares.append(_arrival_recorder(arrivals))
    await emulator.start()
    slack = FakeSlack(bot_token=BOT_TOKEN)
    await slack.start()
    env = _base_env(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        TENCENT_SDKAPPID=str(SDKAPPID),
        TENCENT_SECRET_KEY=SECRET_KEY,
        TENCENT_API_URL=emulator.base_url,
        ROOMBOT_ALLOWED_USERS=ALICE,
        ROOMBOT_AUDIT_DB=database,
        ROOMBOT_LEASE_S=str(LEASE_S),
        ROOMBOT_RATE_LIMIT=str(rate_limit),
        ROOMBOT_CONFIRM_ABOVE="0",
        **settings,
    )
    session = aiohttp.ClientSession()
    cluster = Cluster(
        replicas=[],
        slack=slack,
        emulator=emulator,
        database=database,
        env=env,
        workdir=workdir,
        session=session,
        arrivals=arrivals,
    )
    try:
        # One at a time: the first migrates the database (the others would wait on its lock).
        for i in range(replicas):
            cluster.replicas.append(await cluster.start(f"replica-{i}"))
        yield cluster
    finally:
        for replica in cluster.replicas:
            if replica.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    replica.proc.kill()
                await replica.proc.wait()
        await session.close()
        await slack.stop()
        await emulator.stop()


def busiest_second(moments: Iterable[float]) -> int:
    """The most of `moments` (monotonic seconds) within any one-second window."""
    times = sorted(moments)
    best = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def rooms(count: int, prefix: str = "room-") -> list[str]:
    """`count` RoomIds: room-000, room-001, …"""
    return [f"{prefix}{i:03d}" for i in range(count)]


def mention_envelope(text: str, **fields: Any) -> dict[str, Any]:
    """An `app_mention` event envelope (see `testkit.slack_payloads.app_mention`)."""
    return app_mention(text, **fields)
