"""What every unlearning method receives and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from iau_cli.config import RunConfig
from iau_cli.core.gradients import GradDict, loss_grad_sum, mean_of
from iau_cli.io.data import DataBundle, unit_hash
from iau_cli.progress import Progress, no_progress


@dataclass
class UnlearnContext:
    """A request, ready for a method: the model at θ*, its data, and the row sets.

    ``forget_rows`` are the rows of this request the model learned from; ``retain_rows`` are the
    rows it keeps learning from (training rows − this request − everything forgotten before).
    Gradient sums are computed on first use and cached; ``retain_source`` can supply the retain
    sum another way (the gradient ledger) and says in ``retain_path`` which way was taken.
    """

    model: nn.Module
    data: DataBundle
    config: RunConfig
    forget_rows: np.ndarray
    retain_rows: np.ndarray
    val_rows: np.ndarray
    device: torch.device
    batch_size: int = 512
    progress: Progress = no_progress
    retain_source: Callable[[UnlearnContext], tuple[GradDict, str]] | None = None
    retain_path: str = "not needed"
    # Per forget row: φ a model that never saw it gives (iau_cli.core.references); NaN where unknown.
    forget_targets: np.ndarray | None = None
    targets_source: str = "not looked up"
    # The lineage's unlearn events since the model was last trained or retrained (oldest first), as
    # recorded (their ``ran``): a chain of requests checks its held-out accuracy since then.
    chain: list[dict[str, Any]] = field(default_factory=list)
    _forget_sum: GradDict | None = field(default=None, repr=False)
    _retain_sum: GradDict | None = field(default=None, repr=False)
    seconds_gradients: float = 0.0

    def forget_grad_sum(self) -> GradDict:
        """Σ over forget rows of ∇ℓ at the model's parameters as given (θ*)."""
        if self._forget_sum is None:
            import time

            started = time.perf_counter()
            self._forget_sum, _ = loss_grad_sum(
                self.model, self.data.train, self.forget_rows, self.device, batch_size=self.batch_size
            )
            self.seconds_gradients += time.perf_counter() - started
        return self._forget_sum

    def retain_grad_sum(self) -> GradDict:
        """Σ over retain rows of ∇ℓ at θ*: from the ledger when it is usable, else streamed."""
        if self._retain_sum is None:
            import time

            started, counted = time.perf_counter(), self.seconds_gradients
            if self.retain_source is not None:
                self._retain_sum, self.retain_path = self.retain_source(self)
            else:
                self.progress("retain gradient", 0, 1)
                self._retain_sum, _ = loss_grad_sum(
                    self.model, self.data.train, self.retain_rows, self.device, batch_size=self.batch_size
                )
                self.progress("retain gradient", 1, 1)
                self.retain_path = "recomputed over the retain rows"
            # The ledger path times its forget pass itself: count the whole once, not twice.
            self.seconds_gradients = counted + time.perf_counter() - started
        return self._retain_sum

    @property
    def retain_sum_computed(self) -> GradDict | None:
        """The retain gradient sum if a method (or the ledger path) already computed it."""
        return self._retain_sum

    def mean_grads(self) -> tuple[GradDict, GradDict]:
        """(∇ mean CE over forget rows, ∇ mean CE over retain rows) at θ*."""
        return mean_of(self.forget_grad_sum(), len(self.forget_rows)), mean_of(
            self.retain_grad_sum(), len(self.retain_rows)
        )

    def retained_check_rows(self, limit: int = 512) -> np.ndarray:
        """A fixed sample of the rows the model keeps learning from — the ``limit`` of them first by
        id hash, so the same rows (less any forgotten since) at every request of a chain: what a
        rule holds the retained rows' accuracy to (its self-check)."""
        rows = self.retain_rows
        if len(rows) > limit:
            order = np.argsort([unit_hash("iau-retained-check", self.data.train.ids[r]) for r in rows])
            rows = np.sort(rows[order[:limit]])
        return rows

    def calibration_rows(self, limit: int = 2000) -> tuple[Any, np.ndarray]:
        """Held-out rows a method may calibrate on: the calibration half of the test split (the
        other half is what audits and reports measure on), at most ``limit`` of them — a sample by
        id hash, not the first rows of a file that may be sorted by label or time."""
        rows = self.data.test.halves()[0]
        if len(rows) > limit:
            order = np.argsort([unit_hash("iau-calibration-sample", self.data.test.ids[r]) for r in rows])
            rows = np.sort(rows[order[:limit]])
        return self.data.test, rows


@dataclass
class MethodOutput:
    """The unlearned model and what the method wants reported (step size, iterations, …)."""

    model: nn.Module
    details: dict[str, Any] = field(default_factory=dict)
