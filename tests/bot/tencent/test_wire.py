"""The wire roombot runs on (`AiohttpWire`), against real sockets on 127.0.0.1: an answer comes
back whole; each network failure is told apart, with whether the request may have reached the
server (`sent`), which decides whether even a non-idempotent call may be sent again: refused
and pool timeouts were not sent; a hang, a connection closed mid-answer were. Through the
transport, the same failures read as they did on httpx, and never quote the UserSig. Proxies
come from the environment, minding NO_PROXY."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from bot.budget import RateBudget
from bot.tencent.client import RetryPolicy, RoomEngineClient
from bot.tencent.errors import RequestTimeout, TransportError
from bot.tencent.wire import AiohttpWire, WireError, WireTimeout, env_proxy

KEY = "wire0test0secret0key" + "0" * 44

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)


@pytest.fixture
async def wire() -> AsyncIterator[AiohttpWire]:
    made = AiohttpWire(0.5, max_connections=1)
    yield made
    await made.aclose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_answer_comes_back_whole_with_its_status(wire: AiohttpWire) -> None:
    seen: list[tuple[str, dict[str, str], bytes, str]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.path, dict(request.query), body, request.content_type))
        return web.Response(status=502, reason="Bad Gateway", body=b'{"x": 1}')

    app = web.Application()
    app.router.add_post("/v4/x/get_room_info", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        answer = await wire.post(
            f"http://127.0.0.1:{port}/v4/x/get_room_info", {"usersig": "s", "a": "1"}, b"{}"
        )
    finally:
        await runner.cleanup()
    assert (answer.status, answer.reason, json.loads(answer.content)) == (
        502,
        "Bad Gateway",
        {"x": 1},
    )
    assert seen == [("/v4/x/get_room_info", {"usersig": "s", "a": "1"}, b"{}", "application/json")]


async def test_a_refused_connection_was_not_sent(wire: AiohttpWire) -> None:
    with pytest.raises(WireError) as info:
        await wire.post(f"http://127.0.0.1:{_free_port()}/v4/x", {}, b"{}")
    assert (info.value.kind, info.value.sent) == ("ConnectError", False)


async def test_a_server_that_never_answers_times_out_and_may_have_been_sent(
    wire: AiohttpWire,
) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    server, url = await _serve(hang)
    async with server:
        with pytest.raises(WireTimeout) as info:
            await wire.post(f"{url}/v4/x", {}, b"{}")
    assert (info.value.kind, info.value.sent) == ("ReadTimeout", True)


async def test_a_connection_closed_before_the_answer_may_have_been_sent(
    wire: AiohttpWire,
) -> None:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    server, url = await _serve(close)
    async with server:
        with pytest.raises(WireError) as info:
            await wire.post(f"{url}/v4/x", {}, b"{}")
    assert (info.value.kind, info.value.sent) == ("RemoteProtocolError", True)


async def test_waiting_too_long_for_a_pooled_connection_was_not_sent(wire: AiohttpWire) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # An answer that keeps coming, a byte at a time: it holds the only connection for
        # longer than the wait for one, and never times out reading.
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n")
        for _ in range(8):
            await asyncio.sleep(0.15)
            writer.write(b" ")
            await writer.drain()
        writer.close()

    server, url = await _serve(trickle)
    async with server:
        first = asyncio.ensure_future(wire.post(f"{url}/v4/x", {}, b"{}"))
        await asyncio.sleep(0.1)  # it holds the only connection
        with pytest.raises(WireTimeout) as info:
            await wire.post(f"{url}/v4/y", {}, b"{}")
        assert (info.value.kind, info.value.sent) == ("ConnectTimeout", False)
        assert (await first).content == b" " * 8


async def test_a_closed_wire_sends_nothing(wire: AiohttpWire) -> None:
    await wire.aclose()
    with pytest.raises(WireError) as info:
        await wire.post("http://127.0.0.1:9/v4/x", {}, b"{}")
    assert info.value.sent is False


def _client(url: str, *, timeout_s: float) -> RoomEngineClient:
    """The real client (on the aiohttp wire) at `url`: one attempt, a budget that never paces."""
    return RoomEngineClient(
        base_url=url,
        sdkappid=1400000000,
        secret_key=KEY,
        admin_id="administrator",
        rate_budget=RateBudget(200),
        retry=RetryPolicy(max_attempts=1),
        timeout_s=timeout_s,
    )


async def test_through_the_client_failures_read_as_before_and_never_show_the_usersig() -> None:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    server, url = await _serve(close)
    async with server:
        client = _client(url, timeout_s=0.5)
        async with client:
            with pytest.raises(TransportError) as closed:
                await client.get_room_info("room-1")
    refused = _client(f"http://127.0.0.1:{_free_port()}", timeout_s=0.5)
    async with refused:
        with pytest.raises(TransportError) as down:
            await refused.get_room_info("room-1")
    assert str(closed.value).startswith("get_room_info: RemoteProtocolError: ")
    assert str(down.value) == "get_room_info: ConnectError: connection refused"
    for error in (closed.value, down.value):
        assert "usersig" not in str(error).lower()
        assert KEY not in str(error)
        assert error.__cause__ is None


async def test_a_hang_through_the_client_is_a_timeout() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    server, url = await _serve(hang)
    async with server:
        client = _client(url, timeout_s=0.3)
        async with client:
            with pytest.raises(RequestTimeout) as info:
                await client.get_room_info("room-1")
    assert str(info.value) == "get_room_info: no answer within 0.3 s (ReadTimeout)"


def test_proxies_come_from_the_environment_minding_no_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert env_proxy("https://console.tim.qq.com/v4/x") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert env_proxy("https://console.tim.qq.com/v4/x") == "http://proxy.internal:3128"
    assert env_proxy("http://127.0.0.1:9000/v4/x") is None  # HTTP_PROXY is not set
    monkeypatch.setenv("NO_PROXY", ".qq.com")
    assert env_proxy("https://console.tim.qq.com/v4/x") is None
    assert env_proxy("https://adminapisgp.im.qcloud.com/v4/x") == "http://proxy.internal:3128"
