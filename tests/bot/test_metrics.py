"""`bot.metrics`: closed label sets, and what the core counts (requests, Room Engine calls,
retries, rate-budget waits, member actions, audit failures), read as before/after deltas of
the process registry."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from bot import metrics
from bot.models import RoomPatch
from bot.outcomes import Approved
from bot.presenter import Presenter
from bot.tencent.errors import (
    ApiError,
    MalformedResponse,
    NotSent,
    RequestTimeout,
    TransportError,
    metric_code,
)
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import MALLORY, BrokenStore, Core, actor, plan_for
from tests.bot.test_presenter import RecordingRenderer


class Delta:
    """A series' value now, to compare with later."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels
        self.start = metrics.value(name, **labels)

    @property
    def change(self) -> float:
        return metrics.value(self.name, **self.labels) - self.start


def test_labels_outside_their_sets_become_other() -> None:
    before = Delta("roombot_requests_total", source="other", verb="other", outcome="other")
    metrics.count_request("carrier-pigeon", "no-such-verb-" + "x" * 50, "exploded")
    assert before.change == 1
    slack = Delta("roombot_slack_api_errors_total", method="other", error="other")
    metrics.count_slack_error("U0ALICE01", "room-test-42")  # an ID must never become a label
    assert slack.change == 1
    exposition = generate_latest(metrics.REGISTRY).decode()
    assert "U0ALICE01" not in exposition
    assert "room-test-42" not in exposition


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (None, "0"),
        (ApiError(100004, "no room"), "100004"),
        (ApiError(123456789, "??"), "other"),
        (RequestTimeout("t"), "timeout"),
        (TransportError("x"), "transport"),
        (TransportError("x", status=502), "http_5xx"),
        (TransportError("x", status=404), "http_4xx"),
        (MalformedResponse("m"), "malformed"),
        (NotSent("n"), "not_sent"),
    ],
)
def test_tencent_code_labels(error: BaseException | None, code: str) -> None:
    assert metric_code(error) == code


async def test_room_engine_calls_are_counted_by_command_and_code(core: Core) -> None:
    ok = Delta("roombot_tencent_calls_total", command="update_room_info", code="0")
    missing = Delta("roombot_tencent_calls_total", command="update_room_info", code="100004")
    attempts = Delta("roombot_tencent_request_duration_seconds_count", command="update_room_info")
    waits = Delta("roombot_rate_budget_wait_seconds_count")
    await core.client.update_room_info(RoomPatch.of("room-test", {"IsAudioDisabled": True}))
    with pytest.raises(ApiError):
        await core.client.update_room_info(RoomPatch.of("nowhere", {"IsAudioDisabled": True}))
    assert (ok.change, missing.change, attempts.change, waits.change) == (1, 1, 2, 2)


async def test_retries_are_counted(core: Core) -> None:
    core.emulator.script("update_room_info", [100001, "ok"])
    retries = Delta("roombot_tencent_retries_total", command="update_room_info")
    calls = Delta("roombot_tencent_calls_total", command="update_room_info", code="0")
    await core.client.update_room_info(RoomPatch.of("room-test", {"IsAudioDisabled": True}))
    assert (retries.change, calls.change) == (1, 1)


async def test_a_run_counts_the_request_and_each_member_action(core: Core) -> None:
    core.emulator.add_room("room-m", MemberList=["u1", "u2"])
    request = Delta("roombot_requests_total", source="slash", verb="kick", outcome="partial")
    kicked = Delta("roombot_member_actions_total", verb="kick", outcome="ok")
    failed = Delta("roombot_member_actions_total", verb="kick", outcome="failed")
    run = await core.runner().run(plan_for("kick room-m u1 u2 ghost"))
    assert [r.ok for r in run.results] == [True, True, False]
    assert (request.change, kicked.change, failed.change) == (1, 2, 1)


async def test_a_run_of_room_verbs_counts_no_member_action(core: Core) -> None:
    ok = Delta("roombot_requests_total", source="slash", verb="mute-all", outcome="ok")
    members = [
        Delta("roombot_member_actions_total", verb=v, outcome="ok") for v in metrics.MEMBER_VERBS
    ]
    await core.runner().run(plan_for("mute-all room-test room-2"))
    assert ok.change == 1
    assert [m.change for m in members] == [0, 0, 0]


async def test_audit_write_failures_and_a_refused_request_are_counted(
    make_core: CoreFactory,
) -> None:
    core = await make_core(store_class=BrokenStore)
    assert isinstance(core.store, BrokenStore)
    core.store.fail_begin = True
    failures = Delta("roombot_audit_write_failures_total", operation="begin")
    refused = Delta("roombot_requests_total", source="slash", verb="mute-all", outcome="refused")
    await core.service.run(plan_for("mute-all room-test"))
    assert failures.change == 4  # the first write and its three retries
    assert refused.change == 1


async def test_answers_given_at_once_are_counted_by_outcome(core: Core) -> None:
    presenter = Presenter(core.service, RecordingRenderer())
    cases = [
        ("frobnicate room-test", actor(), "unknown", "invalid"),
        ("mute-all", actor(), "mute-all", "invalid"),
        ("mute-all room-test", actor(MALLORY), "mute-all", "denied"),
        ("help", actor(), "help", "help"),
        ("mute-all room-test --dry-run", actor(), "mute-all", "dry_run"),
        ("lockdown room-test", actor(), "lockdown", "confirm"),
    ]
    for text, who, verb, outcome in cases:
        delta = Delta("roombot_requests_total", source="slash", verb=verb, outcome=outcome)
        await presenter.answer(text, who)
        assert delta.change == 1, (text, outcome)


async def test_reads_are_counted(core: Core) -> None:
    presenter = Presenter(core.service, RecordingRenderer())
    ok = Delta("roombot_requests_total", source="slash", verb="show", outcome="ok")
    failed = Delta("roombot_requests_total", source="slash", verb="show", outcome="failed")
    for text in ("show room-test", "show nowhere"):
        approved = await presenter.answer(text, actor())
        assert isinstance(approved, Approved)
        await presenter.read(approved)
    assert (ok.change, failed.change) == (1, 1)


def test_callback_and_refusal_counters_exist_for_other_modules() -> None:
    callbacks = Delta(
        "roombot_callbacks_total", command="Room.CallbackAfterUpdateRoomInfo", outcome="recorded"
    )
    metrics.count_callback("Room.CallbackAfterUpdateRoomInfo", "recorded")
    refused = Delta("roombot_http_refused_total", reason="bad_signature")
    metrics.count_refused("bad_signature")
    assert (callbacks.change, refused.change) == (1, 1)
