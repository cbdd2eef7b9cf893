"""The outside world for the benchmarks, in a process of its own: a fake Slack Web API
(`tests.fakes.FakeSlack`), the Room Engine emulator, and a small control API on 127.0.0.1.

It runs apart from the load generator so that answering roombot's Slack and Tencent calls does
not delay the load generator's own clock readings (under the ack load it also runs at a lower
priority, so that on the core they share it yields to the load generator). Run as
`python -m bench.backends --rooms N ...`; it prints one JSON line with its three base URLs, then
serves until SIGTERM.

Control API (all GET, JSON):
- `/healthz`
- `/stats`: call counts, the emulator's 60007 count, per-method Slack call counts;
- `/slack-calls?since=I`: Slack calls from index I: method, arrival time, channel, ts, thread_ts,
  and whether it is a final status edit or a takeover report;
- `/tencent-calls?since=I`: Room Engine calls from index I: command, arrival time, ErrorCode;
- `/messages`: the messages as they stand now (updates applied): channel, ts, thread_ts, the
  head and last line of their text, whether it is a takeover report;
- `/wait?finals=K&timeout=S`: answers once K parent messages have got their final status (a
  chat.update whose last line starts with ✅, ❌ or ⚠️: roombot's "request finished" edit).

Arrival times are `time.monotonic()`, which on Linux is one clock for every process, so the load
generator can subtract its own send times from them.

`--rtt-ms` puts Room Engine that far away: every call is held for one round trip before the
emulator counts and answers it, and the first call on a new connection for `--handshake-rtts`
more (TCP and TLS set-up, which a reused connection skips). Calls sent together then reach the
emulator at different times, as they reach Tencent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.tencent.emulator import RoomEngineEmulator
from testkit.slack_api import FakeSlack

SDKAPPID = 1400000042
SECRET_KEY = "bench0secret0key0" + "0" * 47
BOT_TOKEN = "xoxb-bench-token"
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"

#: How often `/wait` looks at the call list; arrival times are recorded exactly regardless.
_WAIT_POLL_S = 0.002
#: How roombot's final status line starts (bot/wording/results.py: final_status).
_FINAL_MARKS = ("✅", "❌", "⚠️")
#: What a takeover report says (bot/wording/takeover.py: takeover_summary).
_TAKEOVER_MARK = " stopped before "


def room_ids(count: int, prefix: str = "room-") -> list[str]:
    """The RoomIds the emulator is seeded with: room-0000, room-0001, …"""
    return [f"{prefix}{i:04d}" for i in range(count)]


@dataclass(frozen=True)
class TencentArrival:
    """One Room Engine call as the emulator saw it."""

    command: str
    at: float
    code: int | None


class Backends:
    """FakeSlack plus the emulator, with arrival times of every Room Engine call."""

    def __init__(
        self, *, rooms: int, rate_limit: int, rtt_s: float = 0.0, handshake_rtts: float = 0.0
    ) -> None:
        self.slack = FakeSlack(bot_token=BOT_TOKEN)
        self.emulator = RoomEngineEmulator(
            sdkappid=SDKAPPID,
            secret_key=SECRET_KEY,
            rooms=room_ids(rooms),
            rate_limit_per_api=rate_limit,
            max_recorded=1_000,  # the benchmark reads arrivals below, not this list
        )
        self.rtt_s = rtt_s
        self.handshake_s = handshake_rtts * rtt_s
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self.tencent: list[TencentArrival] = []
        self.emulator.app.middlewares.append(self._record_arrival)
        self._scanned = 0
        self._finals = 0

    def finals(self) -> int:
        """How many final-status chat.update calls have arrived so far."""
        calls = self.slack.calls
        for call in calls[self._scanned :]:
            if call.method == "chat.update" and _last_line(call.params).startswith(_FINAL_MARKS):
                self._finals += 1
        self._scanned = len(calls)
        return self._finals

    @web.middleware
    async def _record_arrival(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        delay = self.rtt_s
        transport = request.transport
        if self.handshake_s and transport is not None and transport not in self._connections:
            self._connections.add(transport)
            delay += self.handshake_s
        if delay:
            await asyncio.sleep(delay)
        at = time.monotonic()
        response = await handler(request)
        code = None
        if isinstance(response, web.Response) and response.body:
            try:
                code = json.loads(bytes(response.body)).get("ErrorCode")  # type: ignore[arg-type]
            except ValueError:
                code = None
        self.tencent.append(TencentArrival(request.path.rsplit("/", 1)[-1], at, code))
        return response

    def control_app(self) -> web.Application:
        """The control API described in the module docstring."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/slack-calls", self._slack_calls)
        app.router.add_get("/tencent-calls", self._tencent_calls)
        app.router.add_get("/wait", self._wait)
        app.router.add_get("/messages", self._messages)
        return app

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "slack_calls": len(self.slack.calls),
                "slack_methods": dict(Counter(c.method for c in self.slack.calls)),
                "tencent_calls": len(self.tencent),
                "rate_limited": self.emulator.rate_limited,
                "finals": self.finals(),
                "response_posts": len(self.slack.response_posts),
            }
        )

    async def _slack_calls(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        calls = [
            {
                "method": c.method,
                "at": c.at,
                "channel": c.params.get("channel"),
                "thread_ts": c.params.get("thread_ts"),
                "ts": c.params.get("ts"),
                "head": str(c.params.get("text", ""))[:120],
                "last_line": _last_line(c.params)[:120],
                "final": c.method == "chat.update"
                and _last_line(c.params).startswith(_FINAL_MARKS),
                # A survivor's report on a request whose replica stopped (bot/wording/takeover.py).
                "takeover": c.method == "chat.postMessage"
                and _TAKEOVER_MARK in str(c.params.get("text", "")),
            }
            for c in self.slack.calls[since:]
        ]
        return web.json_response(calls)

    async def _messages(self, _request: web.Request) -> web.Response:
        messages = [
            {
                "channel": m["channel"],
                "ts": m["ts"],
                "thread_ts": m["thread_ts"],
                "head": str(m.get("text") or "")[:120],
                "last_line": _last_line(m)[:120],
                "takeover": _TAKEOVER_MARK in str(m.get("text") or ""),
            }
            for m in self.slack.messages()
        ]
        return web.json_response(messages)

    async def _tencent_calls(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        calls = [{"command": t.command, "at": t.at, "code": t.code} for t in self.tencent[since:]]
        return web.json_response(calls)

    async def _wait(self, request: web.Request) -> web.Response:
        wanted = int(request.query["finals"])
        deadline = time.monotonic() + float(request.query.get("timeout", "10"))
        while time.monotonic() < deadline:
            if self.finals() >= wanted:
                return web.json_response({"ok": True, "finals": self._finals})
            await asyncio.sleep(_WAIT_POLL_S)
        return web.json_response({"ok": False, "finals": self.finals()}, status=504)


def _last_line(params: dict[str, Any]) -> str:
    return str(params.get("text") or "").rsplit("\n", 1)[-1]


async def _serve(args: argparse.Namespace) -> None:
    backends = Backends(
        rooms=args.rooms,
        rate_limit=args.rate_limit,
        rtt_s=args.rtt_ms / 1000,
        handshake_rtts=args.handshake_rtts,
    )
    await backends.slack.start()
    emulator_url = await backends.emulator.start()
    runner = web.AppRunner(backends.control_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    control_port = runner.addresses[0][1]
    print(
        json.dumps(
            {
                "slack_api_url": backends.slack.api_url,
                "emulator_url": emulator_url,
                "control_url": f"http://127.0.0.1:{control_port}",
            }
        ),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await backends.emulator.stop()
    await backends.slack.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.backends`."""
    parser = argparse.ArgumentParser(prog="python -m bench.backends")
    parser.add_argument("--rooms", type=int, default=100, help="rooms to seed the emulator with")
    parser.add_argument(
        "--rate-limit", type=int, default=200, help="the emulator's calls/s per API (60007 above)"
    )
    parser.add_argument(
        "--rtt-ms", type=float, default=0.0, help="round trip to Room Engine, held on every call"
    )
    parser.add_argument(
        "--handshake-rtts",
        type=float,
        default=0.0,
        help="extra round trips for the first call on a new connection",
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
