"""The Room Engine client against `httpx.MockTransport`: requests, parsing, errors, retries."""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable
from typing import Any, ClassVar

import httpx
import pytest

from bot.budget import RateBudget, process_budget
from bot.config import ConfigError, load_settings
from bot.models import RoomPatch, RoomSnapshot
from bot.tencent.client import ApiResult, RetryPolicy, RoomEngineClient
from bot.tencent.errors import (
    RETRYABLE_CODES,
    ApiError,
    MalformedResponse,
    RequestTimeout,
    RoomEngineError,
    TransportError,
)
from bot.tencent.usersig import decode_usersig, verify_usersig
from testkit.clock import FakeClock

APP = 1400000000
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
ADMIN = "administrator"
NOW = 1_700_000_000.0
BASE = "https://adminapisgp.im.qcloud.com"

Handler = Callable[[httpx.Request], httpx.Response]


def ok(request_id: str = "Id-ok-O-Seq-1", **extra: Any) -> httpx.Response:
    body = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", "RequestId": request_id}
    body.update(extra)
    return httpx.Response(200, json=body)


def fail(code: int, info: str = "boom", request_id: str = "Id-fail-O-Seq-1") -> httpx.Response:
    body = {"ActionStatus": "FAIL", "ErrorCode": code, "ErrorInfo": info, "RequestId": request_id}
    return httpx.Response(200, json=body)


class Recorder:
    """Answers requests from a list of responses (or exceptions) and keeps what it was sent."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[httpx.Request], Any]):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if callable(answer) and not isinstance(answer, httpx.Response):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer


class Clocks(FakeClock):
    """The shared fake clock as the client's wall clock and monotonic clock at once: backoff
    pauses advance both instantly; `wall` and `mono` name the two readings."""

    def __init__(self) -> None:
        super().__init__(float(NOW))

    @property
    def wall(self) -> float:
        return self.now

    @wall.setter
    def wall(self, value: float) -> None:
        self.now = value

    @property
    def mono(self) -> float:
        return self.now - NOW


def make_client(
    handler: Handler,
    clocks: Clocks | None = None,
    *,
    budget: RateBudget | None = None,
    **overrides: Any,
) -> RoomEngineClient:
    clocks = clocks or Clocks()
    kwargs: dict[str, Any] = {
        "base_url": BASE,
        "sdkappid": APP,
        "secret_key": KEY,
        "admin_id": ADMIN,
        "rate_budget": budget or RateBudget(200, burst=200),
        "transport": httpx.MockTransport(handler),
        "clock": lambda: clocks.wall,
        "sleep": clocks.sleep,
        "monotonic": lambda: clocks.mono,
        "rng": random.Random(7),
    }
    kwargs.update(overrides)
    return RoomEngineClient(**kwargs)


def error_of(excinfo: pytest.ExceptionInfo[Any]) -> Any:
    return excinfo.value


# -- request building -----------------------------------------------------------------------


async def test_update_request_is_built_exactly() -> None:
    recorder = Recorder(ok())
    patch = RoomPatch.of("room-test", {"IsAudioDisabled": True, "RoomName": "Ünïcode ☃"})
    async with make_client(recorder) as client:
        result = await client.update_room_info(patch)
    assert result == ApiResult(request_id="Id-ok-O-Seq-1", attempts=1, elapsed_s=0.0)
    (request,) = recorder.requests
    assert request.method == "POST"
    assert request.url.scheme == "https"
    assert request.url.host == "adminapisgp.im.qcloud.com"
    assert request.url.path == "/v4/room_engine_http_srv/update_room_info"
    params = dict(request.url.params)
    assert set(params) == {"sdkappid", "identifier", "usersig", "random", "contenttype"}
    assert params["sdkappid"] == str(APP)
    assert params["identifier"] == ADMIN
    assert params["contenttype"] == "json"
    assert 0 <= int(params["random"]) <= 2**32 - 1
    assert request.headers["content-type"].startswith("application/json")
    assert json.loads(request.content) == patch.body()
    assert "Ünïcode ☃".encode() in request.content  # UTF-8 on the wire, not \\u escapes
    check = verify_usersig(
        params["usersig"], sdkappid=APP, secret_key=KEY, identifier=ADMIN, now=int(NOW)
    )
    assert check.ok, check.detail


async def test_random_is_fresh_per_request_and_sig_is_reused() -> None:
    recorder = Recorder(ok())
    async with make_client(recorder) as client:
        for _ in range(30):
            await client.update_room_info(RoomPatch.of("r", {"IsVideoDisabled": False}))
    randoms = {r.url.params["random"] for r in recorder.requests}
    sigs = {r.url.params["usersig"] for r in recorder.requests}
    assert len(randoms) >= 29  # 30 draws from 2**32: a repeat would be astonishing
    assert len(sigs) == 1


async def test_usersig_is_resigned_well_before_expiry() -> None:
    clocks = Clocks()
    recorder = Recorder(ok())
    async with make_client(recorder, clocks) as client:
        await client.destroy_room("r")
        clocks.wall += 11 * 3600
        await client.destroy_room("r")
        clocks.wall += 2 * 3600
        await client.destroy_room("r")
    first, second, third = (decode_usersig(r.url.params["usersig"]) for r in recorder.requests)
    assert first == second
    assert third["TLS.time"] == int(NOW + 13 * 3600)
    assert first["TLS.time"] + first["TLS.expire"] > NOW + 13 * 3600  # old one still valid


async def test_base_url_trailing_slash_and_other_commands() -> None:
    recorder = Recorder(ok())
    async with make_client(recorder, base_url="http://127.0.0.1:9/") as client:
        assert client.base_url == "http://127.0.0.1:9"
        await client.create_room("new-room", RoomName="New", MaxMemberCount=10)
        await client.destroy_room("new-room")
    create, destroy = recorder.requests
    assert str(create.url).startswith("http://127.0.0.1:9/v4/room_engine_http_srv/create_room?")
    assert json.loads(create.content) == {
        "RoomInfo": {
            "RoomId": "new-room",
            "RoomType": "Conference",
            "RoomName": "New",
            "MaxMemberCount": 10,
        }
    }
    assert destroy.url.path.endswith("/destroy_room")
    assert json.loads(destroy.content) == {"RoomId": "new-room"}


# -- parsing ------------------------------------------------------------------------------------


async def test_get_room_info_parses_the_room() -> None:
    info = {
        "RoomId": "room-test",
        "RoomName": "Test",
        "RoomType": "Conference",
        "IsAudioDisabled": True,
        "IsVideoDisabled": "false",  # Tencent samples send such strings; read leniently
        "MaxMemberCount": 300,
        "TakeSeatMode": "ApplyToTake",
    }
    recorder = Recorder(ok("Id-get-O-Seq-2", Response={"RoomInfo": info}))
    async with make_client(recorder) as client:
        snap = await client.get_room_info("room-test")
    assert isinstance(snap, RoomSnapshot)
    assert snap.request_id == "Id-get-O-Seq-2"
    assert snap.room.room_name == "Test"
    assert snap.room.is_audio_disabled is True
    assert snap.room.is_video_disabled is False
    assert snap.room.take_seat_mode == "ApplyToTake"
    assert json.loads(recorder.requests[0].content) == {"RoomId": "room-test"}


@pytest.mark.parametrize(
    "response",
    [
        ok("Id-x-O-Seq-1"),  # no Response at all
        ok("Id-x-O-Seq-1", Response={"Other": 1}),
        ok("Id-x-O-Seq-1", Response={"RoomInfo": {"RoomName": "no id"}}),
    ],
)
async def test_get_room_info_without_room_is_malformed(response: httpx.Response) -> None:
    async with make_client(Recorder(response)) as client:
        with pytest.raises(MalformedResponse) as excinfo:
            await client.get_room_info("room-test")
    assert excinfo.value.request_id == "Id-x-O-Seq-1"


async def test_api_error_carries_code_info_request_id_and_hint() -> None:
    recorder = Recorder(fail(100004, "room not exist", "Id-404-O-Seq-9"))
    async with make_client(recorder) as client:
        with pytest.raises(ApiError) as excinfo:
            await client.update_room_info(RoomPatch.of("gone", {"IsAudioDisabled": True}))
    err = excinfo.value
    assert (err.code, err.info, err.request_id) == (100004, "room not exist", "Id-404-O-Seq-9")
    assert err.hint == "room does not exist or was destroyed — check the ID"
    assert err.attempts == 1
    assert "update_room_info" in str(err)
    assert len(recorder.requests) == 1


async def test_ok_status_with_nonzero_code_is_an_api_error() -> None:
    response = httpx.Response(
        200, json={"ActionStatus": "OK", "ErrorCode": 100002, "ErrorInfo": "bad", "RequestId": "i"}
    )
    async with make_client(Recorder(response)) as client:
        with pytest.raises(ApiError) as excinfo:
            await client.destroy_room("r")
    assert excinfo.value.code == 100002


@pytest.mark.parametrize(
    ("response", "request_id"),
    [
        (httpx.Response(200, text="<html>gateway</html>"), None),
        (httpx.Response(200, json=[1, 2]), None),
        (httpx.Response(200, json={"ErrorCode": 0, "RequestId": "Id-m-O-Seq-1"}), "Id-m-O-Seq-1"),
        (httpx.Response(200, json={"ActionStatus": "OK", "ErrorCode": "0"}), None),
        (
            httpx.Response(
                200, json={"ActionStatus": "FAIL", "ErrorCode": 0, "RequestId": "Id-f-O-Seq-1"}
            ),
            "Id-f-O-Seq-1",
        ),
    ],
)
async def test_malformed_answers_are_not_retried(
    response: httpx.Response, request_id: str | None
) -> None:
    recorder = Recorder(response)
    async with make_client(recorder) as client:
        with pytest.raises(MalformedResponse) as excinfo:
            await client.update_room_info(RoomPatch.of("r", {"IsAudioDisabled": True}))
    assert excinfo.value.request_id == request_id
    assert "TENCENT_API_URL" in excinfo.value.hint
    assert len(recorder.requests) == 1


async def test_http_4xx_is_a_transport_error_without_retry() -> None:
    recorder = Recorder(httpx.Response(404, text="not found"))
    async with make_client(recorder) as client:
        with pytest.raises(TransportError) as excinfo:
            await client.destroy_room("r")
    assert excinfo.value.status == 404
    assert not isinstance(excinfo.value, RequestTimeout)
    assert len(recorder.requests) == 1


# -- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(RETRYABLE_CODES))
async def test_retryable_codes_retry_then_succeed(code: int) -> None:
    recorder = Recorder(fail(code), fail(code), ok("Id-third-O-Seq-3"))
    clocks = Clocks()
    async with make_client(recorder, clocks) as client:
        result = await client.update_room_info(RoomPatch.of("r", {"IsAudioDisabled": True}))
    assert result.attempts == 3
    assert result.request_id == "Id-third-O-Seq-3"
    assert len(clocks.sleeps) == 2


@pytest.mark.parametrize("code", sorted(RETRYABLE_CODES))
async def test_retryable_codes_give_up_after_max_attempts(code: int) -> None:
    recorder = Recorder(fail(code, request_id=f"Id-{code}-O-Seq-1"))
    async with make_client(recorder) as client:
        with pytest.raises(ApiError) as excinfo:
            await client.update_room_info(RoomPatch.of("r", {"IsAudioDisabled": True}))
    assert len(recorder.requests) == 4
    assert excinfo.value.attempts == 4
    assert excinfo.value.code == code
    assert excinfo.value.request_id == f"Id-{code}-O-Seq-1"


@pytest.mark.parametrize(
    "code", [100002, 100004, 100005, 100006, 70001, 70003, 70009, 70013, 70014, 60006, 60010]
)
async def test_permanent_codes_are_never_retried(code: int) -> None:
    recorder = Recorder(fail(code))
    clocks = Clocks()
    async with make_client(recorder, clocks) as client:
        with pytest.raises(ApiError):
            await client.update_room_info(RoomPatch.of("r", {"IsAudioDisabled": True}))
    assert len(recorder.requests) == 1
    assert clocks.sleeps == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_http_5xx_is_retried(status: int) -> None:
    recorder = Recorder(httpx.Response(status, text="bad gateway"), ok())
    async with make_client(recorder) as client:
        result = await client.update_room_info(RoomPatch.of("r", {"IsAudioDisabled": True}))
    assert result.attempts == 2


async def test_http_502_gives_up_with_status() -> None:
    recorder = Recorder(httpx.Response(502, text="bad gateway"))
    async with make_client(recorder) as client:
        with pytest.raises(TransportError) as excinfo:
            await client.update_room_info(RoomPatch.of("r", {"IsAudioDisabled": True}))
    assert excinfo.value.status == 502
    assert excinfo.value.attempts == 4
    assert "502" in str(excinfo.value)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("refused"), TransportError),
        (httpx.ReadError("reset"), TransportError),
        (httpx.RemoteProtocolError("eof"), TransportError),
        (httpx.ReadTimeout("slow"), RequestTimeout),
        (httpx.ConnectTimeout("slow"), RequestTimeout),
    ],
)
async def test_network_errors_and_timeouts_retry(exc: Exception, kind: type[Exception]) -> None:
    recorder = Recorder(exc, exc, ok())
    async with make_client(recorder) as client:
        result = await client.update_room_info(RoomPatch.of("r", {"IsAudioDisabled": True}))
    assert result.attempts == 3

    recorder = Recorder(exc)
    async with make_client(recorder) as client:
        with pytest.raises(kind) as excinfo:
            await client.update_room_info(RoomPatch.of("r", {"IsAudioDisabled": True}))
    assert type(excinfo.value) is kind
    assert excinfo.value.status is None  # type: ignore[attr-defined]
    assert len(recorder.requests) == 4


async def test_errors_carry_the_last_request_id_seen() -> None:
    recorder = Recorder(
        fail(100001, request_id="Id-first-O-Seq-1"),
        fail(100001, request_id="Id-second-O-Seq-2"),
        httpx.Response(502),
        httpx.ConnectError("refused"),
    )
    async with make_client(recorder) as client:
        with pytest.raises(TransportError) as excinfo:
            await client.update_room_info(RoomPatch.of("r", {"IsAudioDisabled": True}))
    assert excinfo.value.request_id == "Id-second-O-Seq-2"
    assert excinfo.value.attempts == 4


async def test_backoff_is_exponential_jittered_and_bounded() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=0.1, max_delay=0.5, total_budget_s=100)
    clocks = Clocks()
    async with make_client(Recorder(fail(100001)), clocks, retry=policy) as client:
        with pytest.raises(ApiError):
            await client.update_room_info(RoomPatch.of("r", {"IsAudioDisabled": True}))
    assert len(clocks.sleeps) == 5
    for retry, pause in enumerate(clocks.sleeps, start=1):
        ceiling = min(0.5, 0.1 * 2 ** (retry - 1))
        assert ceiling / 2 <= pause <= ceiling
    assert [policy.ceiling(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_backoff_jitter_spreads_within_bounds() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(3)
    draws = [policy.backoff(3, rng) for _ in range(500)]
    assert min(draws) >= 2.0
    assert max(draws) <= 4.0
    assert max(draws) - min(draws) > 1.5  # actually jittered, not a constant


async def test_total_time_budget_stops_retrying() -> None:
    policy = RetryPolicy(max_attempts=50, base_delay=1.0, max_delay=1.0, total_budget_s=3.0)
    clocks = Clocks()
    recorder = Recorder(fail(60007))
    async with make_client(recorder, clocks, retry=policy) as client:
        with pytest.raises(ApiError) as excinfo:
            await client.destroy_room("r")
    assert sum(clocks.sleeps) <= 3.0
    assert 3 <= len(recorder.requests) <= 7
    assert excinfo.value.attempts == len(recorder.requests)


async def test_retry_policy_validates() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="base_delay"):
        RetryPolicy(base_delay=2, max_delay=1)
    with pytest.raises(ValueError, match="total_budget_s"):
        RetryPolicy(total_budget_s=0)


@pytest.mark.parametrize(
    ("answer", "retried"),
    [
        (fail(100001), False),  # may have created the room: do not send it twice
        (httpx.Response(502), False),
        (httpx.ReadTimeout("slow"), False),
        (fail(60007), True),  # refused before processing
        (httpx.ConnectError("refused"), True),  # never reached the server
    ],
)
async def test_create_room_only_retries_when_nothing_happened(
    answer: httpx.Response | Exception, retried: bool
) -> None:
    recorder = Recorder(answer, ok())
    async with make_client(recorder) as client:
        if retried:
            assert (await client.create_room("new")).attempts == 2
        else:
            with pytest.raises(RoomEngineError):
                await client.create_room("new")
    assert len(recorder.requests) == (2 if retried else 1)


async def test_every_attempt_waits_on_the_rate_budget() -> None:
    class CountingBudget(RateBudget):
        acquired: ClassVar[list[str]] = []

        async def acquire(self, api: str) -> None:
            CountingBudget.acquired.append(api)
            await super().acquire(api)

    budget = CountingBudget(200, burst=200)
    recorder = Recorder(fail(100001), httpx.Response(502), ok())
    async with make_client(recorder, budget=budget) as client:
        await client.update_room_info(RoomPatch.of("r", {"IsAudioDisabled": True}))
    assert CountingBudget.acquired == ["update_room_info"] * 3


# -- secrets stay secret ---------------------------------------------------------------------


async def test_secrets_never_reach_errors_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sigs: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sigs.append(request.url.params["usersig"])
        # httpx's real exceptions quote the URL like this; ours must not repeat it.
        raise httpx.ConnectError(f"connection refused for {request.url} key={KEY}", request=request)

    recorder = Recorder(ok(), refuse)
    async with make_client(recorder) as client:
        await client.destroy_room("r")  # a success: httpx logs the full URL at INFO
        with pytest.raises(TransportError) as excinfo:
            await client.destroy_room("r")
        client_repr = repr(client)
    err = excinfo.value
    texts = [str(err), repr(err), err.hint, client_repr, caplog.text]
    texts += [record.getMessage() for record in caplog.records]
    assert "usersig=***" in str(err)
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)
    for text in texts:
        # httpx percent-encodes the sig's `*` in URLs, so look for any usersig value at all.
        assert set(re.findall(r"(?i)usersig=([^&\s\"']*)", text)) <= {"***"}, text
        assert KEY not in text
        for sig in sigs:
            assert sig not in text
            assert sig[:16] not in text
    assert err.__cause__ is None
    assert err.__context__ is None


async def test_error_info_from_the_server_is_scrubbed_of_the_key() -> None:
    recorder = Recorder(fail(70009, f"bad key {KEY}"))
    async with make_client(recorder) as client:
        with pytest.raises(ApiError) as excinfo:
            await client.destroy_room("r")
    assert KEY not in str(excinfo.value)
    assert KEY not in excinfo.value.info


def test_client_repr_names_target_not_secrets() -> None:
    client = make_client(Recorder(ok()))
    assert repr(client) == (
        f"RoomEngineClient(base_url='{BASE}', sdkappid={APP}, admin_id='{ADMIN}')"
    )
    assert (client.sdkappid, client.admin_id) == (APP, ADMIN)


def test_empty_secret_key_is_refused() -> None:
    with pytest.raises(ValueError, match="secret_key"):
        make_client(Recorder(ok()), secret_key="")


# -- from_settings ----------------------------------------------------------------------------


def test_from_settings_uses_api_url_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENT_SDKAPPID", str(APP))
    monkeypatch.setenv("TENCENT_SECRET_KEY", KEY)
    monkeypatch.setenv("TENCENT_API_URL", "http://127.0.0.1:9000/")
    monkeypatch.setenv("ROOMBOT_RATE_LIMIT", "37")
    client = RoomEngineClient.from_settings(load_settings(), timeout_s=9.0)
    assert client.base_url == "http://127.0.0.1:9000"
    assert client.sdkappid == APP
    assert client.admin_id == "administrator"
    assert client._budget is process_budget(37)  # shared by every client of the process


def test_from_settings_defaults_to_the_region_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENT_SDKAPPID", str(APP))
    monkeypatch.setenv("TENCENT_SECRET_KEY", KEY)
    monkeypatch.setenv("TENCENT_REGION", "germany")
    monkeypatch.setenv("TENCENT_ADMIN_ID", "ops_admin")
    client = RoomEngineClient.from_settings(load_settings())
    assert client.base_url == "https://adminapiger.im.qcloud.com"
    assert client.admin_id == "ops_admin"


def test_from_settings_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENT_SDKAPPID", str(APP))
    with pytest.raises(ConfigError, match="TENCENT_SECRET_KEY"):
        RoomEngineClient.from_settings(load_settings())


async def test_usersig_echoed_by_tencent_never_reaches_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """#12.14: Tencent may quote the request in ErrorInfo, UserSig and all, without `usersig=`:
    the error (what Slack, the audit trail and the log get) carries none of it."""
    from bot.failures import describe_failure
    from bot.redact import forget_all

    forget_all()  # only the client's own redaction stands between the sig and the message
    sigs: list[str] = []

    def echo(request: httpx.Request) -> httpx.Response:
        sig = request.url.params["usersig"]
        sigs.append(sig)
        return fail(70003, f"UserSig {sig} verification failed")

    async with make_client(Recorder(echo)) as client:
        with pytest.raises(ApiError) as excinfo:
            await client.destroy_room("r")
    err = excinfo.value
    failure = describe_failure(err, room_id="r")
    for text in (str(err), repr(err), err.info, failure.message, failure.hint, caplog.text):
        for sig in sigs:
            assert sig not in text
            assert sig[:40] not in text
    assert err.code == 70003
    assert "verification failed" in err.info
