"""The statements of time-boxed changes' timers (DESIGN §2.11) as transaction bodies: a timer
is a `revert` request recorded `scheduled` (`bot.audit.life.begin` records it with the rows it
reverts); these list the ones still pending."""

from __future__ import annotations

from typing import Final

from bot.audit.records import RequestRecord, RequestState
from bot.audit.rows import REQUEST_SELECT, request_from_row
from bot.audit.sql import Body, Query

#: The kind of a timer's request record.
REVERT_KIND: Final = "revert"


def pending(limit: int) -> Body[list[RequestRecord]]:
    """Up to `limit` timers that have not run yet (scheduled, nobody holding them), soonest
    first."""
    result = yield Query(
        f"SELECT {REQUEST_SELECT} FROM requests "  # noqa: S608
        "WHERE kind = %(kind)s AND state = %(state)s AND owner IS NULL "
        "ORDER BY run_after LIMIT %(limit)s",
        {"kind": REVERT_KIND, "state": RequestState.SCHEDULED.value, "limit": limit},
    )
    return [request_from_row(row) for row in result.rows]


def count_pending() -> Body[int]:
    """How many timers have not run yet (scheduled, or taken and running)."""
    result = yield Query(
        "SELECT COUNT(*) FROM requests WHERE kind = %(kind)s AND state = %(state)s",
        {"kind": REVERT_KIND, "state": RequestState.SCHEDULED.value},
    )
    row = result.one()
    return int(row[0]) if row is not None else 0
