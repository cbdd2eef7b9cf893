"""What an adapter supplies so the core can carry a request through its life: a `Delivery`.

The core owns the request (`bot.requests.life`); an adapter only says how to show it to people.
A delivery is made for one request, and can be made again from its reply address (`address()`,
JSON the request record keeps), so any replica can report any request: the one that received
it, a survivor that took it over, or the loop running it later.

The order the core calls it in: `start` (the request is under way: Slack posts its parent
message), `progress` (at most every `progress_interval` seconds), `finish` (the outcome), or,
for a request whose replica stopped, `takeover` (what a survivor found). `unexpected` tells the
requester that something broke, with the error id that is also in the log.

`Deliveries` holds the adapters one process can deliver for (`register`), and rebuilds a
delivery from an address (`for_address`). An address no registered adapter claims is reported
by logging it: never silence.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bot.outcomes import Plan, Progress, RunResult
from bot.requests.takeover import TakeoverReport

log = logging.getLogger(__name__)

#: The address key that names the adapter.
ADAPTER: str = "adapter"
#: Adapters any process can report by logging (requests of a console session, of no adapter, or
#: recorded by an older version): a replica takes them over too, so none stays silent.
LOGGED_ADAPTERS: tuple[str, ...] = ("console", "log", "unknown")


class Delivery(Protocol):
    """How one adapter reports one request (see the module docstring)."""

    #: Seconds between two `progress` calls at most (the core coalesces in between).
    progress_interval: float
    #: Set by the core before `start`: call it right before each outside action (a message
    #: posted or edited); it raises `LeaseLost` once the request is no longer this replica's,
    #: and the adapter must then post nothing more (let the exception through).
    guard: Callable[[], None] | None

    def address(self) -> dict[str, Any]:
        """Where this request is reported, as JSON-ready data with an `"adapter"` key: what a
        replica needs to rebuild this delivery (`Deliveries.for_address`). It may grow as the
        request goes on (Slack: once the parent message exists)."""
        ...

    async def pause(self) -> None:
        """Awaited before each outside call of the request: lets more urgent work go first."""
        ...

    async def start(self, plan: Plan) -> None:
        """The request is under way (nothing is known of its outcome yet)."""
        ...

    async def progress(self, plan: Plan, progress: Progress) -> None:
        """How far a long request has got."""
        ...

    async def finish(self, run: RunResult) -> None:
        """The request's outcome, every target with its RequestId. Never raises for a failure
        to reach people: the adapter falls back (and logs as a last resort)."""
        ...

    async def takeover(self, report: TakeoverReport) -> None:
        """What a survivor found of a request whose replica stopped. Raises when it could not
        be delivered at all (the loop tries again later)."""
        ...

    async def unexpected(self, correlation_id: str) -> None:
        """Tell the requester that something broke, with `correlation_id` (also in the log)."""
        ...


#: Builds the delivery of a recorded request from its reply address.
DeliveryFactory = Callable[[Mapping[str, Any]], Delivery]


class Deliveries:
    """The adapters this process can deliver for, by name."""

    def __init__(self) -> None:
        self._factories: dict[str, DeliveryFactory] = {}

    def register(self, adapter: str, factory: DeliveryFactory) -> None:
        """Deliver requests whose address names `adapter` with `factory`."""
        self._factories[adapter] = factory

    @property
    def adapters(self) -> tuple[str, ...]:
        """Every adapter whose requests this process can report (logging counts: an address
        nobody here can deliver is logged, so it is taken too)."""
        return (*self._factories, *(a for a in LOGGED_ADAPTERS if a not in self._factories))

    def for_address(self, address: Mapping[str, Any]) -> Delivery:
        """The delivery for a recorded reply address (a logging one when no adapter claims it)."""
        factory = self._factories.get(str(address.get(ADAPTER) or "unknown"))
        if factory is None:
            return LoggedDelivery(dict(address))
        return factory(address)


class LoggedDelivery:
    """A delivery that only logs: for requests whose adapter is not in this process (a console
    session's request taken over by a Slack replica, a record from an older version)."""

    progress_interval = 60.0
    guard: Callable[[], None] | None = None

    def __init__(self, address: dict[str, Any]) -> None:
        self._address = address

    def address(self) -> dict[str, Any]:
        return dict(self._address)

    async def pause(self) -> None:
        return None

    async def start(self, plan: Plan) -> None:
        log.info("request %s under way (%s)", plan.request_key, plan.raw_text)

    async def progress(self, plan: Plan, progress: Progress) -> None:
        return None

    async def finish(self, run: RunResult) -> None:
        log.info(
            "request %s finished: %d ok, %d failed",
            run.request_key,
            len(run.succeeded),
            len(run.failed),
        )

    async def takeover(self, report: TakeoverReport) -> None:
        log.warning(
            "request %s was taken over (its replica %s stopped); nowhere to post the report, the "
            "audit trail has the verdicts: %s",
            report.request_key,
            report.previous_owner or "unknown",
            json.dumps(
                [
                    {"room": v.room_id, "outcome": v.outcome.value, "request_id": v.request_id}
                    for v in report.verdicts
                ]
            ),
        )

    async def unexpected(self, correlation_id: str) -> None:
        log.error("request failed unexpectedly [%s]", correlation_id)
