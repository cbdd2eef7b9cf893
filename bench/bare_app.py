"""The baseline: a bare bolt `AsyncApp` whose `/room` handler only acks, served like roombot.

Everything the framework does is the same as in `roombot serve --http`: the same `AsyncWebClient`
settings (pointed at the same fake Slack), request verification with a signing secret, the
aiohttp adapter (`to_bolt_request` → `async_dispatch` → `to_aiohttp_response`) on an
`AppRunner` without access log, and the same logging set-up. Only the listener differs.

Run as `python -m bench.bare_app` with SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and SLACK_API_URL set;
it binds 127.0.0.1 on a free port and serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.logs import configure_logging


def build_app() -> AsyncApp:
    """The bare app: same client and verification as roombot, a listener that only acks."""
    client = AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"], timeout=15
    )
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @app.command("/room")
    async def on_room(ack: AsyncAck) -> None:
        await ack()

    return app


async def serve(app: AsyncApp) -> None:
    """Serve `app` on 127.0.0.1 (a free port) until SIGTERM/SIGINT."""

    async def events(request: web.Request) -> web.Response:
        bolt_response = await app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "in_flight": 0})

    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    web_app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    """`python -m bench.bare_app`."""
    configure_logging()

    async def run() -> None:
        await serve(build_app())

    asyncio.run(run())


if __name__ == "__main__":
    main()
