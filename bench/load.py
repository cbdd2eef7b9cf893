"""The load generator: signed `/room` slash commands, sent at a fixed concurrency.

Bodies are built and signed before the clock starts for each request, so the measured time is
the server's (plus loopback), not ours. Each worker holds one keep-alive connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import aiohttp

from bench.backends import SIGNING_SECRET
from testkit.slack_payloads import form_body, sign, slash_command

_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Command:
    """One slash command to send: the text and who sends it where."""

    text: str
    user_id: str
    channel_id: str
    response_url: str


@dataclass(frozen=True)
class Shot:
    """One request's outcome: monotonic send and answer times, HTTP status, body."""

    sent: float
    answered: float
    status: int
    body: str

    @property
    def latency_s(self) -> float:
        """Seconds from sending the request to having the whole answer."""
        return self.answered - self.sent


def slash_body(command: Command) -> bytes:
    """The form body Slack posts for `command`."""
    return form_body(
        slash_command(
            command.text,
            user_id=command.user_id,
            channel_id=command.channel_id,
            response_url=command.response_url,
        )
    )


async def send(session: aiohttp.ClientSession, url: str, body: bytes) -> Shot:
    """Sign `body` as Slack would and POST it to `url`."""
    headers = {**_HEADERS, **sign(body, SIGNING_SECRET)}
    sent = time.monotonic()
    async with session.post(url, data=body, headers=headers) as response:
        text = await response.text()
        status = response.status
    return Shot(sent=sent, answered=time.monotonic(), status=status, body=text)


def pool(concurrency: int) -> aiohttp.ClientSession:
    """A client session holding up to `concurrency` keep-alive connections to one server."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))


@contextlib.contextmanager
def no_collector_pauses() -> Iterator[None]:
    """Within the block, this process's cyclic garbage collector does not run (it collects
    first, and runs again after as it was).

    The load generator is the bench process, which grows over a full run: its own gen-2
    collections took 23-45 ms each (measured with `gc.callbacks`). One falling in a round held up
    the reading of every answer in flight and was counted as the measured server's ack
    latency, in one round of one series: the single slow rounds the replica and scrape ratios
    showed. A round lasts seconds; its garbage waits for the end of it.
    """
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def fire(
    session: aiohttp.ClientSession,
    url: str | Sequence[str],
    commands: Sequence[Command],
    *,
    concurrency: int,
) -> list[Shot]:
    """Send every command to `url` (given several, command i goes to `url[i % len(url)]`) with
    `concurrency` requests in flight, without the load generator's collector pausing it
    (`no_collector_pauses`); shots in send order."""
    urls = [url] if isinstance(url, str) else list(url)
    bodies = [slash_body(c) for c in commands]
    shots: list[Shot | None] = [None] * len(bodies)
    next_index = itertools.count()

    async def worker() -> None:
        for i in next_index:
            if i >= len(bodies):
                return
            shots[i] = await send(session, urls[i % len(urls)], bodies[i])

    with no_collector_pauses():
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(bodies)))))
    return [s for s in shots if s is not None]
