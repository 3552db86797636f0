"""The audit's statistics: class-weighted figures over every held-out row, their null
distributions, Holm's step-down correction over the checks, and the smallest effect each check
detects at its size. Pure numpy (no torch): the audit computes per-row figures, this module
decides.

Null hypothesis of the removal checks: *the audited model never saw the forget rows.* Under it, a
forget row of class c is one more row of class c that the model never saw, exchangeable with the
held-out rows of class c (train and test are draws from one population). So the null distribution
of any two-sample figure is the one obtained by reassigning, class by class, which rows are
"forget" and which "held-out" (a stratified permutation test). Held-out rows are weighted to the
forget rows' class mix, so that a forget set of hard classes is not compared with easy ones.

Against a retrained reference the rows are the same and the models differ: the null is that the
audited model could have been the reference (its per-row figures exchangeable with the
reference's), tested by flipping the sign of per-row differences (McNemar's exact test for
accuracy).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

PERMUTATIONS = 2000
"""Random reassignments behind a null distribution (fewer for very large groups, never below 1,000)."""
POWER_Z = 0.8416
"""z of 80% power: the smallest detectable effect is (z_level + POWER_Z) null standard deviations."""
_WORK = 4_000_000  # matrix entries per chunk of permutations


def normal_quantile(p: float) -> float:
    """Φ⁻¹(p) by bisection on erfc (no scipy); |error| < 1e-9 for p in (1e-15, 1 − 1e-15)."""
    low, high = -40.0, 40.0
    for _ in range(100):
        mid = (low + high) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def normal_upper(z: float) -> float:
    """P(Z ≥ z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class Groups:
    """The forget rows' and the held-out pool's classes, and the weights that give the pool the
    forget rows' class mix. Forget rows of a class the pool lacks cannot be matched: ``matched``
    masks them out of every figure."""

    forget_labels: np.ndarray
    pool_labels: np.ndarray

    @property
    def classes(self) -> np.ndarray:
        return np.intersect1d(np.unique(self.forget_labels), np.unique(self.pool_labels))

    @property
    def matched(self) -> np.ndarray:
        return np.isin(self.forget_labels, self.classes)

    @property
    def pool_weights(self) -> np.ndarray:
        """Weight per pool row; they sum to 1, and class c gets the forget rows' share of c."""
        matched = self.forget_labels[self.matched]
        weights = np.zeros(len(self.pool_labels), dtype=np.float64)
        for label in self.classes:
            in_pool = self.pool_labels == label
            weights[in_pool] = np.mean(matched == label) / in_pool.sum()
        return weights


def weighted_auc(member: np.ndarray, pool: np.ndarray, weights: np.ndarray) -> float:
    """P(a member's score > a pool row's), pool rows weighted, ties counted half."""
    if len(member) == 0 or len(pool) == 0:
        return float("nan")
    return float(member_ranks(member, pool, weights).mean())


def member_ranks(member: np.ndarray, pool: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per member: the weighted share of pool rows it scores above (ties half). Their mean is the
    weighted AUC; each is that row's "member-likeness" percentile among rows never seen."""
    order = np.argsort(pool, kind="mergesort")
    sorted_pool = np.asarray(pool, dtype=np.float64)[order]
    cumulative = np.concatenate([[0.0], np.cumsum(weights[order])])
    below = cumulative[np.searchsorted(sorted_pool, member, side="left")]
    up_to = cumulative[np.searchsorted(sorted_pool, member, side="right")]
    return (below + up_to) / 2 / max(cumulative[-1], 1e-300)


@dataclass
class Test:
    """One statistical check: the observed figure, its null centre and spread, and p-values."""

    statistic: float
    center: float
    null_sd: float
    p_two_sided: float
    p_greater: float  # evidence that the forget rows look *more* seen than under the null
    degenerate: bool = False
    """The figure cannot vary under the null (every arrangement of the rows gives the same value):
    the check could not have failed. (Paired rows that agree exactly are evidence, not this.)"""

    p_less: float | None = None  # evidence that they look *less* seen (where the test computed it)

    def p_value(self, sided: str) -> float:
        return self.p_greater if sided == "greater" else self.p_two_sided

    def detectable(self, level: float, sided: str) -> float:
        """The smallest shift of the statistic detected with 80% probability at ``level``."""
        z = normal_quantile(1 - (level if sided == "greater" else level / 2))
        return self.null_sd * (z + POWER_Z)


def _from_null(observed: float, null: np.ndarray, center: float, *, paired: bool = False) -> Test:
    """p-values of ``observed`` from null samples: the share as extreme (plus one). Beyond every
    sample, the share only bounds p by 1/(samples + 1); there the normal tail of the null's mean
    and spread estimates it (a tail a few thousand samples cannot reach)."""
    count = len(null) + 1
    sd = float(null.std())
    above, below = int(np.sum(null >= observed - 1e-12)), int(np.sum(null <= observed + 1e-12))
    greater, less = (1 + above) / count, (1 + below) / count
    if sd > 0:
        z = (observed - float(null.mean())) / sd
        greater = min(greater, normal_upper(z)) if above == 0 else greater
        less = min(less, normal_upper(-z)) if below == 0 else less
    two = min(1.0, 2 * min(greater, less))
    return Test(observed, center, sd, two, greater, degenerate=sd == 0 and not paired, p_less=less)


def jointly(first: Test, second: Test) -> Test:
    """Both tests must reject, in the same direction: the intersection–union test, whose one-sided
    p-values are the larger of the two (its false-alarm rate is at most either test's, whatever
    their dependence — Berger 1982). Reported as ``first``: its statistic, spread and power."""
    assert first.p_less is not None and second.p_less is not None
    greater, less = max(first.p_greater, second.p_greater), max(first.p_less, second.p_less)
    two = min(1.0, 2 * min(greater, less))
    return dataclasses.replace(first, p_two_sided=two, p_greater=greater, p_less=less)


def _permutations(n_rows: int) -> int:
    return int(min(PERMUTATIONS, max(1000, 40 * _WORK // max(n_rows, 1))))


def stratified_auc_test(member: np.ndarray, pool: np.ndarray, groups: Groups, rng: np.random.Generator) -> Test:
    """Weighted AUC of ``member`` over ``pool`` scores and its null: within each class, which
    rows are members is reassigned at random (sizes kept, so the weights stay)."""
    keep = groups.matched
    member, labels_m = np.asarray(member, dtype=np.float64)[keep], groups.forget_labels[keep]
    weights = groups.pool_weights
    observed = weighted_auc(member, pool, weights)
    scores = np.concatenate([member, np.asarray(pool, dtype=np.float64)])
    labels = np.concatenate([labels_m, groups.pool_labels])
    order = np.argsort(scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    # Tie groups in sorted order: a member's share counts rows below its group, plus half its group.
    starts = np.searchsorted(scores, scores, side="left")
    ends = np.searchsorted(scores, scores, side="right")
    weight_of = {label: float(weights[groups.pool_labels == label][0]) for label in groups.classes}
    row_weight = np.array([weight_of.get(label, 0.0) for label in labels])
    per_class = [(np.flatnonzero(labels == label), int(np.sum(labels_m == label))) for label in groups.classes]
    n_rows, n_members = len(scores), len(member)
    total = _permutations(n_rows)
    chunk = max(1, _WORK // max(n_rows, 1))
    null = []
    for first in range(0, total, chunk):
        size = min(chunk, total - first)
        is_member = np.zeros((size, n_rows), dtype=bool)
        for positions, count in per_class:
            ranks = rng.random((size, len(positions))).argsort(axis=1)
            is_member[:, positions] = ranks < count
        held_out = np.where(is_member, 0.0, row_weight)
        cumulative = np.concatenate([np.zeros((size, 1)), np.cumsum(held_out, axis=1)], axis=1)
        share = (cumulative[:, starts] + cumulative[:, ends]) / 2
        null.append(np.where(is_member, share, 0.0).sum(axis=1) / n_members)
    return _from_null(observed, np.concatenate(null), 0.5)


def stratified_accuracy_test(
    forget_correct: np.ndarray, pool_correct: np.ndarray, groups: Groups, rng: np.random.Generator
) -> Test:
    """Forget accuracy minus the weighted held-out accuracy, and its exact null by simulation:
    per class, the forget rows' number correct is hypergeometric given the class's total."""
    keep = groups.matched
    forget_correct, labels_m = np.asarray(forget_correct, dtype=bool)[keep], groups.forget_labels[keep]
    n_f = len(forget_correct)
    weights = groups.pool_weights
    observed = float(forget_correct.mean() - np.sum(weights * pool_correct))
    total = PERMUTATIONS * 5  # cheap: one draw per class
    null = np.zeros(total)
    for label in groups.classes:
        in_forget = labels_m == label
        in_pool = groups.pool_labels == label
        n_fc, n_pc = int(in_forget.sum()), int(in_pool.sum())
        correct = int(forget_correct[in_forget].sum() + pool_correct[in_pool].sum())
        k = rng.hypergeometric(correct, n_fc + n_pc - correct, n_fc, size=total)
        null += k / n_f - (n_fc / n_f) * (correct - k) / n_pc
    return _from_null(observed, null, 0.0)


def paired_test(differences: np.ndarray, rng: np.random.Generator) -> Test:
    """Mean of per-row differences (audited − reference) against sign flips of each row's
    difference; for differences of correctness (−1, 0, 1) this is McNemar's exact test."""
    differences = np.asarray(differences, dtype=np.float64)
    observed = float(differences.mean())
    nonzero = differences[differences != 0]
    if len(nonzero) == 0:
        return Test(observed, 0.0, 0.0, 1.0, 1.0)
    total = _permutations(len(nonzero))
    chunk = max(1, _WORK // len(nonzero))
    null = []
    for first in range(0, total, chunk):
        size = min(chunk, total - first)
        signs = rng.integers(0, 2, size=(size, len(nonzero))) * 2 - 1
        null.append((signs * nonzero).sum(axis=1) / len(differences))
    return _from_null(observed, np.concatenate(null), 0.0, paired=True)


def drop_test(baseline_correct: np.ndarray, audited_correct: np.ndarray, allowed: float) -> Test:
    """Test accuracy lost (baseline − audited, the same rows) beyond ``allowed``: one-sided, with
    the paired difference's own standard error. ``p_greater`` is the evidence of a larger loss."""
    differences = np.asarray(baseline_correct, dtype=np.float64) - np.asarray(audited_correct, dtype=np.float64)
    n = len(differences)
    drop = float(differences.mean()) if n else 0.0
    se = float(differences.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    if se == 0:
        p = 0.0 if drop > allowed else 1.0
    else:
        p = normal_upper((drop - allowed) / se)
    return Test(drop, allowed, se, p, p)


def holm(p_values: list[float], alpha: float) -> list[tuple[bool, float]]:
    """Holm's step-down procedure: per p-value, (rejected, the level it was held to). The chance
    that any true null is rejected stays ≤ alpha whatever the dependence between the tests."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    result: list[tuple[bool, float]] = [(False, alpha / m)] * m
    still = True
    for rank, i in enumerate(order):
        level = alpha / (m - rank)
        still = still and p_values[i] <= level
        result[i] = (still, level)
    return result
