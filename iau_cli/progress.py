"""The progress protocol between the library and whoever draws it (the CLI's progress bars)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, float, float], None]
"""A progress sink: (task label, completed, total). The CLI draws it; the library only reports."""


def no_progress(label: str, completed: float, total: float) -> None:
    """The default progress sink: report nothing."""
