"""The per-example test of unlearning (U-LiRA: Hayes, Shumailov, Triantafillou, Khalifa and Papernot
2024, "Inexact unlearning needs more careful evaluations to avoid a false sense of privacy").

Population figures (forget accuracy, a loss attack's AUC) can match a retrained model's while each
forget row sits where no retrained model would put it: a rule that pushes every row's confidence
below where retraining leaves it has the right mean loss and is still plain to see row by row.
This test looks row by row. From several seeds' "unlearned" models and "retrained" models (each
retrained without the same forget rows), it fits per row a Gaussian of φ = log(p_y / (1 − p_y))
over the unlearned models and one over the retrained models, leaving one seed out, and asks of that
seed's two models which is which by the likelihood ratio summed over the rows. An accuracy of 0.5
means the attacker cannot tell an unlearned model from a retrained one; 1.0 that it always can.

Pure numpy: φ comes from :func:`iau_cli.core.metrics.true_class_margin` (``predict(..., keep_margins=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PerExampleResult:
    """How well a per-row likelihood-ratio attacker tells unlearned models from retrained ones."""

    accuracy: float
    """Share of held-out models (each seed's unlearned and its retrained model) classified right."""
    seed_accuracy: list[float]
    """Per held-out seed: 0, 0.5 or 1 (both models right, one, none)."""
    row_accuracy: float
    """Share of (held-out model, forget row) whose own likelihood ratio points the right way."""
    seed_row_accuracy: list[float]
    seeds: int
    rows: int


def per_example_test(
    unlearned: np.ndarray, retrained: np.ndarray, *, min_variance: float = 1e-4, relative_floor: float = 0.01
) -> PerExampleResult:
    """The leave-one-seed-out likelihood-ratio test on φ arrays of shape [seeds, forget rows].

    ``unlearned[s]`` and ``retrained[s]`` are the φ of seed s's unlearned and retrained models on
    the same forget rows. For each held-out seed, per row: the mean of φ over the other seeds'
    unlearned models, the mean over their retrained models, and one variance pooled over both
    groups (the two differ in where they put a row, not in how much seeds scatter it). With few
    seeds some rows' variance comes out near zero by chance and would decide the sum alone, so it is
    floored at ``relative_floor`` × the median row's variance (and at ``min_variance``): the floor
    follows the spread measured on these models, whatever scale their φ has.
    """
    unlearned = np.asarray(unlearned, dtype=np.float64)
    retrained = np.asarray(retrained, dtype=np.float64)
    if unlearned.ndim != 2 or unlearned.shape != retrained.shape:
        raise ValueError(f"expected two [seeds, rows] arrays of one shape, got {unlearned.shape} and {retrained.shape}")
    seeds, rows = unlearned.shape
    if seeds < 2 or rows < 1:
        raise ValueError(f"needs at least 2 seeds and 1 row (one seed is held out), got {seeds} and {rows}")
    if not (np.isfinite(unlearned).all() and np.isfinite(retrained).all()):
        raise ValueError("φ must be finite (compute it from the logits: iau_cli.core.metrics.true_class_margin)")
    seed_accuracy, seed_row_accuracy = [], []
    for held_out in range(seeds):
        others = np.arange(seeds) != held_out
        u, t = unlearned[others], retrained[others]
        mean_u, mean_t = u.mean(0), t.mean(0)
        squares = ((u - mean_u) ** 2).sum(0) + ((t - mean_t) ** 2).sum(0)
        variance = squares / max(2 * (seeds - 1) - 2, 1)  # two means estimated
        variance = np.maximum(variance, max(min_variance, relative_floor * float(np.median(variance))))

        # log N(φ; unlearned) − log N(φ; retrained) per row, for the held-out seed's unlearned and
        # retrained model (positive: looks unlearned).
        held = np.stack([unlearned[held_out], retrained[held_out]])
        ratio_u, ratio_t = ((held - mean_t) ** 2 - (held - mean_u) ** 2) / (2 * variance)
        seed_accuracy.append(float((_right(ratio_u.sum()) + _right(-ratio_t.sum())) / 2))
        seed_row_accuracy.append(float((_right(ratio_u).mean() + _right(-ratio_t).mean()) / 2))
    return PerExampleResult(
        accuracy=float(np.mean(seed_accuracy)),
        seed_accuracy=seed_accuracy,
        row_accuracy=float(np.mean(seed_row_accuracy)),
        seed_row_accuracy=seed_row_accuracy,
        seeds=seeds,
        rows=rows,
    )


def _right(score: np.ndarray | float) -> np.ndarray:
    """1 where a score points the right way (positive), 0 where wrong, ½ on a tie."""
    return np.where(np.asarray(score) > 0, 1.0, np.where(np.asarray(score) == 0, 0.5, 0.0))
