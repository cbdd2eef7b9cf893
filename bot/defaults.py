"""Defaults and limits that several modules share, each defined once.

Settings (`bot.config`) use these as their defaults; the parser, the service, the audit store and
the texts users read all take them from here, so a change is one edit.
"""

from __future__ import annotations

from typing import Final

#: Most rooms one command may name (`ROOMBOT_MAX_ROOMS`).
MAX_ROOMS: Final = 500
#: The longest `--for` of a time-boxed change, in seconds (`ROOMBOT_MAX_TIMEBOX`: a week).
MAX_TIMEBOX_S: Final = 7 * 86_400
#: The shortest `--for` of a time-boxed change, in seconds (not a setting).
MIN_TIMEBOX_S: Final = 10
#: Requests for more rooms than this ask for confirmation (`ROOMBOT_CONFIRM_ABOVE`; 0 = never).
CONFIRM_ABOVE: Final = 5
#: Room Engine calls per second the bot may use (`ROOMBOT_RATE_LIMIT`).
RATE_LIMIT: Final = 50
#: How long a confirmation prompt waits for its click, in seconds.
CONFIRMATION_TTL_S: Final = 600.0
#: The same, as users read it.
CONFIRMATION_TTL_TEXT: Final = f"{CONFIRMATION_TTL_S / 60:g} minutes"
