"""Split normalised command text into words, and quote values so they split back the same way.

The rules are shell-like but forgiving, because people type names with apostrophes:

- Words are separated by whitespace.
- A quote (`"` or `'`) opens a quoted part only at the start of a word or right after an `=`
  (`name="Weekly sync"`), and only if a matching quote later in the text is followed by
  whitespace or the end; that quote closes it, and ends the word. Otherwise the quote is an
  ordinary character, so `Bob's room` is two words, `Bob's` and `room`.
- Inside double quotes, `\\"` is a quote and `\\\\` a backslash; every other backslash is literal.
  Single quotes have no escapes.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

_OPTION = re.compile(r"--[A-Za-z]")
# Words that need no quotes anywhere: they cannot be an option, an assignment, quoted or markup.
_BARE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+,-]*")
# What `normalise` would unescape or treat as markup, escaped the way Slack sends it.
_SLACK_SPECIAL = re.compile(r"<|&(?=(?:amp|lt|gt);)")
_SLACK_ESCAPES = {"<": "&lt;", "&": "&amp;"}


@dataclass(frozen=True)
class Token:
    """One word: an unquoted `prefix`, then the text of a `quoted` part if it had one.

    `start`/`end` locate the word in the text it came from; `index` is its position among words.
    """

    prefix: str
    quoted: str | None
    start: int
    end: int
    index: int

    @property
    def value(self) -> str:
        """The word as meant: quotes removed, escapes resolved."""
        return self.prefix + (self.quoted or "")

    @property
    def fully_quoted(self) -> bool:
        """True when the whole word was one quoted part (so it is taken literally)."""
        return self.quoted is not None and not self.prefix

    @property
    def is_option(self) -> bool:
        """True for an unquoted `--word` (`--` alone, or `--` before a non-letter, is text)."""
        return _OPTION.match(self.prefix) is not None


class _Closers:
    """Where quoted parts can end: positions of a closing quote followed by whitespace or the end.

    Found once per text so that tokenising stays O(n log n) however many quotes never close.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._double: list[int] = []
        self._single: list[int] = []
        backslashes = 0
        for i, ch in enumerate(text):
            ends_word = i + 1 == len(text) or text[i + 1].isspace()
            if ch == '"' and ends_word and backslashes % 2 == 0:
                self._double.append(i)
            elif ch == "'" and ends_word:
                self._single.append(i)
            backslashes = backslashes + 1 if ch == "\\" else 0

    def after(self, quote: str, position: int) -> int | None:
        """The first closer of `quote` after `position`, or None."""
        found = self._double if quote == '"' else self._single
        at = bisect.bisect_right(found, position)
        return found[at] if at < len(found) else None


def _unescape_double(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '"\\':
            out.append(body[i + 1])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def tokenise(text: str) -> list[Token]:
    """Split `text` into words by the rules in this module's docstring. Never raises."""
    closers = _Closers(text)
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        prefix: list[str] = []
        quoted: str | None = None
        while i < n and not text[i].isspace():
            ch = text[i]
            close = None
            if ch in "\"'" and (i == start or text[i - 1] == "="):
                close = closers.after(ch, i)
            if close is None:
                prefix.append(ch)
                i += 1
                continue
            body = text[i + 1 : close]
            quoted = _unescape_double(body) if ch == '"' else body
            i = close + 1
            break
        tokens.append(Token("".join(prefix), quoted, start, i, len(tokens)))
    return tokens


def quote(value: str) -> str:
    """`value` as one double-quoted word that `normalise` and `tokenise` turn back into `value`."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _SLACK_SPECIAL.sub(lambda m: _SLACK_ESCAPES[m.group(0)], escaped) + '"'


def word(value: str) -> str:
    """`value` bare when it is plainly one word (`room-test`), else `quote(value)`."""
    return value if _BARE.fullmatch(value) else quote(value)


def raw_text(text: str, tokens: list[Token]) -> str:
    """The words as typed, quotes and spacing kept; runs of non-adjacent words join by a space."""
    runs: list[str] = []
    run_start = run_end = -1
    last_index = -2
    for token in tokens:
        if token.index != last_index + 1 and run_start >= 0:
            runs.append(text[run_start:run_end])
            run_start = -1
        if run_start < 0:
            run_start = token.start
        run_end, last_index = token.end, token.index
    if run_start >= 0:
        runs.append(text[run_start:run_end])
    return " ".join(runs)
