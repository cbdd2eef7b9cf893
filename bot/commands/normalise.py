"""Undo what Slack and its clients do to typed text before the parser splits it into words.

Slack escapes `&`, `<` and `>` as entities and wraps links (and things that look like domains) in
`<url|label>` markup; macOS and mobile keyboards turn quotes into smart quotes and `--` into an
em dash; pasted text brings no-break and other odd spaces. Mentions (`<@U…>`, `<#C…|…>`, `<!…>`)
are left alone so the parser can refuse them as room IDs with a clear message.
"""

from __future__ import annotations

import re

# `<http://x|label>`, `<http://x>`, `<mailto:a@b|a@b>`: any scheme, then an optional label.
# Mentions start with `@`, `#` or `!`, never a scheme, so they do not match.
_LINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^<>|\s]*)(?:\|([^<>]*))?>")

# Only these three are entity-encoded by Slack; one pass, so `&amp;lt;` becomes `&lt;`, not `<`.
_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}

# Every character `str.isspace()` accepts, except the plain space (tests check the list).
ODD_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# Invisible characters that only get in the way. Not U+200C/U+200D: emoji and scripts need them.
_ZERO_WIDTH = "\u200b\u2060\ufeff"
_SMART_DOUBLE = "\u201c\u201d\u201e\u201f"  # “ ” „ ‟
_SMART_SINGLE = "\u2018\u2019\u201a\u201b"  # ‘ ’ ‚ ‛

_TRANSLATION = str.maketrans(
    {
        **dict.fromkeys(ODD_WHITESPACE, " "),
        **dict.fromkeys(_ZERO_WIDTH, None),
        **dict.fromkeys(_SMART_DOUBLE, '"'),
        **dict.fromkeys(_SMART_SINGLE, "'"),
    }
)

# An em or en dash starting a word and followed by a letter was typed as `--` (`—dry-run`);
# a dash standing alone (`Team — Sync`) or inside a word is punctuation and stays.
_DASH_OPTION = re.compile(r"(?:^|(?<=\s))[\u2014\u2013]-?(?=[A-Za-z])")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ROOM_PREFIX = re.compile(r"^/room(?:\s+|$)", re.IGNORECASE)


def _link_label(match: re.Match[str]) -> str:
    target, label = match.group(1), match.group(2)
    if label:
        return label
    return target.removeprefix("mailto:")


def normalise(text: str) -> str:
    """The text a person meant to type, ready to split into words.

    Reduces link markup to its label, unescapes `&amp; &lt; &gt;`, turns smart quotes into plain
    ones and a word-leading `—`/`–` into `--`, makes odd whitespace a plain space, drops
    zero-width characters, replaces unpaired surrogates with U+FFFD, strips the ends and a stray
    leading `/room`.
    """
    # JSON can carry lone surrogates; they cannot be sent on as UTF-8.
    text = _SURROGATE.sub("\ufffd", text)
    # Markup first: after unescaping, a literal `<` the user typed would look like markup.
    text = _LINK.sub(_link_label, text)
    text = _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)
    text = text.translate(_TRANSLATION)
    text = _DASH_OPTION.sub("--", text)
    return _ROOM_PREFIX.sub("", text.strip()).strip()
