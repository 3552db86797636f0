"""A neutral report model (title, key-value sections, tables, notes) and its Markdown and JSON forms.

Each command's result is turned into a :class:`Report` once; the CLI draws it with Rich (terminal,
text, HTML) and this module writes Markdown and JSON. No rendering library is imported here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from iau_cli.io.files import clean_json


@dataclass
class Table:
    """A titled table of rows; cells are already formatted strings."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    align: str | None = None  # one letter per column, "l" or "r"; default: first left, rest right


@dataclass
class Histogram:
    """Distributions to compare, drawn in the HTML report: label → values (for example the losses
    of forget rows and of held-out rows)."""

    title: str
    x_label: str
    series: dict[str, list[float]]
    x_range: tuple[float, float] | None = None  # shared by figures that are compared (before/after)


@dataclass
class Report:
    """What a command shows: a title, tables, notes (each note one line) and, for the HTML page,
    histograms."""

    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str | None = None  # e.g. "PASS" / "FAIL" for audit
    figures: list[Histogram] = field(default_factory=list)

    def to_html(self) -> str:
        """A standalone web page: the verdict on top, real tables, notes, inline SVG histograms."""
        from html import escape

        body = [f"<h1>{escape(self.title)}</h1>"]
        if self.status:
            kind = "pass" if self.status.startswith("PASS") else "fail"
            body.append(f'<p class="status {kind}">{escape(self.status)}</p>')
        for table in self.tables:
            key_value = not any(table.columns)
            rows = []
            if not key_value:
                rows.append("<tr>" + "".join(f"<th>{escape(c)}</th>" for c in table.columns) + "</tr>")
            for row in table.rows:
                cells = "".join(
                    f"<th>{escape(str(cell))}</th>" if key_value and i == 0 else f"<td>{escape(str(cell))}</td>"
                    for i, cell in enumerate(row)
                )
                rows.append(f"<tr>{cells}</tr>")
            body.append(f"<h2>{escape(table.title)}</h2><table>{''.join(rows)}</table>")
        for figure in self.figures:
            body.append(f"<h2>{escape(figure.title)}</h2>{_histogram_svg(figure)}")
        if self.notes:
            body.append("<ul>" + "".join(f"<li>{escape(note)}</li>" for note in self.notes) + "</ul>")
        return _PAGE.format(title=escape(self.title), body="\n".join(body))

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        if self.status:
            lines += [f"**{self.status}**", ""]
        for table in self.tables:
            lines += [f"## {table.title}", ""]
            lines.append("| " + " | ".join(table.columns) + " |")
            lines.append("|" + "|".join("---" for _ in table.columns) + "|")
            lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in table.rows]
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


def to_json(data: Any) -> str:
    return json.dumps(clean_json(data), indent=2, sort_keys=False, allow_nan=False) + "\n"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}
td {{ font-variant-numeric: tabular-nums; }}
tr:first-child th {{ background: #f0f0f0; }}
.status {{ font-size: 1.3em; font-weight: bold; padding: 0.4em 0.8em; display: inline-block; }}
.pass {{ background: #dff5e1; color: #14532d; }}
.fail {{ background: #fde2e1; color: #7f1d1d; }}
</style></head>
<body>
{body}
</body></html>
"""

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _histogram_svg(figure: Histogram, bins: int = 30, width: int = 640, height: int = 240) -> str:
    """Step histograms (as densities) of each series on shared bins, as inline SVG."""
    from html import escape

    values = [v for series in figure.series.values() for v in series if math.isfinite(v)]
    if not values:
        return "<p>(no values)</p>"
    low, high = figure.x_range if figure.x_range is not None else (min(values), max(values))
    high = high if high > low else low + 1.0
    pad, plot_w, plot_h = 40, width - 60, height - 70
    densities = {}
    for label, series in figure.series.items():
        counts = [0] * bins
        finite = [v for v in series if math.isfinite(v)]
        for v in finite:
            counts[min(max(int((v - low) / (high - low) * bins), 0), bins - 1)] += 1
        densities[label] = [c / max(len(finite), 1) for c in counts]
    top = max(max(d) for d in densities.values()) or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    parts.append(f'<line x1="{pad}" y1="{pad + plot_h}" x2="{pad + plot_w}" y2="{pad + plot_h}" stroke="#444"/>')
    for index, (label, density) in enumerate(densities.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        points = []
        for b, d in enumerate(density):
            x0, x1 = pad + plot_w * b / bins, pad + plot_w * (b + 1) / bins
            y = pad + plot_h * (1 - d / top)
            points += [f"{x0:.1f},{y:.1f}", f"{x1:.1f},{y:.1f}"]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
        parts.append(
            f'<text x="{pad + 10 + 170 * index}" y="20" fill="{colour}" font-size="13">'
            f"{escape(label)} (n={len(figure.series[label])})</text>"
        )
    parts.append(f'<text x="{pad}" y="{pad + plot_h + 16}" font-size="12">{low:.3g}</text>')
    parts.append(f'<text x="{pad + plot_w}" y="{pad + plot_h + 16}" font-size="12" text-anchor="end">{high:.3g}</text>')
    parts.append(
        f'<text x="{pad + plot_w / 2}" y="{height - 6}" font-size="12" text-anchor="middle">'
        f"{escape(figure.x_label)}</text></svg>"
    )
    return "".join(parts)
