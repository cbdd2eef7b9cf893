"""`roombot serve`: HTTP (`POST /slack/events`) or Socket Mode, both with the operational
endpoints (`/healthz`, `/readyz`, `/metrics`: `handlers.ops`) on the HTTP port, and a clean
shutdown. `handlers.launch` runs the start-up checks and calls these.

`POST /tencent/callback` (Room Engine callbacks, `handlers.callbacks`) is an operational route
too, served in both modes when `ROOMBOT_CALLBACK_TOKEN` is set.

Requests to `/slack/events` are screened first (`handlers.ingress`): a bad timestamp or signature
is a 401, a body bolt could not read a 400, each with one short log line and never the body.

SIGHUP reloads `ROOMBOT_POLICY_FILE` (a broken file is logged and the old policy kept).

On SIGTERM/SIGINT the process drains: `/readyz` answers 503 from then on (a load balancer that
checks it sends new requests elsewhere), while the port keeps listening: `/healthz` (with
`"draining": true`) and `/metrics` keep answering, and Slack requests that still arrive are
handled like any other (Slack does not retry a slash command or a click, so refusing one would
only show its user an error). In Socket Mode the socket closes at once, so Slack sends to the
app's other connections. Once the work in flight is done (new work included, up to
`DRAIN_TIMEOUT_S` in all) the port closes, requests already being answered get their answer, and
whatever is still running then is logged and cancelled; its leases expire after
`ROOMBOT_LEASE_S` and a surviving replica (or, on SQLite, this bot at its next start) reads its
rooms back and reports in its thread.

Once the server takes traffic, the bot's background duty starts (`Bot.start`): taking over
requests whose replica stopped.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import time

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest

from handlers.app import Bot
from handlers.callbacks import add_callback_route
from handlers.ingress import Refusal, RefusalLog, screen
from handlers.ops import Operations, add_ops_routes
from handlers.runtime import ADMISSION_KEY

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 25.0
#: Once the port closes, how long requests already being answered may take (an ack is due
#: within Slack's 3 s).
ANSWER_GRACE_S = 5.0
EVENTS_PATH = "/slack/events"


def make_ops_app(bot: Bot, ops: Operations | None = None) -> web.Application:
    """The aiohttp application of every mode: the operational endpoints (Socket Mode serves only
    these). Routes added here are served in both modes."""
    web_app = web.Application()
    add_ops_routes(web_app, ops or Operations.for_bot(bot))
    if bot.callbacks is not None:
        add_callback_route(web_app, bot.callbacks)
    return web_app


def make_web_app(bot: Bot, ops: Operations | None = None) -> web.Application:
    """HTTP mode's application: Slack's requests plus the operational endpoints."""
    signing_secret = (
        bot.settings.slack_signing_secret.get_secret_value()
        if bot.settings.slack_signing_secret
        else None
    )
    refusals = RefusalLog()

    gate = bot.runtime.gate

    async def events(request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            refusals.note(Refusal(413, "too_large", "body too large"), request.remote)
            raise
        screened = screen(body, request.headers, signing_secret=signing_secret, now=time.time())
        if isinstance(screened, Refusal):
            refusals.note(screened, request.remote)
            return web.json_response({"error": screened.reason}, status=screened.status)
        # Admitted once whole and signed: background work steps aside until its ack is out. (Not
        # before: anyone can hold a connection open mid-body, and must not slow the work down.)
        admission = gate.admit()
        try:
            bolt_request = AsyncBoltRequest(
                body=screened,
                query=request.query_string,
                headers=request.headers,  # type: ignore[arg-type]
                context={ADMISSION_KEY: admission},
            )
            bolt_response = await bot.app.async_dispatch(bolt_request)
        finally:
            admission.done()
        return await to_aiohttp_response(bolt_response)

    web_app = make_ops_app(bot, ops)
    web_app.router.add_post(EVENTS_PATH, events)
    return web_app


def _stop_event(bot: Bot) -> asyncio.Event:
    """SIGTERM/SIGINT stop the server; SIGHUP re-reads the policy file without a restart."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, bot.reload_policy)
    return stop


async def _drain(bot: Bot, runner: web.AppRunner) -> None:
    """Let the work in flight finish while the port still answers, then close the port (the
    requests being answered get their answer), cancel what still runs, and close the bot."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_TIMEOUT_S
    await bot.runtime.tasks.drain(DRAIN_TIMEOUT_S)
    await runner.cleanup()
    # Work the last answered requests started gets what is left of the drain's time.
    unfinished = await bot.runtime.tasks.drain(max(deadline - loop.time(), 0.0))
    if unfinished:
        # Their leases expire; a survivor (or this bot's next start) reads back and reports them.
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


async def _start(web_app: web.Application, sock: socket.socket) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=ANSWER_GRACE_S)
    await runner.setup()
    _freeze_startup_objects()
    site = web.SockSite(runner, sock)
    await site.start()
    host, port = sock.getsockname()[:2]
    return runner, f"http://{host}:{port}"


async def serve_http(bot: Bot, ops: Operations, *, sock: socket.socket) -> None:
    """Serve Slack's requests and the operational endpoints on `sock` (bound, not yet
    listening) until SIGTERM/SIGINT, then drain and close."""
    runner, url = await _start(make_web_app(bot, ops), sock)
    stop = _stop_event(bot)
    log.info("roombot serving HTTP on %s%s", url, EVENTS_PATH)
    bot.start()
    await stop.wait()
    ops.readiness.stop()
    log.info(
        "shutting down: /readyz answers 503; still answering while %d request(s) in flight "
        "finish (at most %g s)",
        bot.runtime.tasks.pending,
        DRAIN_TIMEOUT_S,
    )
    await _drain(bot, runner)


async def serve_socket_mode(
    bot: Bot, ops: Operations, *, app_token: str, sock: socket.socket
) -> None:
    """Connect over Socket Mode until SIGTERM/SIGINT, then drain and close; meanwhile serve the
    operational endpoints on `sock`. A refused app token raises `SlackApiError` (the bot is then
    left open for the caller to close)."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    runner, url = await _start(make_ops_app(bot, ops), sock)
    # No door here: a request counts as being acknowledged inside bolt (HTTP counts at the door).
    bot.app.use(bot.runtime.gate.track)
    handler = AsyncSocketModeHandler(bot.app, app_token)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
    except BaseException:
        await handler.close_async()  # type: ignore[no-untyped-call]
        await runner.cleanup()
        raise
    stop = _stop_event(bot)
    log.info("roombot connected to Slack over Socket Mode; health and metrics on %s", url)
    bot.start()
    await stop.wait()
    ops.readiness.stop()
    log.info(
        "shutting down: closing the socket; waiting for %d in flight", bot.runtime.tasks.pending
    )
    await handler.disconnect_async()  # type: ignore[no-untyped-call]
    await _drain(bot, runner)
    await handler.close_async()  # type: ignore[no-untyped-call]
