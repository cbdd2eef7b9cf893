"""The console's `Delivery`: a request reported as plain lines on the console's output.

The console carries its requests through the same life as Slack's (`bot.requests.life`): their
records name this adapter (`{"adapter": "console"}`), so a console session that stops mid-request
is reported by the next session on the same audit database (or, on PostgreSQL, logged by a Slack
replica, which has nowhere to print it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from bot import wording
from bot.console.text import PLAIN, request_lines, result_lines
from bot.outcomes import Plan, Progress, RunResult
from bot.requests.delivery import Deliveries
from bot.requests.takeover import TakeoverReport

#: The console's reply address: there is nothing to say about where, only who.
ADAPTER: Final = "console"
#: Only long requests get progress lines: at least this many targets.
PROGRESS_FROM: Final = 20


class ConsoleDelivery:
    """Prints one request's course to `write` (a line at a time)."""

    progress_interval = 0.0
    guard: Callable[[], None] | None = None

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._last_shown = 0

    def address(self) -> dict[str, Any]:
        return {"adapter": ADAPTER}

    async def pause(self) -> None:
        return None

    async def start(self, plan: Plan) -> None:
        for line in request_lines(plan.command, plan.actor, plan.kind):
            self._write(line)

    async def progress(self, plan: Plan, progress: Progress) -> None:
        # One line per tenth of the work, for long requests only.
        step = progress.total // 10
        if progress.total >= PROGRESS_FROM and progress.done - self._last_shown >= step:
            self._last_shown = progress.done
            self._write("  " + wording.progress_status(progress))

    async def finish(self, run: RunResult) -> None:
        for line in result_lines(run):
            self._write(line)

    async def takeover(self, report: TakeoverReport) -> None:
        head = report.raw_text or report.request_key
        self._write(f"An earlier request, /room {head}:")
        self._write("  " + wording.takeover_summary(report, restarted=True))
        for verdict in report.verdicts:
            self._write("  " + wording.verdict_line(PLAIN, verdict, report.verb))
        if wording.takeover_retry_count(report):
            self._write(f"  ('retry-failed {report.request_key}' runs again what is not done)")

    async def unexpected(self, correlation_id: str) -> None:
        self._write(
            f"Something went wrong inside roombot (error id {correlation_id}); 'history ROOM' "
            "shows what was done."
        )


def console_deliveries(write: Callable[[str], None]) -> Deliveries:
    """The deliveries of a console session: its own requests' reports go to `write`."""

    def build(address: Mapping[str, Any]) -> ConsoleDelivery:
        return ConsoleDelivery(write)

    deliveries = Deliveries()
    deliveries.register(ADAPTER, build)
    return deliveries
