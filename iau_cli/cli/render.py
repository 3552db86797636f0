"""Draw a :class:`iau_cli.cli.report.Report` with Rich."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from iau_cli.cli.report import Report


def render(report: Report) -> Any:
    parts: list[Any] = [Text(report.title, style="bold")]
    if report.status:
        style = "bold green" if report.status.startswith("PASS") else "bold red"
        parts.append(Text(report.status, style=style))
    for section in report.tables:
        key_value = not any(section.columns)
        # Every string is data (ids, paths, metadata): Text, never Rich markup.
        table = Table(title=Text(section.title, style="bold cyan"), title_justify="left", show_header=not key_value)
        for index, column in enumerate(section.columns):
            if section.align:
                justify = "left" if section.align[index] == "l" else "right"
            else:
                justify = "left" if index == 0 or key_value else "right"
            table.add_column(Text(column), justify=justify)
        for row in section.rows:
            table.add_row(*(Text(str(cell)) for cell in row))
        parts.append(table)
    for note in report.notes:
        parts.append(Text(f"• {note}", style="dim"))
    return Group(*parts)
