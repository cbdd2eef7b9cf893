"""Documentation sections generated from the tables the code runs on, so they cannot drift.

`python -m bot.docs` rewrites the marked sections (`<!-- generated:NAME -->`) of README.md and
of the pages under docs/ in place; a test fails when a file differs from what this module
generates.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bot.commands import VERBS
from bot.tencent.errors import ERROR_HINTS

_MARKER = re.compile(
    r"(<!-- generated:(?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.S
)


def commands_table() -> str:
    """The command language as a Markdown table: usage, aliases, what it does."""
    lines = ["| command | aliases | what it does |", "|---|---|---|"]
    for spec in VERBS.values():
        aliases = ", ".join(f"`{a}`" for a in spec.aliases) or "—"
        usage = spec.usage.replace("|", "\\|")
        lines.append(f"| `{usage}` | {aliases} | {spec.summary} |")
    return "\n".join(lines) + "\n"


def commands_summary() -> str:
    """Every command on one line, what it does: the README's one-screen summary."""
    lines = ["| command | what it does |", "|---|---|"]
    for spec in VERBS.values():
        synopsis = spec.synopsis.replace("|", "\\|")
        lines.append(f"| `{synopsis}` | {spec.summary} |")
    return "\n".join(lines) + "\n"


def examples() -> str:
    """One example per command, as a code block (each line is checked to parse)."""
    body = "\n".join(spec.example for spec in VERBS.values())
    return f"```text\n{body}\n```\n"


def error_table() -> str:
    """Every Room Engine error code roombot knows, with the hint it shows."""
    lines = ["| code | what roombot tells you |", "|---|---|"]
    lines += [f"| {code} | {hint} |" for code, hint in ERROR_HINTS.items()]
    return "\n".join(lines) + "\n"


SECTIONS = {
    "commands": commands_table,
    "summary": commands_summary,
    "examples": examples,
    "errors": error_table,
}
#: The files `main()` regenerates by default: the README and every page of the docs site.
DOCUMENTS = ("README.md", "docs/*.md")


def render(readme: str) -> str:
    """`readme` with every generated section replaced by its current content."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in SECTIONS:
            raise KeyError(f"unknown generated section {name!r}")
        return match.group(1) + SECTIONS[name]() + match.group(4)

    return _MARKER.sub(replace, readme)


def documents(root: Path = Path()) -> list[Path]:
    """The files matching `DOCUMENTS` under `root`, in a stable order."""
    return [path for pattern in DOCUMENTS for path in sorted(root.glob(pattern))]


def main(*paths: str) -> int:
    """Rewrite the generated sections of `paths` (default: `documents()`); print whether
    anything changed in each."""
    for file in [Path(p) for p in paths] or documents():
        old = file.read_text(encoding="utf-8")
        new = render(old)
        if new != old:
            file.write_text(new, encoding="utf-8")
            print(f"{file}: generated sections updated")
        else:
            print(f"{file}: up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
