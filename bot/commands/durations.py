"""Ban durations: `90s`, `30m`, `2h`, `7d`, `1h30m` to seconds, and seconds back to that form.

The rule: one or more parts, each a whole number and a unit, optionally separated by spaces;
the parts add up. Units (any case): `s`/`sec`/`second(s)`, `m`/`min`/`minute(s)`,
`h`/`hr`/`hour(s)`, `d`/`day(s)`, `w`/`week(s)`. From 1 second to `BAN_MAX_SECONDS` (365 days).
A bare number is refused: `90` could mean seconds or minutes.
"""

from __future__ import annotations

import re
from typing import Final

from .errors import shown
from .values import InvalidValue

#: The longest ban roombot sends: a year. The API documents no maximum; a longer ban is more
#: likely a typo (`70d` for `7d`... or `7000m`) than a wish, and can be renewed.
BAN_MAX_SECONDS: Final = 365 * 86_400

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


def parse_duration(text: str) -> int:
    """The number of seconds `text` means; raises `InvalidValue` saying why it is not a duration."""
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
            raise InvalidValue(_too_long(stripped))
        total += int(digits) * seconds
    if total < 1:
        raise InvalidValue(f"a ban must last at least 1s, not {shown(stripped)}")
    if total > BAN_MAX_SECONDS:
        raise InvalidValue(_too_long(stripped))
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


def _too_long(text: str) -> str:
    return f"a ban lasts at most {BAN_MAX_SECONDS // 86_400}d (a year), not {shown(text)}"
