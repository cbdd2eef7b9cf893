"""`roombot serve`: HTTP (`POST /slack/events`, `GET /healthz`, and `POST /tencent/callback` when
`ROOMBOT_CALLBACK_TOKEN` is set) or Socket Mode, with clean shutdown.

SIGHUP reloads `ROOMBOT_POLICY_FILE` (a broken file is logged and the old policy kept).

On SIGTERM/SIGINT the server stops taking new requests, waits for work already acknowledged to
finish (up to `DRAIN_TIMEOUT_S`), then closes. Whatever is still running then is logged.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from handlers.app import Bot
from handlers.callbacks import add_callback_route

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 25.0
EVENTS_PATH = "/slack/events"


def make_web_app(bot: Bot) -> web.Application:
    """The aiohttp application serving Slack's requests, the health check and, when configured,
    Room Engine callbacks."""

    async def events(request: web.Request) -> web.Response:
        bolt_response = await bot.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "in_flight": bot.runtime.tasks.pending})

    web_app = web.Application()
    web_app.router.add_post(EVENTS_PATH, events)
    web_app.router.add_get("/healthz", healthz)
    if bot.callbacks is not None:
        add_callback_route(web_app, bot.callbacks)
    return web_app


def _stop_event(bot: Bot) -> asyncio.Event:
    """SIGTERM/SIGINT stop the server; SIGHUP re-reads the policy file without a restart."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, bot.reload_policy)
    return stop


async def _drain(bot: Bot) -> None:
    unfinished = await bot.runtime.tasks.drain(DRAIN_TIMEOUT_S)
    if unfinished:
        # Their audit rows stay pending and are marked "unknown outcome" at the next start.
        log.error("shutting down with %d request(s) still running", unfinished)
        bot.runtime.tasks.cancel()
    await bot.aclose()


def _freeze_startup_objects() -> None:
    """Keep what start-up built (modules, settings, the app) out of every later full collection.

    It lives as long as the process; rescanning it in each full collection pauses the event
    loop, and so every ack in flight, for tens of milliseconds.
    """
    gc.collect()
    gc.freeze()


async def serve_http(bot: Bot, *, host: str, port: int) -> None:
    """Serve HTTP until SIGTERM/SIGINT, then drain and close."""
    runner = web.AppRunner(make_web_app(bot), access_log=None)
    await runner.setup()
    _freeze_startup_objects()
    site = web.TCPSite(runner, host, port)
    await site.start()
    stop = _stop_event(bot)
    # With --port 0 the system picks the port: say the one actually bound.
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("roombot listening on http://%s:%d%s", host, bound, EVENTS_PATH)
    print(f"roombot serving HTTP on http://{host}:{bound}{EVENTS_PATH}", flush=True)
    await stop.wait()
    log.info("shutting down: no new requests; waiting for %d in flight", bot.runtime.tasks.pending)
    await site.stop()
    await _drain(bot)
    await runner.cleanup()


async def serve_socket_mode(bot: Bot, *, app_token: str) -> None:
    """Connect over Socket Mode until SIGTERM/SIGINT, then drain and close."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(bot.app, app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    _freeze_startup_objects()
    print("roombot connected to Slack over Socket Mode", flush=True)
    stop = _stop_event(bot)
    await stop.wait()
    log.info(
        "shutting down: closing the socket; waiting for %d in flight", bot.runtime.tasks.pending
    )
    await handler.disconnect_async()  # type: ignore[no-untyped-call]
    await _drain(bot)
    await handler.close_async()  # type: ignore[no-untyped-call]
