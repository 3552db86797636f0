"""The gradient ledger's math: Σ of per-sample training-loss gradients over the rows a checkpoint
learns from, whether a stored one is fresh for a model, and the one a child carries forward. What
it is for and how it ages: :mod:`iau_cli.recipes.ledger`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from iau_cli.core.gradients import GradDict, loss_grad_sum
from iau_cli.io.checkpoint import Checkpoint, params_sha256, utc_now
from iau_cli.io.data import DataBundle
from iau_cli.progress import Progress, no_progress


def compute_ledger(
    model: nn.Module,
    data: DataBundle,
    rows: np.ndarray,
    device: torch.device,
    *,
    progress: Progress = no_progress,
    batch_size: int = 512,
) -> tuple[dict[str, Any], GradDict]:
    """A fresh ledger at the model's current parameters: (metadata, gradient-sum tensors)."""
    progress("ledger", 0, 1)
    sums, count = loss_grad_sum(model, data.train, rows, device, batch_size=batch_size)
    progress("ledger", 1, 1)
    meta = {
        "count": count,
        "params_sha256": params_sha256(model.state_dict()),
        "drift": 0.0,
        "time": utc_now(),
    }
    return meta, {name: value.cpu() for name, value in sums.items()}


@dataclass
class LedgerState:
    """How a checkpoint's ledger relates to its current parameters and rows."""

    status: str  # "fresh", "stale", "mismatch" or "absent"
    drift: float
    reason: str


def ledger_state(checkpoint: Checkpoint, model: nn.Module, rows: int) -> LedgerState:
    """Whether the checkpoint's ledger can stand in for the retain gradient of ``model`` (loaded
    from that checkpoint) over ``rows`` rows."""
    meta, tensors = checkpoint.meta.ledger if checkpoint.meta else None, checkpoint.ledger_tensors
    if not meta or not tensors:
        return LedgerState("absent", float("inf"), "the checkpoint has no gradient ledger")
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(tensors) != set(params) or any(tensors[n].shape != p.shape for n, p in params.items()):
        return LedgerState("mismatch", float("inf"), "the ledger's tensors do not match the model's parameters")
    if int(meta.get("count", -1)) != rows:
        return LedgerState(
            "mismatch", float("inf"), f"the ledger covers {meta.get('count')} rows, the model learns from {rows}"
        )
    if meta.get("params_sha256") == checkpoint.params_digest() and meta.get("exact", True):
        return LedgerState("fresh", 0.0, "computed at these parameters")
    drift = float(meta.get("drift", float("inf")))
    return LedgerState(
        "stale",
        drift,
        f"computed at earlier parameters (they moved {drift:.1e} relative); not used, since that says nothing "
        "about the sum's error: iau ledger refresh, or unlearn --ledger-refresh now, makes it fresh",
    )


def carried_ledger(
    retain_sum: GradDict, count: int, params_digest: str, drift: float
) -> tuple[dict[str, Any], GradDict]:
    """The child's ledger after an unlearning step: the retain sum at the parent's parameters, for
    the child's rows, which the child's parameters have moved away from by ``drift``. The sum is
    exact there (a fresh ledger − the forget rows, or a full pass: a stale ledger is never used), so
    it is fresh for the child exactly when ``drift`` is 0. (``exact`` is recorded for readers of
    ledgers that older versions carried from stale ones: those are never taken for fresh.)"""
    meta = {
        "count": int(count),
        "params_sha256": params_digest,
        "drift": float(drift),
        "exact": True,
        "time": utc_now(),
    }
    return meta, {name: value.detach().cpu().clone() for name, value in retain_sum.items()}


def relative_drift(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    """‖θ_after − θ_before‖ / ‖θ_before‖ over the trainable tensors present in both."""
    num = 0.0
    den = 0.0
    for name, old in before.items():
        new = after[name]
        num += float(((new.double().cpu() - old.double().cpu()) ** 2).sum())
        den += float((old.double().cpu() ** 2).sum())
    return (num / den) ** 0.5 if den > 0 else 0.0
