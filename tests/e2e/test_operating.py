"""Operating a real `roombot serve` (DESIGN §2.9, issue #13): the probes and metrics in both
modes, readiness following Room Engine, json logs, malformed and refused requests (#12.10,
#12.11), and every start-up failure as one line with the right exit status (#12.14 included)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bot.tencent.emulator import RoomEngineEmulator
from testkit.slack_payloads import form_body, sign, slash_command
from tests.e2e.serve_proc import Served, configured_fakes, run_serve, serve_process
from tests.e2e.stack import ALICE, BOT_TOKEN, SDKAPPID, SECRET_KEY, SIGNING_SECRET

FORM = "application/x-www-form-urlencoded"
PARTS = {"database", "slack", "tencent"}


async def _metric(served: Served, name: str, **labels: str) -> float:
    """One sample of /metrics (0 when the series does not exist)."""
    status, text = await served.get("/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def _until(predicate: object, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


# -- the probes, metrics and readiness, in both modes -------------------------------------------


async def test_http_mode_probes_metrics_and_readiness_that_follows_room_engine(
    tmp_path: Path,
) -> None:
    async with serve_process(tmp_path) as served:
        status, text = await served.get("/healthz")
        assert status == 200
        health = json.loads(text)
        assert health["ok"] is True
        assert health["in_flight"] == 0
        ready = await served.wait_ready(200)
        assert set(ready["parts"]) == PARTS
        assert ready["failing"] == []

        assert (await served.slash("mute-all room-test"))[0] == 200
        assert (await served.slash("unmute-all no-such-room"))[0] == 200
        await _until(lambda: len(served.slack.calls_to("chat.update")) >= 2)
        assert (
            await _metric(
                served, "roombot_requests_total", source="slash", verb="mute-all", outcome="ok"
            )
            == 1
        )
        assert (
            await _metric(
                served,
                "roombot_requests_total",
                source="slash",
                verb="unmute-all",
                outcome="failed",
            )
            == 1
        )
        assert (
            await _metric(
                served, "roombot_tencent_calls_total", command="update_room_info", code="100004"
            )
            >= 1
        )
        assert await _metric(served, "roombot_ready", part="tencent") == 1
        # The job ends just after its last Slack call (it then records the request reported):
        # waited for, not read at once (a loaded machine read 1 here).
        deadline = time.monotonic() + 10
        while await _metric(served, "roombot_work_in_flight") != 0:
            assert time.monotonic() < deadline, "work still in flight after 10 s"
            await asyncio.sleep(0.05)

        port = int(served.emulator.base_url.rsplit(":", 1)[1])
        await served.emulator.stop()
        started = time.monotonic()
        down = await served.wait_ready(503, timeout=10)
        assert time.monotonic() - started < 10
        [failing] = down["failing"]
        assert failing.startswith("tencent: connection refused")
        assert down["parts"]["database"]["ok"]
        assert down["parts"]["slack"]["ok"]
        for secret in (SECRET_KEY, SIGNING_SECRET, BOT_TOKEN):
            assert secret not in json.dumps(down)

        served.emulator = RoomEngineEmulator(
            sdkappid=SDKAPPID, secret_key=SECRET_KEY, rooms=["room-test"]
        )
        await served.emulator.start(port=port)
        await served.wait_ready(200, timeout=10)
        assert await served.stop() == 0
    _no_traceback(served.output.log)
    assert "not ready: tencent: connection refused" in served.output.log
    assert "ready again: tencent" in served.output.log


async def test_scrapes_alone_keep_the_ready_gauge_true(tmp_path: Path) -> None:
    """Kubernetes probes ask /healthz and Prometheus scrapes /metrics; nothing asks /readyz.
    The alert on `roombot_ready` must still see Room Engine go away: it kept its start-up
    value while nobody asked /readyz."""
    async with serve_process(tmp_path) as served:
        assert await _metric(served, "roombot_ready", part="tencent") == 1
        await served.emulator.stop()
        deadline = time.monotonic() + 15
        while await _metric(served, "roombot_ready", part="tencent") != 0:
            assert time.monotonic() < deadline, "roombot_ready kept its start-up value"
            await asyncio.sleep(0.5)
        assert await _metric(served, "roombot_ready", part="database") == 1
        assert await served.stop() == 0
    _no_traceback(served.output.log)


async def test_socket_mode_listens_on_the_port_for_probes_and_metrics(tmp_path: Path) -> None:
    async with serve_process(tmp_path, socket_mode=True) as served:
        assert served.socket_mode is not None
        assert (await served.get("/healthz"))[0] == 200
        ready = await served.wait_ready(200)
        assert set(ready["parts"]) == PARTS
        # Socket Mode serves only the operational endpoints.
        assert (await served.post(b"a=b", {"Content-Type": FORM}))[0] == 404

        await served.socket_mode.wait_connected()
        envelope_id = await served.socket_mode.send_envelope(
            type="slash_commands",
            payload=slash_command(
                "mute-all room-test", user_id=ALICE, response_url=served.slack.response_url()
            ),
        )
        await served.socket_mode.wait_for_ack(envelope_id)
        await _until(lambda: served.emulator.rooms["room-test"]["IsAudioDisabled"] is True)
        await _until(lambda: len(served.slack.calls_to("chat.update")) >= 1)
        assert (
            await _metric(
                served, "roombot_requests_total", source="slash", verb="mute-all", outcome="ok"
            )
            == 1
        )
        assert (
            await _metric(
                served, "roombot_tencent_calls_total", command="update_room_info", code="0"
            )
            == 1
        )

        await served.emulator.stop()
        down = await served.wait_ready(503, timeout=10)
        assert down["failing"][0].startswith("tencent: connection refused")
        assert await served.stop() == 0
    _no_traceback(served.output.log)


async def test_json_mode_writes_nothing_but_json_lines(tmp_path: Path) -> None:
    async with serve_process(
        tmp_path, ROOMBOT_LOG_FORMAT="json", ROOMBOT_LOG_LEVEL="DEBUG"
    ) as served:
        assert (await served.slash("mute-all room-test"))[0] == 200
        assert (await served.slash("mute-all no-such-room"))[0] == 200
        assert (await served.slash("frobnicate"))[0] == 200
        body = b"payload=notjson"
        assert (await served.post(body, {"Content-Type": FORM, **sign(body, SIGNING_SECRET)}))[
            0
        ] == 400
        assert (await served.post(b"x", {"Content-Type": FORM}))[0] == 401
        await _until(lambda: len(served.slack.calls_to("chat.update")) >= 2)
        await served.emulator.stop()
        await served.wait_ready(503)
        assert await served.stop() == 0
    lines = served.output.stdout + served.output.stderr
    assert len(lines) >= 4
    for line in lines:
        record = json.loads(line)  # every line, stdout and stderr, is one JSON object
        assert {"time", "level", "logger", "message"} <= set(record)
    loggers = {json.loads(line)["logger"] for line in served.output.stderr}
    assert "handlers.ingress" in loggers
    assert "bot.readiness" in loggers


# -- malformed and refused requests (#12.10, #12.11) --------------------------------------------


async def test_malformed_requests_get_a_4xx_and_one_short_line_never_a_traceback(
    tmp_path: Path,
) -> None:
    """#12.10: each of these was an HTTP 500 with an ERROR traceback per request."""
    now = str(int(time.time()))
    unsigned = {"X-Slack-Signature": "v0=" + "0" * 64}
    cases: list[tuple[bytes, dict[str, str], int]] = [
        (b"a=b", {"Content-Type": FORM, "X-Slack-Request-Timestamp": "abc", **unsigned}, 401),
        (b"a=b", {"Content-Type": FORM, "X-Slack-Request-Timestamp": "9" * 400, **unsigned}, 401),
        (b"\xff\xfe", {"Content-Type": FORM, "X-Slack-Request-Timestamp": now, **unsigned}, 401),
        (b"\xff\xfe", {"Content-Type": FORM, **sign(b"\xff\xfe", SIGNING_SECRET)}, 400),
        (
            b"payload=notjson",
            {"Content-Type": FORM, **sign(b"payload=notjson", SIGNING_SECRET)},
            400,
        ),
        (b"[1,2]", {"Content-Type": "application/json", **sign(b"[1,2]", SIGNING_SECRET)}, 400),
    ]
    async with serve_process(tmp_path) as served:
        for body, headers, status in cases:
            answer, text = await served.post(body, headers)
            assert answer == status, (body, text)
            assert len(text) < 100
        assert (await served.slash("mute-all room-test"))[0] == 200  # still serving
        await _until(lambda: len(served.slack.calls_to("chat.update")) >= 1)
        assert await _metric(served, "roombot_http_refused_total", reason="bad_timestamp") == 2
        assert await _metric(served, "roombot_http_refused_total", reason="bad_json") == 2
        assert await served.stop() == 0
    log = served.output.log
    _no_traceback(log)
    assert " ERROR " not in log
    refused = [line for line in served.output.stderr if "refused a request" in line]
    assert 1 <= len(refused) <= len(cases)
    assert all(len(line) < 250 for line in refused)


async def test_a_refused_request_is_never_logged_with_its_body(tmp_path: Path) -> None:
    """#12.11: a stale request was logged at INFO with its whole body (legacy token,
    response_url, user name). Not at DEBUG either."""
    body = form_body(
        slash_command(
            "mute-all room-test",
            user_id=ALICE,
            response_url="https://hooks.slack.com/commands/T0/1/SECRETRESPONSEPATH",
            token="LEGACYVERIFICATIONTOKEN",
            user_name="alice.sensitive-name",
        )
    )
    stale = {"Content-Type": FORM, **sign(body, SIGNING_SECRET, int(time.time()) - 3600)}
    async with serve_process(tmp_path, ROOMBOT_LOG_LEVEL="DEBUG") as served:
        assert (await served.post(body, stale))[0] == 401
        bad_signature = {"Content-Type": FORM, **sign(body, "another-secret")}
        assert (await served.post(body, bad_signature))[0] == 401
        fresh = {"Content-Type": FORM, **sign(body, SIGNING_SECRET)}
        assert (await served.post(body, fresh))[0] == 200
        await _until(lambda: len(served.slack.calls_to("chat.update")) >= 1)
        assert await served.stop() == 0
    log = served.output.log
    assert re.search(r"HTTP 401: timestamp 36\d\d s old", log), log
    for secret in ("LEGACYVERIFICATIONTOKEN", "SECRETRESPONSEPATH", "sensitive-name"):
        assert secret not in log
    _no_traceback(log)


# -- start-up: fail early and completely ---------------------------------------------------------


async def test_every_configuration_problem_at_once_one_line_each_no_secret(
    tmp_path: Path,
) -> None:
    """And #12.14: secrets pasted into other variables are not printed."""
    env = {
        "TENCENT_SDKAPPID": SECRET_KEY,
        "ROOMBOT_ALLOWED_USERS": BOT_TOKEN,
        "TENCENT_REGION": "mars",
        "ROOMBOT_LOG_LEVEL": "chatty",
        "PORT": "abc",
    }
    code, out, err = await run_serve(tmp_path, "--http", env=env)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    named = [line.split(":", 2)[1].strip().split(" ")[0] for line in lines]
    assert sorted(named) == sorted(
        [
            "TENCENT_SDKAPPID",
            "TENCENT_REGION",
            "ROOMBOT_ALLOWED_USERS",
            "ROOMBOT_LOG_LEVEL",
            "SLACK_BOT_TOKEN",
            "SLACK_SIGNING_SECRET",
            "TENCENT_SECRET_KEY",
            "PORT",
        ]
    )
    assert all(line.startswith("roombot serve: ") for line in lines)
    for secret in (SECRET_KEY, BOT_TOKEN, BOT_TOKEN.removeprefix("xoxb-")):
        assert secret not in err
    _no_traceback(err)


async def test_problems_are_json_lines_in_json_mode(tmp_path: Path) -> None:
    code, _out, err = await run_serve(tmp_path, "--http", env={"ROOMBOT_LOG_FORMAT": "json"})
    assert code == 2
    records = [json.loads(line) for line in err.strip().splitlines()]
    assert len(records) == 4
    assert all(r["level"] == "ERROR" and "is required" in r["message"] for r in records)


async def test_a_revoked_bot_token_stops_start_up_with_one_line(tmp_path: Path) -> None:
    slack, emulator, env = await configured_fakes(tmp_path)
    slack.fail("auth.test", "token_revoked", times=10)
    try:
        code, out, err = await run_serve(tmp_path, "--http", "--port", "0", env=env)
    finally:
        await slack.stop()
        await emulator.stop()
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith("roombot serve: Slack rejected SLACK_BOT_TOKEN (token_revoked)")
    assert BOT_TOKEN not in err
    assert out == ""


async def test_an_unknown_bot_token_stops_start_up_too(tmp_path: Path) -> None:
    slack, emulator, env = await configured_fakes(tmp_path, bot_token="xoxb-the-real-one")
    try:
        code, _out, err = await run_serve(tmp_path, "--http", "--port", "0", env=env)
    finally:
        await slack.stop()
        await emulator.stop()
    assert code == 2
    [line] = err.strip().splitlines()
    assert "SLACK_BOT_TOKEN (invalid_auth)" in line


async def test_slack_out_of_reach_at_start_up_is_exit_1(tmp_path: Path) -> None:
    slack, emulator, env = await configured_fakes(tmp_path)
    await slack.stop()  # nobody answers at SLACK_API_URL any more
    try:
        code, _out, err = await run_serve(tmp_path, "--http", "--port", "0", env=env)
    finally:
        await emulator.stop()
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith("roombot serve: cannot check SLACK_BOT_TOKEN: cannot reach")
    _no_traceback(err)


async def test_an_audit_database_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    slack, emulator, env = await configured_fakes(tmp_path)
    (tmp_path / "a-directory").mkdir()
    env["ROOMBOT_AUDIT_DB"] = str(tmp_path / "a-directory")
    try:
        code, _out, err = await run_serve(tmp_path, "--http", "--port", "0", env=env)
    finally:
        await slack.stop()
        await emulator.stop()
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith("roombot serve: ROOMBOT_AUDIT_DB: cannot open the audit database")
    _no_traceback(err)


async def test_port_problems_are_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "TENCENT_SDKAPPID": str(SDKAPPID),
        "TENCENT_SECRET_KEY": SECRET_KEY,
        "ROOMBOT_AUDIT_DB": str(tmp_path / "audit.sqlite3"),
    }
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        results = await asyncio.gather(
            run_serve(tmp_path, "--http", "--host", "127.0.0.1", "--port", str(port), env=env),
            run_serve(tmp_path, "--http", "--port", "70000", env=env),
            run_serve(tmp_path, "--http", env={**env, "PORT": "abc"}),
            run_serve(tmp_path, "--http", "--host", "no-such-host.invalid", "--port", "0", env=env),
        )
    expected = [
        f"roombot serve: --port {port}: 127.0.0.1:{port} is already in use",
        "roombot serve: --port: must be a port number from 0 to 65535, got '70000'",
        "roombot serve: PORT: must be a port number from 0 to 65535, got 'abc'",
        "roombot serve: --host: cannot listen on 'no-such-host.invalid'",
    ]
    for (code, out, err), start in zip(results, expected, strict=True):
        assert code == 2, err
        assert out == ""
        [line] = err.strip().splitlines()
        assert line.startswith(start), line


async def test_without_port_the_port_comes_from_the_port_variable(tmp_path: Path) -> None:
    async with serve_process(tmp_path, port_from_env=True) as served:
        assert (await served.get("/healthz"))[0] == 200
        assert await served.stop() == 0


async def test_a_refused_app_token_stops_socket_mode_start_up_with_one_line(
    tmp_path: Path,
) -> None:
    slack, emulator, env = await configured_fakes(tmp_path, app_token="xapp-1-the-right-one")
    env.pop("SLACK_SIGNING_SECRET")
    env["SLACK_APP_TOKEN"] = "xapp-1-a-wrong-one"
    try:
        code, out, err = await run_serve(tmp_path, "--port", "0", env=env, timeout=30)
    finally:
        await slack.stop()
        await emulator.stop()
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith("roombot serve: SLACK_APP_TOKEN: Slack refused to open a Socket Mode")
    assert "(invalid_auth)" in line
    assert "xapp-1-a-wrong-one" not in err
    assert out == ""


async def test_socket_mode_serves_room_engine_callbacks_on_its_port(tmp_path: Path) -> None:
    """#15: `POST /tencent/callback` in both modes — here Socket Mode's operational port."""
    token = "socket-mode-callback-token-0123"
    async with serve_process(tmp_path, socket_mode=True, ROOMBOT_CALLBACK_TOKEN=token) as served:
        query = (
            f"?token={token}&SdkAppid={SDKAPPID}&CallbackCommand=Room.CallbackAfterMemberEnter"
            "&contenttype=json&ClientIP=203.0.113.9&OptPlatform=Web"
        )
        body = json.dumps(
            {
                "CallbackCommand": "Room.CallbackAfterMemberEnter",
                "Operator_Account": "u1",
                "RoomId": "room-test",
                "MemberCount": 1,
                "Type": "Enter",
                "MemberList_Account": ["u1"],
                "EventTime": 1_700_000_000_000,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        status, answer = await served.post(body, headers, path="/tencent/callback" + query)
        assert status == 200
        assert json.loads(answer) == {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
        refused, _ = await served.post(body, headers, path="/tencent/callback?token=wrong")
        assert refused == 401
        assert await served.stop() == 0
    assert token not in served.output.log
