"""Predictions and the numbers computed from them: accuracy, loss, AUC, Tug-of-War, divergences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from iau_cli.core import distributed
from iau_cli.io.data import Split


@dataclass
class Predictions:
    """Per-row cross-entropy loss, correctness and (optionally) softmax probabilities."""

    losses: np.ndarray
    correct: np.ndarray
    probs: np.ndarray | None = None
    margins: np.ndarray | None = None
    """log(p_y / (1 − p_y)) from the logits: z_y − logsumexp of the other logits (no saturation)."""

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.correct) else float("nan")

    @property
    def loss(self) -> float:
        return float(self.losses.mean()) if len(self.losses) else float("nan")


@torch.no_grad()
def predict(
    model: nn.Module,
    split: Split,
    rows: Sequence[int] | np.ndarray | None,
    device: torch.device,
    *,
    batch_size: int = 512,
    keep_probs: bool = False,
    keep_margins: bool = False,
) -> Predictions:
    """Run the model in eval mode over ``rows`` of ``split``, streamed in batches (under torchrun
    each rank scores its block of rows and the results are gathered in row order)."""

    rows = distributed.shard(np.arange(len(split)) if rows is None else rows)
    was_training = model.training
    model.eval()
    losses, correct, probs, margins = [], [], [], []
    try:
        for x, y in split.batches(rows, batch_size, device):
            logits = model(x).float()
            losses.append(F.cross_entropy(logits, y, reduction="none").cpu().numpy())
            correct.append((logits.argmax(1) == y).cpu().numpy())
            if keep_probs:
                probs.append(torch.softmax(logits, 1).cpu().numpy())
            if keep_margins:
                margins.append(true_class_margin(logits.double(), y).cpu().numpy())
    finally:
        model.train(was_training)
    local = [
        np.concatenate(losses) if losses else np.zeros(0, dtype=np.float32),
        np.concatenate(correct) if correct else np.zeros(0, dtype=bool),
        np.concatenate(probs) if probs else None,
        np.concatenate(margins) if margins else None,
    ]
    all_losses, all_correct, all_probs, all_margins = distributed.gather_arrays(local)
    return Predictions(losses=all_losses, correct=all_correct, probs=all_probs, margins=all_margins)


def true_class_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y − logsumexp_{k≠y} z_k, which equals log(p_y / (1 − p_y)) exactly, even where p_y rounds to 1."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - torch.logsumexp(others, dim=1)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve for "positive scores higher", ties counted half (Mann–Whitney U)."""
    positive = np.asarray(positive, dtype=np.float64)
    negative = np.asarray(negative, dtype=np.float64)
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    ordered = np.sort(negative)
    below = np.searchsorted(ordered, positive, side="left")  # negatives under each positive
    through = np.searchsorted(ordered, positive, side="right")  # … and those tied with it
    return float((below + 0.5 * (through - below)).mean() / len(ordered))


def tpr_at_fpr(positive: np.ndarray, negative: np.ndarray, fpr: float) -> float:
    """Largest true-positive rate of a threshold whose false-positive rate is at most ``fpr``."""
    positive = np.asarray(positive, dtype=np.float64)
    negative = np.sort(np.asarray(negative, dtype=np.float64))[::-1]
    allowed = int(np.floor(fpr * len(negative)))
    # A threshold strictly above the (allowed+1)-th highest negative keeps FPR <= fpr.
    threshold = negative[allowed] if allowed < len(negative) else -np.inf
    return float(np.mean(positive > threshold)) if len(positive) else float("nan")


def tug_of_war(accuracies: dict[str, float], reference: dict[str, float]) -> float:
    """ToW = Π over forget, retain, test of (1 − |acc(model) − acc(reference)|)."""
    product = 1.0
    for split in ("forget", "retain", "test"):
        product *= 1.0 - abs(accuracies[split] - reference[split])
    return product


def mean_kl_js(p: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    """Mean KL(p‖q) and Jensen–Shannon divergence between rows of two probability matrices."""
    eps = 1e-12
    p = np.clip(p.astype(np.float64), eps, 1.0)
    q = np.clip(q.astype(np.float64), eps, 1.0)
    kl = np.sum(p * np.log(p / q), axis=1)
    m = 0.5 * (p + q)
    js = 0.5 * np.sum(p * np.log(p / m), axis=1) + 0.5 * np.sum(q * np.log(q / m), axis=1)
    return float(kl.mean()), float(js.mean())
