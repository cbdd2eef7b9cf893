"""`ParseError`, the one exception the command parser raises, and how its messages quote input."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from bot.errors import RoombotError

_SHOWN_MAX_CHARS = 40
# Messages quote input only through `shown`, so they stay short; this bounds them even if a
# future message forgets to.
_MESSAGE_MAX_CHARS = 400


class ParseError(RoombotError):
    """The command text is not a valid `/room` command.

    `message` is one user-facing line saying what was wrong and why; `usage` is the relevant
    usage line (e.g. `/room rename ROOM NAME...`), or None when no single verb applies.
    `str(err)` is exactly `message`.
    """

    def __init__(self, message: str, usage: str | None = None) -> None:
        # Messages quote user input, which is normalised to one line already; this keeps the
        # one-line promise even for a caller that builds a message from raw text.
        self.message = " ".join(message.split())
        if len(self.message) > _MESSAGE_MAX_CHARS:
            self.message = self.message[: _MESSAGE_MAX_CHARS - 1] + "…"
        self.usage = usage
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def shown(word: str) -> str:
    """`word` as a message quotes it: in backticks, shortened if long, without breaking mrkdwn."""
    text = word.replace("`", "'")
    if len(text) > _SHOWN_MAX_CHARS:
        text = text[: _SHOWN_MAX_CHARS - 1] + "…"
    return f"`{text}`"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """ " — did you mean `x`?" for the closest of `choices` to `word` (ignoring case), or ""."""
    by_lower = {choice.lower(): choice for choice in choices}
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=3, cutoff=0.6)
    if not matches:
        return ""
    names = [shown(by_lower[m]) for m in matches]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f" — did you mean {listed}?"
