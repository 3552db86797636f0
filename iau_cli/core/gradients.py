"""The kernel every method uses: streamed sums of per-sample loss gradients, and per-sample gradients.

Sums are accumulated batch by batch with ``reduction="sum"``, so memory depends on the batch size,
not on the number of rows, and the result equals the full-batch gradient of the summed loss.
Gradients are taken with the model in eval mode (batch-norm running statistics, no dropout): the
loss being unlearned is the model's loss as it predicts, not as it trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from iau_cli.core import distributed
from iau_cli.io.data import Split

GradDict = dict[str, torch.Tensor]


def trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters that unlearning may change, by name."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def loss_grad_sum(
    model: nn.Module,
    split: Split,
    rows: Sequence[int] | np.ndarray | None,
    device: torch.device,
    *,
    batch_size: int = 256,
) -> tuple[GradDict, int]:
    """Σ over ``rows`` of ∇θ CE(model(x_i), y_i), and the number of rows, streamed in batches."""

    params = trainable(model)
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    count = 0
    was_training = model.training
    model.eval()
    rows = distributed.shard(np.arange(len(split)) if rows is None else rows)
    try:
        for x, y in split.batches(rows, batch_size, device):
            loss = F.cross_entropy(model(x), y, reduction="sum")
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for name, grad in zip(params, grads):
                if grad is not None:
                    total[name] += grad
            count += len(y)
    finally:
        model.train(was_training)
    return distributed.all_reduce_sum(total), distributed.sum_count(count, next(iter(total.values())).device)


def mean_of(sums: GradDict, count: int) -> GradDict:
    """A gradient sum over ``count`` rows as the gradient of the mean loss (0 rows: the sum itself)."""
    return {name: value / max(count, 1) for name, value in sums.items()}


def per_sample_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> GradDict:
    """∇θ CE for each row of a batch, with ``torch.func`` (vmap over grad); eval mode."""
    from torch.func import functional_call, grad, vmap

    params = {name: p.detach() for name, p in trainable(model).items()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    was_training = model.training
    model.eval()

    def sample_loss(p: GradDict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    try:
        return vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)
    finally:
        model.train(was_training)


def per_sample_grad_norms(
    model: nn.Module, split: Split, rows: Sequence[int] | np.ndarray, device: torch.device, *, batch_size: int = 256
) -> np.ndarray:
    """‖∇θ ℓ(x_i, y_i)‖₂ for each row (torch.func per-sample gradients), in row order."""

    params = trainable(model)
    size = sum(p.numel() for p in params.values())
    chunk = max(1, min(batch_size, (1 << 25) // max(size, 1)))
    norms = []
    for x, y in split.batches(distributed.shard(rows), chunk, device):
        grads = per_sample_grads(model, x, y)
        squared = sum((g.detach().double() ** 2).flatten(1).sum(1) for g in grads.values())
        norms.append(torch.sqrt(squared).cpu().numpy())
    local = np.concatenate(norms) if norms else np.zeros(0)
    return distributed.gather_arrays([local])[0]


def flatten(grads: GradDict) -> torch.Tensor:
    """Concatenate a gradient dict into one vector (in the dict's order)."""
    return torch.cat([g.reshape(-1) for g in grads.values()])
