"""Fisher forgetting (Golatkar, Achille, Soatto 2020): add Gaussian noise whose variance is the
inverse of the diagonal Fisher information of the retained rows, so parameters the retained data
pins down stay put and those it does not (where the forget rows left their mark) are scrambled."""

from __future__ import annotations

from typing import Any

import torch

from iau_cli.core.gradients import per_sample_grads, trainable
from iau_cli.core.methods.base import MethodOutput, UnlearnContext
from iau_cli.core.methods.options import FisherOptions


def fisher_diagonal(ctx: UnlearnContext, rows: Any) -> dict[str, torch.Tensor]:
    """E_x Σ_y p(y|x)·(∇θ log p(y|x))², per parameter, with per-sample gradients (torch.func)."""
    params = trainable(ctx.model)
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    count = 0
    for x, _ in ctx.data.train.batches(rows, ctx.batch_size, ctx.device):
        with torch.no_grad():
            probs = torch.softmax(ctx.model.eval()(x), 1)
        for label in range(probs.shape[1]):
            y = torch.full((len(x),), label, device=ctx.device, dtype=torch.long)
            grads = per_sample_grads(ctx.model, x, y)
            weight = probs[:, label]
            for name, g in grads.items():
                total[name] += torch.einsum("b,b...->...", weight, g**2)
        count += len(x)
    return {name: value / max(count, 1) for name, value in total.items()}


def run(ctx: UnlearnContext, options: FisherOptions) -> MethodOutput:
    import numpy as np

    rows = ctx.retain_rows
    if options.fisher_rows and len(rows) > options.fisher_rows:
        rows = np.sort(np.random.default_rng(options.seed).choice(rows, size=options.fisher_rows, replace=False))
    fisher = fisher_diagonal(ctx, rows)
    generator = torch.Generator(device="cpu").manual_seed(options.seed)
    noise_norm = 0.0
    with torch.no_grad():
        for name, p in trainable(ctx.model).items():
            variance = (options.alpha / (fisher[name] + 1e-12)).clamp(max=options.max_variance)
            noise = variance.sqrt() * torch.randn(p.shape, generator=generator).to(p.device)
            p += noise
            noise_norm += float((noise**2).sum())
    return MethodOutput(ctx.model, {"fisher_rows": int(len(rows)), "noise_norm": noise_norm**0.5})
