"""Influence-function unlearning: the Newton step θ* + (1/n)·H⁻¹·Σ_f ∇ℓ(z, θ*).

H is the Hessian of the training objective at θ*: the mean cross-entropy over the rows the model
learned from, plus the recipe's L2 weight decay, plus ``damping``·I. The textbook step treats the
regularizer's weight as fixed; retraining on fewer rows with a *mean* loss raises it, which
``newton=retain`` (a full Newton step on the retained objective) also accounts for. Three solvers for H⁻¹b:
``exact`` (the whole Hessian; small models only), ``cg`` (conjugate gradient on Hessian-vector
products) and ``lissa`` (the stochastic Neumann-series recursion of Agarwal et al.).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from iau_cli.core.gradients import flatten, trainable
from iau_cli.core.methods.base import MethodOutput, UnlearnContext
from iau_cli.core.methods.options import InfluenceOptions
from iau_cli.errors import UnlearningError


class Objective:
    """The training objective's Hessian at θ*, as products or as a matrix, streamed over rows."""

    def __init__(self, ctx: UnlearnContext, rows: np.ndarray, l2: float, damping: float) -> None:
        self.ctx = ctx
        self.rows = rows
        self.shift = l2 + damping
        self.params = trainable(ctx.model)
        self.size = sum(p.numel() for p in self.params.values())
        ctx.model.eval()

    def _unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        out, offset = {}, 0
        for name, p in self.params.items():
            out[name] = vector[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        return out

    def hvp(self, vector: torch.Tensor, rows: np.ndarray | None = None) -> torch.Tensor:
        """(H + shift·I)·v with H the mean-loss Hessian over ``rows`` (default: all Hessian rows)."""
        rows = self.rows if rows is None else rows
        parts = self._unflatten(vector)
        total = torch.zeros_like(vector)
        for x, y in self.ctx.data.train.batches(rows, self.ctx.batch_size, self.ctx.device):
            loss = F.cross_entropy(self.ctx.model(x), y, reduction="sum")
            grads = torch.autograd.grad(loss, list(self.params.values()), create_graph=True)
            dot = sum((g * parts[name]).sum() for g, name in zip(grads, self.params))
            total += flatten(dict(zip(self.params, torch.autograd.grad(dot, list(self.params.values())))))
        return total / len(rows) + self.shift * vector

    def matrix(self) -> torch.Tensor:
        """The whole (H + shift·I), batch by batch with torch.func."""
        from torch.func import functional_call, hessian

        base = flatten({k: p.detach() for k, p in self.params.items()})
        buffers = dict(self.ctx.model.named_buffers())
        total = torch.zeros(self.size, self.size, dtype=base.dtype, device=base.device)
        for x, y in self.ctx.data.train.batches(self.rows, self.ctx.batch_size, self.ctx.device):

            def batch_loss(flat: torch.Tensor, x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
                logits = functional_call(self.ctx.model, (self._unflatten(flat), buffers), (x,))
                return F.cross_entropy(logits, y, reduction="sum")

            total += hessian(batch_loss)(base)
        return total / len(self.rows) + self.shift * torch.eye(self.size, dtype=base.dtype, device=base.device)


def conjugate_gradient(
    apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iterations: int, tolerance: float
) -> tuple[torch.Tensor, int, str]:
    """Solve A·x = b given only x ↦ A·x, for symmetric A; (x, iterations, why it stopped).

    CG assumes A positive definite. A network's Hessian need not be: at the first direction of
    zero or negative curvature CG stops and returns the iterate it has (the Steihaug rule), instead
    of stepping along a direction that *raises* the quadratic model — which is how plain CG diverged
    on LeNet-5."""
    x = torch.zeros_like(b)
    residual = b.clone()
    direction = residual.clone()
    rs_old = residual @ residual
    target = (tolerance * b.norm()) ** 2
    for step in range(1, iterations + 1):
        a_direction = apply(direction)
        curvature = direction @ a_direction
        if curvature <= 0:
            return x, step - 1, "negative curvature"
        alpha = rs_old / curvature
        x += alpha * direction
        residual -= alpha * a_direction
        rs_new = residual @ residual
        if rs_new <= target:
            return x, step, "converged"
        direction = residual + (rs_new / rs_old) * direction
        rs_old = rs_new
    return x, iterations, "iteration limit"


def relative_residual(objective: Objective, x: torch.Tensor, b: torch.Tensor) -> float:
    """‖(H + shift)·x − b‖ / ‖b‖ over all the Hessian rows: how well a solver solved."""
    norm = float(b.norm())
    return float((objective.hvp(x) - b).norm()) / norm if norm > 0 else 0.0


def lissa(objective: Objective, b: torch.Tensor, options: InfluenceOptions, seed: int) -> tuple[torch.Tensor, int]:
    """H⁻¹b ≈ (1/s)·Σ_j (I − H/s)^j b, with H estimated on a fresh minibatch at every step; stops
    early once the relative residual (checked every 25 steps) is at most ``lissa_tolerance``."""
    rng = np.random.default_rng(seed)
    estimate = b.clone()
    for step in range(1, options.iterations + 1):
        rows = objective.rows
        if options.lissa_batch and options.lissa_batch < len(rows):
            rows = np.sort(rng.choice(rows, size=options.lissa_batch, replace=False))
        estimate = b + estimate - objective.hvp(estimate, rows) / options.lissa_scale
        if not torch.isfinite(estimate).all():
            raise UnlearningError("lissa diverged; raise -O lissa_scale above the Hessian's largest eigenvalue")
        if (
            step % 25 == 0
            and relative_residual(objective, estimate / options.lissa_scale, b) <= options.lissa_tolerance
        ):
            return estimate / options.lissa_scale, step
    return estimate / options.lissa_scale, options.iterations


def run(ctx: UnlearnContext, options: InfluenceOptions) -> MethodOutput:
    params = trainable(ctx.model)
    size = sum(p.numel() for p in params.values())
    if options.solver == "exact" and size > options.max_parameters:
        raise UnlearningError(
            f"influence with the exact Hessian: the model has {size:,} parameters, above the limit "
            f"{options.max_parameters:,} (a {size:,}² matrix); use -O solver=cg or -O solver=lissa"
        )
    learn = np.union1d(ctx.retain_rows, ctx.forget_rows)
    rows = learn if options.newton == "removal" else ctx.retain_rows
    if options.hessian_rows and len(rows) > options.hessian_rows:
        generator = np.random.default_rng(ctx.config.train.seed)
        rows = np.sort(generator.choice(rows, size=options.hessian_rows, replace=False))
    l2 = ctx.config.train.weight_decay
    objective = Objective(ctx, rows, l2, options.damping)
    if options.newton == "removal":
        b = flatten(ctx.forget_grad_sum()) / len(learn)
    else:
        theta = flatten({k: p.detach() for k, p in params.items()})
        b = -(flatten(ctx.retain_grad_sum()) / max(len(ctx.retain_rows), 1) + l2 * theta)
    details: dict[str, Any] = {
        "solver": options.solver,
        "newton": options.newton,
        "hessian_rows": int(len(rows)),
        "parameters": size,
    }
    if options.solver == "exact":
        step = torch.linalg.solve(objective.matrix(), b)
    elif options.solver == "cg":
        step, used, why = conjugate_gradient(objective.hvp, b, options.iterations, options.tolerance)
        details.update(iterations=used, stopped=why)
    else:
        step, used = lissa(objective, b, options, ctx.config.train.seed)
        details["iterations"] = used
    # Every solver reports how well it solved: a step far from H⁻¹b is not the influence step.
    details["residual"] = relative_residual(objective, step, b)
    with torch.no_grad():
        offset = 0
        for p in params.values():
            p += step[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
    details["step_norm"] = float(step.norm())
    return MethodOutput(ctx.model, details)
