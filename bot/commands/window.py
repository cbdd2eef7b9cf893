"""The time window of `timeline` (`--since 2h`, or `--from T --to T`), in UTC.

A time is an age before now (`90m`, `2h`, `1d`, `1h30m`), an ISO 8601 date or datetime (UTC
unless it carries an offset: `2026-12-07`, `2026-12-07T14:05Z`), or `HH:MM` meaning that time
today in UTC. Without any option the window is the last `DEFAULT_SINCE`. A window wider than the
most allowed (`ROOMBOT_TIMELINE_MAX`, 7 days by default), ending before it starts, or starting
in the future is refused with one line saying so.

Parsing checks the shape of the words (`check_time`); the clock is read when the request runs
(`resolve_window`), so a `HH:MM` means today at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Final

from .durations import format_duration
from .errors import shown
from .values import InvalidValue

#: The window when no option is given.
DEFAULT_SINCE: Final = "1h"
#: The widest window by default (`ROOMBOT_TIMELINE_MAX`).
DEFAULT_TIMELINE_MAX_S: Final = 7 * 86_400
TIME_EXAMPLES: Final = "`2h`, `1d`, `14:05` (today, UTC) or `2026-12-07T14:05Z`"

_AGE: Final = re.compile(r"(?:\s*[0-9]{1,9}\s*[smhdw])+\s*", re.IGNORECASE)
_AGE_PART: Final = re.compile(r"([0-9]+)\s*([smhdw])", re.IGNORECASE)
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_CLOCK: Final = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True)
class WindowSpec:
    """The window as typed: `since` alone, or `start` and/or `end` (`--from`/`--to`)."""

    since: str | None = None
    start: str | None = None
    end: str | None = None


def check_time(text: str, option: str) -> str:
    """`text` if it has the shape of a time; `InvalidValue` naming `option` otherwise."""
    time_at(text, now=0.0, option=option)
    return text.strip()


def time_at(text: str, *, now: float, option: str) -> float:
    """The Unix time `text` means at `now` (see the module docstring)."""
    raw = text.strip()
    if _AGE.fullmatch(raw):
        seconds = sum(int(n) * _UNIT_S[u.lower()] for n, u in _AGE_PART.findall(raw))
        return now - seconds
    clock = _CLOCK.fullmatch(raw)
    if clock:
        today = datetime.fromtimestamp(now, UTC).date()
        moment = datetime.combine(today, time(int(clock[1]), int(clock[2])), tzinfo=UTC)
        return moment.timestamp()
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidValue(
            f"`{option}` takes a time like {TIME_EXAMPLES}, not {shown(raw)}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def resolve_window(spec: WindowSpec, *, now: float, max_s: float) -> tuple[float, float]:
    """`(start, end)` in Unix seconds; `InvalidValue` for a window that is empty, reversed, in
    the future, or wider than `max_s`."""
    if spec.since is not None:
        start, end = time_at(spec.since, now=now, option="--since"), now
    else:
        end = now if spec.end is None else time_at(spec.end, now=now, option="--to")
        start = (
            time_at(spec.start, now=now, option="--from")
            if spec.start is not None
            else time_at(DEFAULT_SINCE, now=end, option="--from")
        )
    if start >= end:
        raise InvalidValue(
            f"the window starts at {_utc(start)} and ends at {_utc(end)}: "
            "it must start before it ends"
        )
    if start > now:
        raise InvalidValue(f"the window starts at {_utc(start)}, in the future")
    if end - start > max_s:
        raise InvalidValue(
            f"the window from {_utc(start)} to {_utc(end)} is "
            f"{format_duration(max(1, round(end - start)))} long; the most is "
            f"{format_duration(max(1, round(max_s)))} (ROOMBOT_TIMELINE_MAX): narrow it with "
            "--since, or --from and --to"
        )
    return start, end


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
