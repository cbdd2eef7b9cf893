"""How the emulator refuses: a `Refusal` carries the ErrorCode and ErrorInfo Room Engine would
answer, whichever part of the emulator raises it."""

from __future__ import annotations

from bot.errors import RoombotError


class Refusal(RoombotError, ValueError):
    """The emulator refuses: Room Engine would answer ErrorCode `code` with ErrorInfo `info`.

    Raised by request validation (and turned into the API answer), and by the emulator's direct
    methods (`member_enter`, `outside_update`, ...) so tests and demos see the same code.
    """

    def __init__(self, code: int, info: str) -> None:
        super().__init__(f"{code}: {info}")
        self.code = code
        self.info = info


def invalid(field_name: str, why: str) -> Refusal:
    """A 100002 naming the parameter, in the style of Tencent's messages."""
    return Refusal(100002, f"Invalid parameter {field_name}: {why}")
