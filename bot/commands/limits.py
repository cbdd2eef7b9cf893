"""Size limits on what one request may carry, and how much of it is echoed or stored.

Anyone in the workspace can send `/room` text, permission or not, so the size of what roombot
parses, echoes and records must not be theirs to choose.
"""

from __future__ import annotations

from typing import Final

from bot.defaults import MAX_ROOMS
from bot.models import (
    CUSTOM_INFO_MAX_BYTES,
    REASON_MAX_BYTES,
    ROOM_ID_MAX_BYTES,
    ROOM_NAME_MAX_BYTES,
)

#: How many rooms one command may name unless the caller says otherwise (`ROOMBOT_MAX_ROOMS`).
DEFAULT_MAX_ROOMS: Final = MAX_ROOMS

#: How many accounts one kick/ban/unban command may name (sent 20 to a call).
MAX_ACCOUNTS: Final = 100
#: How many seat indexes one seat command may name (one `lock_seat` call each).
MAX_SEATS: Final = 100

# A room ID and the space after it.
_ROOM_WORD_CHARS: Final = ROOM_ID_MAX_BYTES + 1
# Slack sends a typed `&` as `&amp;`: one character of a value can arrive as five.
_SLACK_ESCAPE_FACTOR: Final = 5
# The free-text parts of the largest command: a reason and, for `set`, a name and custom info.
_TEXT_BYTES: Final = REASON_MAX_BYTES + ROOM_NAME_MAX_BYTES + CUSTOM_INFO_MAX_BYTES
# The verb, the options, every `set` key, quotes and spacing, with room to spare.
_WORDS_CHARS: Final = 1_000

#: The longest command text `parse_command` reads (characters, as Slack delivers it) at the
#: default room limit: 500 rooms of 48 characters, the largest reason and `set` values escaped
#: the way Slack escapes them, and the words around them (33,500). Longer text is refused before
#: it is split into words.
MAX_COMMAND_CHARS: Final = (
    DEFAULT_MAX_ROOMS * _ROOM_WORD_CHARS + _SLACK_ESCAPE_FACTOR * _TEXT_BYTES + _WORDS_CHARS
)

#: The most characters `clip_for_audit` keeps of one text by default.
AUDIT_TEXT_MAX_CHARS: Final = 2_000
# The note is at most about 40 characters; a limit must leave room for it and some text.
_MIN_CLIP_LIMIT: Final = 64


def max_command_chars(max_rooms: int = DEFAULT_MAX_ROOMS) -> int:
    """The longest command text admitted when a command may name `max_rooms` rooms.

    `MAX_COMMAND_CHARS`, plus room for the extra rooms when the limit is raised above the default
    (never less, so a lower room limit does not turn a long reason into a length error).
    """
    return MAX_COMMAND_CHARS + max(0, max_rooms - DEFAULT_MAX_ROOMS) * _ROOM_WORD_CHARS


def clip_for_audit(text: str, limit: int = AUDIT_TEXT_MAX_CHARS) -> str:
    """`text` as it may be stored or echoed: unchanged if at most `limit` characters, else its
    head and a note of how much was cut (`…[cut 38,000 more characters]`), `limit` in all.

    Raises `ValueError` for a `limit` under 64, too small to hold the note and any text.
    """
    if limit < _MIN_CLIP_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_CLIP_LIMIT} characters, not {limit}")
    if len(text) <= limit:
        return text
    # The note states how much was cut, which depends on the note's own length: grow it until
    # it stops changing (the count only grows with it, so this ends after a step or two).
    note = ""
    while True:
        kept = limit - len(note)
        candidate = f"…[cut {len(text) - kept:,} more characters]"
        if len(candidate) == len(note):
            return text[:kept] + candidate
        note = candidate
