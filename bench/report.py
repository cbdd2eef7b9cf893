"""Results: markdown tables for people, JSON for machines."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    """A titled table with optional notes under it."""

    title: str
    headers: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """The table as GitHub-flavoured markdown."""
        lines = [f"#### {self.title}", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass
class Target:
    """One figure the issue sets a target for, and whether this run met it."""

    name: str
    value: float
    limit: float
    unit: str = ""

    @property
    def met(self) -> bool:
        """True when the value is at or under the limit."""
        return not math.isnan(self.value) and self.value <= self.limit

    def row(self) -> list[Any]:
        """A row for the targets table."""
        return [
            self.name,
            f"{fmt(self.value)}{self.unit}",
            f"≤ {fmt(self.limit)}{self.unit}",
            "met" if self.met else "**missed**",
        ]


@dataclass
class ScenarioResult:
    """What one scenario produced: tables to print, targets, and everything else for the JSON."""

    name: str
    tables: list[Table]
    targets: list[Target]
    data: dict[str, Any]

    def markdown(self) -> str:
        """All of this scenario's tables."""
        return "\n\n".join(t.markdown() for t in self.tables)

    def as_json(self) -> dict[str, Any]:
        """The scenario as a JSON object."""
        return {
            "scenario": self.name,
            "targets": [
                {"name": t.name, "value": t.value, "limit": t.limit, "met": t.met}
                for t in self.targets
            ],
            "tables": [
                {"title": t.title, "headers": t.headers, "rows": t.rows, "notes": t.notes}
                for t in self.tables
            ],
            **self.data,
        }


def fmt(value: Any) -> str:
    """A table cell: floats to a sensible precision, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as indented JSON (NaN becomes null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(data), indent=2, ensure_ascii=False) + "\n")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set):
        return sorted(value)
    return value
