"""`Alert.RequestOverLimit` (Tencent: an API passed 80% of its limit) through
`CallbackProcessor`: roombot halves its own budget for the API it names for a minute, alerts the
first warning only, counts every one, and says so when it cannot slow down. (Across replicas on
PostgreSQL: `tests/bot/audit/test_budget.py` and the end-to-end test in
`tests/e2e/test_over_limit.py`.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot import metrics, wording
from bot.budget import Halving, RateBudget, RateBudgetUnavailable
from bot.callbacks import CallbackInvalid, CallbackProcessor, Delivery, Handling, parse_callback
from bot.models import CallbackCommand
from bot.wording import CORE
from testkit.clock import VirtualTime
from tests.bot.corekit import ADMIN, Core

ALERT = "Alert.RequestOverLimit"


def warning(command: str = "update_room_info", **fields: Any) -> Delivery:
    """The body Tencent documents (its sample names a Chat API), for `command`."""
    body = {
        "CallbackCommand": ALERT,
        "ServiceName": "room_engine_http_srv",
        "Command": command,
        "Request": 170,
        "Limit": 200,
        **fields,
    }
    return parse_callback({"CallbackCommand": ALERT}, json.dumps(body).encode())


async def test_a_warning_halves_that_api_for_a_minute_and_is_alerted_once(core: Core) -> None:
    time = VirtualTime()
    budget = RateBudget(20, clock=time.clock, sleep=time.sleep)
    metrics.watch_rate_limits(budget)
    callbacks = CallbackProcessor(core.store, admin_id=ADMIN, clock=core.clock, limits=budget)
    counted = metrics.value("roombot_rate_over_limit_alerts_total", api="update_room_info")
    gauge = {"api": "update_room_info"}
    assert metrics.value("roombot_rate_budget_limit", **gauge) == 20

    first = await callbacks.handle(warning())
    assert first.handling is Handling.OVER_LIMIT
    assert first.change is None
    alert = first.warning
    assert alert is not None
    assert (alert.api, alert.service, alert.observed, alert.limit) == (
        "update_room_info",
        "room_engine_http_srv",
        170,
        200,
    )
    assert (alert.budget, alert.until_s) == (10, 60)
    assert budget.limit("update_room_info") == 10
    assert budget.limit("get_room_info") == 20  # only the API named
    assert metrics.value("roombot_rate_budget_limit", **gauge) == 10
    assert wording.rate_warning_line(CORE, alert) == (
        "⚠️ Tencent warns that this app's calls to `update_room_info` passed 80% of its limit "
        "(170 calls/s against a limit of 200): roombot halved its own budget for "
        "`update_room_info` to 10 calls/s, on every replica, for 60 s (the app's other callers "
        "share the limit)"
    )

    # Tencent warns again while the budget is halved: extended, counted, not alerted again.
    time.now += 30
    again = await callbacks.handle(warning())
    assert (again.handling, again.warning) == (Handling.OVER_LIMIT, None)
    time.now += 59
    assert budget.limit("update_room_info") == 10
    time.now += 2
    assert budget.limit("update_room_info") == 20
    assert metrics.value("roombot_rate_budget_limit", **gauge) == 20
    after = metrics.value("roombot_rate_over_limit_alerts_total", api="update_room_info")
    assert after - counted == 2
    # Once the halving is over, the next warning starts (and alerts) a new one.
    assert (await callbacks.handle(warning())).warning is not None


async def test_an_api_roombot_does_not_call_is_counted_not_slowed_nor_alerted(
    core: Core,
) -> None:
    budget = RateBudget(20)
    callbacks = CallbackProcessor(core.store, admin_id=ADMIN, limits=budget)
    counted = metrics.value("roombot_rate_over_limit_alerts_total", api="other")
    handled = await callbacks.handle(warning("batchsendmsg", ServiceName="openim"))
    assert (handled.handling, handled.warning) == (Handling.OVER_LIMIT, None)
    assert budget.limit("batchsendmsg") == 20
    assert metrics.value("roombot_rate_over_limit_alerts_total", api="other") == counted + 1
    assert await core.store.query() == []  # nothing for the audit trail


class Unreachable:
    """A shared budget whose database is down."""

    async def halve(self, api: str, seconds: float = 60.0) -> Halving:
        raise RateBudgetUnavailable("the shared rate budget's database: connection refused")

    def limit(self, api: str) -> float:
        return 20.0


async def test_a_budget_that_cannot_be_halved_is_alerted_with_why(core: Core) -> None:
    callbacks = CallbackProcessor(core.store, admin_id=ADMIN, limits=Unreachable())
    handled = await callbacks.handle(warning())
    assert handled.warning is not None
    assert handled.warning.budget is None
    line = wording.rate_warning_line(CORE, handled.warning)
    assert line.endswith(
        "(roombot could not slow down: the shared rate budget's database: connection refused)"
    )


def test_the_warning_is_read_leniently_and_needs_an_api() -> None:
    delivery = warning(Request="340", Limit="200")
    event = delivery.event
    assert event.command is CallbackCommand.REQUEST_OVER_LIMIT
    assert (event.room_id, event.room_level) == ("", False)
    assert event.over_limit is not None
    assert (event.over_limit.observed, event.over_limit.limit) == (340, 200)
    for bad in ({"Command": None}, {"Command": "two words"}, {"Command": "x" * 65}):
        with pytest.raises(CallbackInvalid, match="Command"):
            warning(**bad)
    assert warning(ServiceName="\x1b[31m").event.over_limit.service is None  # type: ignore[union-attr]
