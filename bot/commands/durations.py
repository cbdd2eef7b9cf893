"""Durations (`--for`): `90s`, `30m`, `2h`, `7d`, `1h30m` to seconds, and seconds back to that form.

The rule: one or more parts, each a whole number and a unit, optionally separated by spaces;
the parts add up. Units (any case): `s`/`sec`/`second(s)`, `m`/`min`/`minute(s)`,
`h`/`hr`/`hour(s)`, `d`/`day(s)`, `w`/`week(s)`. A ban lasts from 1 second to
`BAN_MAX_SECONDS` (365 days); a time-boxed change (DESIGN §2.11) from `TIMEBOX_MIN_SECONDS`
to `ROOMBOT_MAX_TIMEBOX` (`timebox_bounds`). A bare number is refused: `90` could mean seconds
or minutes.
"""

from __future__ import annotations

import re
from typing import Final

from bot.defaults import MAX_TIMEBOX_S, MIN_TIMEBOX_S

from .errors import shown
from .values import InvalidValue

#: The longest ban roombot sends: a year. The API documents no maximum; a longer ban is more
#: likely a typo (`70d` for `7d`... or `7000m`) than a wish, and can be renewed.
BAN_MAX_SECONDS: Final = 365 * 86_400

#: The shortest time-boxed change: a revert sooner than this is more likely a typo (`10s` for
#: `10m`) than a wish, and would race the change's own report.
TIMEBOX_MIN_SECONDS: Final = MIN_TIMEBOX_S

#: `ROOMBOT_MAX_TIMEBOX`'s default: a week.
TIMEBOX_MAX_SECONDS: Final = MAX_TIMEBOX_S

#: The forms the help text and error messages show.
DURATION_EXAMPLES: Final = "`90s`, `30m`, `2h`, `7d` or `1h30m`"

_UNIT_SECONDS: Final = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600),
    **dict.fromkeys(("d", "day", "days"), 86_400),
    **dict.fromkeys(("w", "week", "weeks"), 604_800),
}
_CANONICAL_UNITS: Final = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
_PART = re.compile(r"\s*([0-9]+)\s*([a-z]+)", re.IGNORECASE)
# Far beyond a year in any unit, short enough that int() is cheap.
_MAX_DIGITS: Final = 9
_SHAPE = re.compile(r"(?:\s*[0-9]+\s*[a-z]+)+\s*", re.IGNORECASE)


def looks_like_duration(word: str) -> bool:
    """True when `word` has the shape of a duration (`30m`, `1h30m`), whatever its size."""
    return _SHAPE.fullmatch(word) is not None and _units_known(word)


def parse_duration(
    text: str,
    *,
    minimum: int = 1,
    maximum: int = BAN_MAX_SECONDS,
    what: str = "a ban",
) -> int:
    """The number of seconds `text` means, from `minimum` to `maximum` (a ban's by default);
    raises `InvalidValue` saying why it is not such a duration (`what` names what lasts)."""
    stripped = text.strip()
    if not _SHAPE.fullmatch(stripped):
        hint = " (give a unit, e.g. `90s` or `30m`)" if stripped.isdigit() else ""
        raise InvalidValue(
            f"a duration is a number and a unit like {DURATION_EXAMPLES}, "
            f"not {shown(stripped)}{hint}"
        )
    total = 0
    for match in _PART.finditer(stripped):
        digits, unit = match.group(1), match.group(2).lower()
        seconds = _UNIT_SECONDS.get(unit)
        if seconds is None:
            raise InvalidValue(
                f"unknown unit {shown(unit)} in {shown(stripped)}: use s, m, h, d or w "
                f"(e.g. {DURATION_EXAMPLES})"
            )
        if len(digits.lstrip("0")) > _MAX_DIGITS:
            raise InvalidValue(_too_long(stripped, what, maximum))
        total += int(digits) * seconds
    if total < minimum:
        raise InvalidValue(
            f"{what} must last at least {format_duration(minimum)}, not {shown(stripped)}"
        )
    if total > maximum:
        raise InvalidValue(_too_long(stripped, what, maximum))
    return total


def format_duration(seconds: int) -> str:
    """`seconds` in the canonical form `parse_duration` reads back: `1d2h`, `90` -> `1m30s`."""
    if seconds < 1:
        raise ValueError(f"a duration is at least 1 second, not {seconds}")
    parts = []
    for unit, size in _CANONICAL_UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _units_known(text: str) -> bool:
    return all(match.group(2).lower() in _UNIT_SECONDS for match in _PART.finditer(text))


def _too_long(text: str, what: str, maximum: int) -> str:
    most = format_duration(maximum)
    if maximum == BAN_MAX_SECONDS:
        most += " (a year)"
    return f"{what} lasts at most {most}, not {shown(text)}"
