"""A stream of Room Engine member callbacks at a fixed rate, in a process of its own:
`python -m bench.callback_stream URL --token T --sdkappid N --count C --rate R [--offset O]`.

It runs apart from the load generator so that sending hundreds of callbacks a second does not
delay the load generator's own clock readings of the `/room` acks it measures. It builds every
body first, opens its connections, prints `ready`, waits for a line on stdin, then posts MemberEnter
/ MemberLeave callbacks open loop (each at its scheduled time, whatever the earlier answers did)
with the token and SdkAppid in the query, as Room Engine would. At the end it prints one JSON line:
each answer's latency in seconds and how many answers were not HTTP 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp

from bot.models import CallbackCommand
from bot.tencent.emulator_callbacks import member_enter_body, member_leave_body

ROOMS = 100


def bodies(count: int, offset: int) -> list[tuple[str, bytes]]:
    """`count` member callbacks (command, JSON body), entering and leaving in turn."""
    made = []
    for i in range(offset, offset + count):
        room = f"room-{i % ROOMS:04d}"
        account = f"viewer-{i:07d}"
        event_ms = int(time.time() * 1000) + i
        if i % 2 == 0:
            body = member_enter_body(account, room, [account], 10, event_ms)
            command = CallbackCommand.MEMBER_ENTER.value
        else:
            body = member_leave_body(
                account, room, [account], 9, event_ms, leave_type="Leave", reason=""
            )
            command = CallbackCommand.MEMBER_LEAVE.value
        made.append((command, json.dumps(body).encode()))
    return made


async def _stream(args: argparse.Namespace) -> dict[str, object]:
    calls = bodies(args.count, args.offset)
    base = {
        "token": args.token,
        "SdkAppid": str(args.sdkappid),
        "contenttype": "json",
        "ClientIP": "203.0.113.1",
        "OptPlatform": "Android",
    }
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(command: str, body: bytes) -> None:
            nonlocal errors
            sent = time.monotonic()
            params = {**base, "CallbackCommand": command}
            async with session.post(args.url, params=params, data=body) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.monotonic() - sent)

        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        start = time.monotonic()
        tasks = []
        for i, (command, body) in enumerate(calls):
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(command, body)))
        await asyncio.gather(*tasks)
    return {"latencies": latencies, "errors": errors}


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m bench.callback_stream`."""
    parser = argparse.ArgumentParser(prog="python -m bench.callback_stream")
    parser.add_argument("url")
    parser.add_argument("--token", required=True)
    parser.add_argument("--sdkappid", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--offset", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_stream(args))), flush=True)


if __name__ == "__main__":
    main()
