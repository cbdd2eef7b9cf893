"""A medium's `Style`, the marks every medium shows, and the core's own style (`CORE`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

OK_MARK: Final = "✅"
FAIL_MARK: Final = "❌"
WORKING_MARK: Final = "⏳"
WARN_MARK: Final = "⚠️"
#: How `history` marks a change made outside roombot (reported by a Room Engine callback).
OUTSIDE_MARK: Final = f"{WARN_MARK} outside roombot"

_CODE_SPAN: Final = re.compile(r"`([^`\n]*)`")


@dataclass(frozen=True)
class Style:
    """How one medium formats the pieces of a sentence.

    `literal` shows an identifier or value verbatim (made safe for the medium); `text` makes free
    text safe; `user` names a user by ID, `channel` a channel; `you` addresses the reader by
    their ID; `strong` makes a title stand out; `quote` shows a literal inside a sentence
    (`literal` when None).
    """

    literal: Callable[[str], str]
    text: Callable[[str], str]
    user: Callable[[str], str]
    channel: Callable[[str], str]
    you: Callable[[str], str]
    strong: Callable[[str], str]
    quote: Callable[[str], str] | None = None

    def prose(self, sentence: str) -> str:
        """A core sentence (literals in backticks) in this medium: each backticked part through
        `literal`, the rest through `text`."""
        parts: list[str] = []
        last = 0
        for match in _CODE_SPAN.finditer(sentence):
            parts.append(self.text(sentence[last : match.start()]))
            parts.append((self.quote or self.literal)(match.group(1)))
            last = match.end()
        parts.append(self.text(sentence[last:]))
        return "".join(parts)


def _backticked(text: str) -> str:
    return f"`{text}`"


def _as_is(text: str) -> str:
    return text


#: The core's own style, for sentences in `Rejected.message` and `Failure.message`: literals in
#: backticks (each adapter's `Style.prose` renders them), everything else as it is.
CORE: Final = Style(
    literal=_backticked,
    text=_as_is,
    user=_backticked,
    channel=_backticked,
    you=lambda user_id: f"You (`{user_id}`)",
    strong=_as_is,
)
