"""A neutral report model (title, key-value sections, tables, notes) and its Markdown and JSON forms.

Each command's result is turned into a :class:`Report` once; the CLI draws it with Rich (terminal,
text, HTML) and this module writes Markdown and JSON. No rendering library is imported here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    """A titled table of rows; cells are already formatted strings."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    align: str | None = None  # one letter per column, "l" or "r"; default: first left, rest right


@dataclass
class Report:
    """What a command shows: a title, tables, and notes (each note one line)."""

    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str | None = None  # e.g. "PASS" / "FAIL" for audit

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        if self.status:
            lines += [f"**{self.status}**", ""]
        for table in self.tables:
            lines += [f"## {table.title}", ""]
            lines.append("| " + " | ".join(table.columns) + " |")
            lines.append("|" + "|".join("---" for _ in table.columns) + "|")
            lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table.rows]
            lines.append("")
        if self.notes:
            lines += [f"- {note}" for note in self.notes] + [""]
        return "\n".join(lines)


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a report: fixed digits, NaN as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.{digits}f}"
    return str(value)


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.1f}%"


def clean_json(value: Any) -> Any:
    """JSON-safe data: NaN and infinities become null, tuples lists, paths strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return clean_json(value.item())
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


def to_json(data: Any) -> str:
    return json.dumps(clean_json(data), indent=2, sort_keys=False, allow_nan=False) + "\n"
