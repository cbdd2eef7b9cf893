"""The HTTP under the Room Engine transport: one POST, its answer, or a failure saying whether the
request may have reached Tencent.

`AiohttpWire` is what roombot runs on. It sends through one pooled `aiohttp.ClientSession`
(aiohttp is already in the process: bolt's HTTP server runs on it). It replaced
`httpx.AsyncClient` on the hot path because of what a call costs: measured on loopback against
the emulator (`bench` e2e, and a probe of 500 sequential `get_room_info` calls on this
machine), httpx spent 1.6-1.75 ms of CPU per call and aiohttp 0.34-0.37 ms; a one-room write
makes two calls (the read before, the change), so that was about 2.7 ms of a command's CPU.

`HttpxWire` sends through an `httpx.AsyncClient` over a given `httpx.AsyncBaseTransport`: the
client's `transport=` argument, which tests use (`httpx.MockTransport`, or a real transport
with faults injected) to shape answers and network errors precisely.

Both give the transport the same failures: `WireTimeout` (no answer in time) and `WireError`
(anything else on the network), each with `sent`, False only when the request certainly never
left (no connection was made: nothing reached Tencent, so even `create_room` may be sent
again), and `kind`, a short name for people and logs (httpx's exception names, which both use:
"ConnectTimeout", "ReadTimeout", "ConnectError", "RemoteProtocolError"...). A failure's text
and `__cause__` are the library's, and may quote the URL, UserSig included: the transport
never shows them unredacted.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass

import aiohttp
import certifi
import httpx

#: The longest a call may wait for a pooled connection, connect, or wait for its answer.
DEFAULT_TIMEOUT_S = 5.0
#: Connections to Room Engine kept at most (calls beyond wait for one).
MAX_CONNECTIONS = 100


@dataclass(frozen=True)
class WireResponse:
    """An HTTP answer: status, reason phrase and body."""

    status: int
    reason: str
    content: bytes


class WireFailure(Exception):
    """The request failed on the network (see the module docstring)."""

    def __init__(self, kind: str, detail: str, *, sent: bool) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.sent = sent


class WireTimeout(WireFailure):
    """No answer in time (or no connection in time: then `sent` is False)."""


class WireError(WireFailure):
    """Any other network failure: refused, reset, closed mid-answer, a malformed answer."""


class Wire(Protocol):
    """One way of sending a Room Engine POST (see the module docstring)."""

    async def post(self, url: str, params: Mapping[str, str], body: bytes) -> WireResponse:
        """POST `body` (JSON) to `url` with query `params`. Raises `WireFailure`."""
        ...

    async def aclose(self) -> None:
        """Close the connections; idempotent."""
        ...


_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
    minding `NO_PROXY`), or None."""
    parts = urlsplit(url)
    proxies = getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class AiohttpWire:
    """The production wire: one pooled `aiohttp.ClientSession`, made at the first call (it must
    be made inside the running event loop). Proxies from the environment are honoured, as
    httpx did (`HTTPS_PROXY`, `NO_PROXY`): looked up once per host here, since aiohttp's own
    lookup (`trust_env`) costs a thread hop on every request. Certificates are checked against
    certifi's bundle, as httpx did."""

    def __init__(
        self, timeout_s: float = DEFAULT_TIMEOUT_S, *, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _proxy(self, url: str) -> str | None:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key not in self._proxies:
            self._proxies[key] = env_proxy(url)
        return self._proxies[key]

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise WireError("ConnectError", "the client is closed", sent=False)
        if self._session is None:
            tls = ssl.create_default_context(cafile=certifi.where())
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=tls),
                # `connect` covers waiting for a pooled connection and making one: a timeout
                # there means nothing was sent. `sock_read`: the wait for the answer.
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self._timeout_s, sock_read=self._timeout_s
                ),
                headers=_HEADERS,
                # The emulator and Tencent never set cookies; keeping none is cheaper.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )
        return self._session

    async def post(self, url: str, params: Mapping[str, str], body: bytes) -> WireResponse:
        """See `Wire.post`."""
        session = self._open()
        try:
            async with session.post(
                url, params=params, data=body, allow_redirects=False, proxy=self._proxy(url)
            ) as r:
                content = await r.read()
                return WireResponse(r.status, r.reason or "", content)
        except aiohttp.ConnectionTimeoutError as exc:
            raise WireTimeout("ConnectTimeout", str(exc), sent=False) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise WireTimeout("ReadTimeout", str(exc), sent=True) from exc
        except aiohttp.ClientConnectorError as exc:
            raise WireError("ConnectError", str(exc), sent=False) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise WireError("RemoteProtocolError", str(exc), sent=True) from exc
        except aiohttp.ClientResponseError as exc:  # a malformed status line or headers
            raise WireError("RemoteProtocolError", str(exc), sent=True) from exc
        except aiohttp.ClientError as exc:  # reset mid-request, and the rest
            raise WireError("ReadError", str(exc), sent=True) from exc

    async def aclose(self) -> None:
        """See `Wire.aclose`."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


# Connection never established: nothing reached the server.
_HTTPX_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class HttpxWire:
    """A wire over an `httpx.AsyncClient` on `transport` (tests shape answers and faults with
    it); httpx's exceptions become `WireFailure`s named after themselves."""

    def __init__(
        self, transport: httpx.AsyncBaseTransport, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers=_HEADERS,
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=50),
        )

    async def post(self, url: str, params: Mapping[str, str], body: bytes) -> WireResponse:
        """See `Wire.post`."""
        try:
            response = await self._http.post(url, params=dict(params), content=body)
        except httpx.TimeoutException as exc:
            sent = not isinstance(exc, _HTTPX_NOT_SENT)
            raise WireTimeout(type(exc).__name__, str(exc), sent=sent) from exc
        except httpx.HTTPError as exc:
            sent = not isinstance(exc, _HTTPX_NOT_SENT)
            raise WireError(type(exc).__name__, str(exc), sent=sent) from exc
        return WireResponse(response.status_code, response.reason_phrase, response.content)

    async def aclose(self) -> None:
        """See `Wire.aclose`."""
        await self._http.aclose()
