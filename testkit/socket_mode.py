"""A local Socket Mode server that slack_sdk's aiohttp `SocketModeClient` (and so bolt's
`AsyncSocketModeHandler`) connects to as if it were Slack.

Flow, as with Slack: the app calls `apps.connections.open` (on a `FakeSlack` this server is
attached to) and gets a one-time `ws://127.0.0.1:PORT/link/?ticket=…&app_id=…` URL; on connect the
server sends `{"type": "hello", …}`. A test then pushes envelopes with `send_envelope()` and reads
the app's acknowledgement with `wait_for_ack()`. `request_reconnect()` sends Slack's
`{"type": "disconnect"}` so the client has to open a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from types import TracebackType
from typing import Any, Literal, Self

from aiohttp import WSMsgType, web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from .slack_payloads import APP_ID

EnvelopeType = Literal["slash_commands", "events_api", "interactive"]

# Interactivity payloads whose ack may carry a response (Slack sets accepts_response_payload).
_RESPONSE_PAYLOAD_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})


class FakeSocketMode:
    """Slack's Socket Mode WebSocket endpoint on 127.0.0.1 (port chosen by the OS).

    Records every JSON message clients send in `received` and every ack in `acks` (by envelope id).
    """

    def __init__(self, *, app_id: str = APP_ID) -> None:
        self.app_id = app_id
        self.received: list[dict[str, Any]] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._round_robin = itertools.count()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port = 0

    async def start(self) -> None:
        """Listen on 127.0.0.1 at a free port."""
        app = web.Application()
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = _bound_port(self._runner)

    async def stop(self) -> None:
        """Close every connection (close code 1001, going away) and stop listening."""
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def issue_url(self) -> str:
        """A new connection URL with a fresh single-use ticket, as apps.connections.open returns."""
        if self._runner is None:
            raise RuntimeError("FakeSocketMode is not started")
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self._port}/link/?ticket={ticket}&app_id={self.app_id}"

    @property
    def connections(self) -> int:
        """How many clients are connected now."""
        return sum(1 for ws in self._sockets if not ws.closed)

    # Timeout parameters (not asyncio.timeout) so a failure can say what was sent and acked.
    async def wait_connected(self, count: int = 1, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until at least `count` clients are connected, else raise AssertionError."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: self.connections >= count)
        except TimeoutError:
            raise AssertionError(
                f"{self.connections} Socket Mode connection(s) after {timeout}s, wanted {count}"
            ) from None

    async def send_envelope(
        self,
        *,
        type: EnvelopeType,
        payload: dict[str, Any],
        envelope_id: str | None = None,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> str:
        """Deliver one envelope to one connected client (round robin, as Slack spreads payloads
        over an app's connections) and return its envelope id.

        Waits up to `timeout` for a connection. `accepts_response_payload` defaults to what Slack
        sends for the type: true for slash commands, false for events, true only for
        `view_submission`/`block_suggestion` interactions. `retry_attempt`/`retry_reason` are
        sent for events (Slack's redelivery counter).
        """
        await self.wait_connected(1, timeout)
        envelope_id = envelope_id if envelope_id is not None else str(uuid.uuid4())
        if accepts_response_payload is None:
            accepts_response_payload = type == "slash_commands" or (
                type == "interactive" and payload.get("type") in _RESPONSE_PAYLOAD_INTERACTIONS
            )
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        open_sockets = [ws for ws in self._sockets if not ws.closed]
        ws = open_sockets[next(self._round_robin) % len(open_sockets)]
        self.sent.append(envelope)
        await ws.send_str(json.dumps(envelope))
        return envelope_id

    async def wait_for_ack(
        self,
        envelope_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """The ack the app sent for `envelope_id` (`{"envelope_id": …, "payload"?: …}`).

        Raises AssertionError after `timeout` seconds without one (Slack would give up after 3).
        """
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: envelope_id in self.acks)
        except TimeoutError:
            sent = [e["envelope_id"] for e in self.sent]
            raise AssertionError(
                f"no ack for envelope {envelope_id} within {timeout}s; "
                f"sent {sent}, acked {list(self.acks)}"
            ) from None
        return self.acks[envelope_id]

    async def request_reconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's `disconnect` message to every client, which must then reconnect."""
        message = {
            "type": "disconnect",
            "reason": reason,
            "debug_info": {"host": "applink-fake"},
        }
        for ws in [ws for ws in self._sockets if not ws.closed]:
            await ws.send_str(json.dumps(message))

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            # Slack refuses unknown or reused tickets before the WebSocket upgrade.
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(json.dumps(self._hello()))
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(msg.data)
        finally:
            self._sockets.remove(ws)
            await self._notify()
        return ws

    async def _on_text(self, data: str) -> None:
        with contextlib.suppress(ValueError):
            message = json.loads(data)
            if isinstance(message, dict):
                self.received.append(message)
                envelope_id = message.get("envelope_id")
                if isinstance(envelope_id, str):
                    self.acks[envelope_id] = message
                await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "num_connections": self.connections,
            "debug_info": {
                "host": "applink-fake",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }


async def close_handler(handler: AsyncSocketModeHandler) -> None:
    """Close a bolt `AsyncSocketModeHandler` and wait for its client's background tasks to end.

    `close_async()` only cancels those tasks; awaiting them here keeps "Task was destroyed but it
    is pending" and unclosed-session noise out of test output.
    """
    await handler.close_async()  # type: ignore[no-untyped-call]
    client = handler.client
    tasks = [client.message_processor, client.current_session_monitor, client.message_receiver]
    for task in tasks:
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])
