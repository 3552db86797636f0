"""The progress protocol between the library and whoever draws it (the CLI's progress bars), and the
recipes' stopwatch."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

Progress = Callable[[str, float, float], None]
"""A progress sink: (task label, completed, total). The CLI draws it; the library only reports."""


def no_progress(label: str, completed: float, total: float) -> None:
    """The default progress sink: report nothing."""


class Stopwatch:
    """Seconds per named step: ``with clock("load"): ...`` adds the block's time to ``clock.seconds["load"]``
    (a step timed twice adds up); :meth:`total` adds the time since the stopwatch was made."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - started

    def carve(self, step: str, seconds: float, *, into: str) -> None:
        """Move ``seconds`` of ``step``'s time to ``into`` (a part timed inside it, counted apart)."""
        self.seconds[step] = self.seconds.get(step, 0.0) - seconds
        self.seconds[into] = self.seconds.get(into, 0.0) + seconds

    def total(self) -> dict[str, float]:
        return {**self.seconds, "total": time.perf_counter() - self.started}
