"""The rules every layer enforces on Room Engine values (one copy of each limit): byte limits,
account IDs, reasons, ban durations, and the short excerpts messages quote.

The parser, the client and the emulator all check with these, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

ROOM_ID_MAX_BYTES: Final = 48
ROOM_NAME_MAX_BYTES: Final = 100
CUSTOM_INFO_MAX_BYTES: Final = 500
#: The API's limit on a kick or ban `Reason`; roombot holds every `--reason` to it.
REASON_MAX_BYTES: Final = 1000
#: Room Engine account IDs (`Member_Account`): Tencent's UserID limit is 32 bytes.
ACCOUNT_ID_MAX_BYTES: Final = 32
#: Most accounts one `kick_user_out`, `ban_room_member` or `unban_room_member` call may name.
MAX_ACCOUNTS_PER_CALL: Final = 20
#: The largest ban `Duration` in seconds: a signed 32-bit integer (Tencent documents no maximum,
#: so anything larger is assumed to be refused).
BAN_DURATION_MAX_S: Final = 2**31 - 1
#: `get_room_member_list`'s documented default page size (`Count`).
MEMBER_PAGE_DEFAULT: Final = 50
#: Largest `Count` the emulator accepts. Tencent documents no maximum; 100 is an assumption
#: (the banned list's documented maximum), so a client that stays at or below it is safe.
MEMBER_PAGE_MAX: Final = 100
#: Largest `Limit` of `get_banned_member_list` (documented).
BANNED_PAGE_MAX: Final = 100
# How much of a bad value a message quotes: enough to recognise it, never a whole paste.
_EXCERPT_CHARS: Final = 40


def utf8_len(text: str) -> int:
    """Length of `text` in UTF-8 bytes, the unit every Room Engine string limit uses."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def clip_utf8(text: str, max_bytes: int) -> str:
    """`text` unchanged if it is at most `max_bytes` UTF-8 bytes, else its longest head that
    fits with `…` after it, `max_bytes` in all (never a character cut in half)."""
    data = text.encode("utf-8", errors="surrogatepass")
    if len(data) <= max_bytes:
        return text
    ellipsis = "…"
    room = max(max_bytes - utf8_len(ellipsis), 0)
    return data[:room].decode("utf-8", errors="ignore") + ellipsis


def excerpt(value: str, limit: int = _EXCERPT_CHARS) -> str:
    """`value` quoted for a message (`repr` style), its first `limit` characters and `…` if longer.

    Messages about bad input quote it through this so that they stay short whatever was pasted.
    """
    if len(value) <= limit:
        return repr(value)
    return repr(value[: limit - 1]) + "…"


def _number(value: int) -> str:
    # A JSON body can hold a number of thousands of digits; a message shows its start (and
    # never asks str() for more digits than Python converts).
    if value.bit_length() > 256:
        return f"a number of {value.bit_length()} bits"
    text = str(value)
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"


def room_id_problem(value: str) -> str | None:
    """Why `value` is not a valid RoomId, or None if it is one. Quotes at most an excerpt."""
    if not value:
        return "a room ID cannot be empty"
    # Printable ASCII without spaces (0x21-0x7E), checked at C speed: callbacks check one each.
    if not (value.isascii() and value.isprintable() and " " not in value):
        return (
            f"room ID {excerpt(value)} must be printable ASCII without spaces "
            "(letters, digits and punctuation)"
        )
    if len(value) > ROOM_ID_MAX_BYTES:
        return f"room ID {excerpt(value)} is {len(value)} bytes; the limit is {ROOM_ID_MAX_BYTES}"
    return None


def account_id_problem(value: str) -> str | None:
    """Why `value` is not a valid Room Engine account ID, or None. Quotes at most an excerpt.

    roombot's rule: 1-32 UTF-8 bytes of printable characters, no spaces (Tencent's UserID limit
    is 32 bytes; it recommends letters, digits, `_` and `-` but allows more, so this allows more).
    """
    if not value:
        return "an account ID cannot be empty"
    if not value.isprintable() or " " in value:
        return f"account ID {excerpt(value)} must be printable characters without spaces"
    size = utf8_len(value)
    if size > ACCOUNT_ID_MAX_BYTES:
        return (
            f"account ID {excerpt(value)} is {size} bytes in UTF-8; "
            f"the limit is {ACCOUNT_ID_MAX_BYTES}"
        )
    return None


def reason_problem(value: Any) -> str | None:
    """Why `value` is not a valid `Reason` (a string of 1-1000 UTF-8 bytes, not blank), or None.

    Checks a parsed `--reason` and a JSON body's `Reason` alike (the client and the emulator).
    """
    if not isinstance(value, str):
        return "a reason must be a string"
    if not value.strip():
        return "a reason cannot be empty"
    size = utf8_len(value)
    if size > REASON_MAX_BYTES:
        return (
            f"the reason is {size} bytes in UTF-8; the limit is {REASON_MAX_BYTES} bytes "
            "(emoji and CJK characters take 3-4 bytes each)"
        )
    return None


def accounts_problem(accounts: Sequence[Any]) -> str | None:
    """Why `accounts` is not a valid `MemberList_Account` (1-20 distinct non-empty strings)."""
    if isinstance(accounts, str):
        return "must be a list of account IDs, not one string"
    if not accounts:
        return "must name at least one account"
    if len(accounts) > MAX_ACCOUNTS_PER_CALL:
        return f"names {len(accounts)} accounts; at most {MAX_ACCOUNTS_PER_CALL} fit in one call"
    if not all(isinstance(account, str) and account for account in accounts):
        return "every account ID must be a non-empty string"
    if len(set(accounts)) != len(accounts):
        return "names an account more than once"
    return None


def duration_problem(value: Any) -> str | None:
    """Why `value` is not a valid ban `Duration` (a positive whole number of seconds), or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a whole number of seconds"
    if value < 1:
        return f"must be positive, not {value}"
    if value > BAN_DURATION_MAX_S:
        return f"{value} s is too long (at most {BAN_DURATION_MAX_S} s)"
    return None


def chunked(accounts: Sequence[str], size: int = MAX_ACCOUNTS_PER_CALL) -> list[tuple[str, ...]]:
    """`accounts` in order, split into the calls that carry them (at most `size` a call)."""
    items = tuple(accounts)
    return [items[start : start + size] for start in range(0, len(items), size)]


def default_reason(requester: str) -> str:
    """The `Reason` sent when the command gave none: who asked, and through what."""
    return f"by {requester} via roombot"


def room_name_problem(value: str) -> str | None:
    """Why `value` is not a valid RoomName (1-100 UTF-8 bytes), or None."""
    if not value:
        return "a room name cannot be empty"
    size = utf8_len(value)
    if size > ROOM_NAME_MAX_BYTES:
        return (
            f"room name is {size} bytes in UTF-8; the limit is {ROOM_NAME_MAX_BYTES} bytes "
            "(emoji and CJK characters take 3-4 bytes each)"
        )
    return None


def custom_info_problem(value: str) -> str | None:
    """Why `value` is not a valid CustomInfo (at most 500 UTF-8 bytes), or None."""
    size = utf8_len(value)
    if size > CUSTOM_INFO_MAX_BYTES:
        return (
            f"custom info is {size} bytes in UTF-8; the limit is {CUSTOM_INFO_MAX_BYTES} bytes "
            "(emoji and CJK characters take 3-4 bytes each)"
        )
    return None


def max_member_count_problem(value: int) -> str | None:
    """Why `value` is not a valid MaxMemberCount (a positive integer), or None."""
    if isinstance(value, bool) or value < 1:
        return f"member limit must be a positive whole number, not {_number(value)}"
    if value > 2**31 - 1:
        return f"member limit {_number(value)} is too large (at most {2**31 - 1})"
    return None


def lenient_bool(value: Any) -> Any:
    """`value`, or the boolean it spells: Tencent's own samples sometimes send booleans as the
    strings "true"/"false" (for a pydantic `mode="before"` validator)."""
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return value
