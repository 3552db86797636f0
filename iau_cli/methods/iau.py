"""IAU: Influence Approximation Unlearning (Liu, Wu, Lian, Chen, 2025).

Forgetting a point has, to first order, the influence of *adding* its opposite, so unlearning is an
incremental-learning step: gradient ascent on the forget rows (incremental approximation) plus
descent on the retained rows (gradient correction), both evaluated at the checkpoint's parameters
θ*. The direction is fixed by the method; the step is the whole question, so two rules:

``adam-sign`` (the authors' code): one step of a fresh Adam on g = ∇mean CE(retain) − ∇mean
CE(forget), i.e. θ ← θ − lr · g / (|g| + ε), about lr·sign(g) per parameter.

``target`` (ours, the default): the same direction, divided by the retained rows' diagonal
empirical Fisher (a diagonal stand-in for the influence function's H⁻¹, estimated on a fixed-size
sample so its cost does not grow with the data): d ∝ F⁻¹(∇L_forget − c·∇L_retain). The step length
is max(s_forget, s_retain), both found by line searches over forward passes on fixed row sets:
s_forget is the smallest step at which the forget rows look held-out (their error rate reaches the
model's error rate on held-out rows, what a model retrained without them gets in expectation; 0
when the request is too small to expect one error); s_retain
minimizes the retained rows' loss along d (what matters when the rows pulled the model, e.g.
mislabeled rows). Neither search goes past ``max_step`` (relative to ‖θ*‖).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from iau_cli.config import help_field
from iau_cli.gradients import GradDict, empirical_fisher, trainable
from iau_cli.methods import MethodName
from iau_cli.methods.base import MethodOutput, MethodSpec, UnlearnContext
from iau_cli.metrics import predict

ADAM_EPS = 1e-8
FIRST_TRIAL = 1e-3
"""The first trial step (relative to ‖θ‖) of both searches; brackets grow by doubling from it."""


@dataclass(frozen=True)
class IauOptions:
    """Options of the IAU method."""

    rule: Literal["target", "adam-sign"] = help_field(
        "Step rule: target (calibrated) or adam-sign (reference).", default="target"
    )
    step_size: float | None = help_field(
        "adam-sign: Adam learning rate (default 1e-3, as the reference). target: a fixed step length "
        "relative to ‖θ‖, which skips the search.",
        default=None,
    )
    steps: int = help_field(
        "adam-sign: Adam steps (the reference takes 1; later steps recompute both gradients). "
        "target: re-linearized rounds, each recomputing the forget gradient.",
        default=1,
    )
    correction: float = help_field("Weight c of the retain-set gradient correction (0 turns it off).", default=1.0)
    target_error: float | None = help_field(
        "target: the forget-set error rate to reach; default the held-out error rate at θ*.", default=None
    )
    max_step: float = help_field("target: the largest step length allowed, relative to ‖θ‖.", default=0.2)
    precondition: Literal["fisher", "none"] = help_field(
        "target: divide the direction by the retained rows' diagonal empirical Fisher (plus damping), "
        "a diagonal influence-function step that spares parameters the retained data relies on.",
        default="fisher",
    )
    fisher_damping: float = help_field("target: damping added to the Fisher, relative to its mean.", default=1.0)
    retain_sample: int = help_field(
        "target: retained rows sampled (seeded) for the Fisher and the retain-loss line search.", default=256
    )
    search_iterations: int = help_field(
        "target: bisection / golden-section iterations of each step-length search (after the bracket).", default=5
    )

    def check(self) -> list[str]:
        problems = []
        if self.step_size is not None and self.step_size <= 0:
            problems.append("step_size: must be positive")
        if self.steps < 1:
            problems.append("steps: must be at least 1")
        if self.correction < 0:
            problems.append("correction: must be zero or positive")
        if self.target_error is not None and not 0 < self.target_error <= 1:
            problems.append("target_error: must be in (0, 1]")
        if not 0 < self.max_step <= 10:
            problems.append("max_step: must be in (0, 10]")
        if self.fisher_damping <= 0:
            problems.append("fisher_damping: must be positive")
        if self.retain_sample < 1:
            problems.append("retain_sample: must be at least 1")
        if self.search_iterations < 1:
            problems.append("search_iterations: must be at least 1")
        return problems


def run(ctx: UnlearnContext, options: IauOptions) -> MethodOutput:
    if options.rule == "adam-sign":
        return _adam_sign(ctx, options)
    return _target(ctx, options)


def adam_sign_update(params: dict[str, torch.nn.Parameter], direction: GradDict, lr: float) -> None:
    """One step of a fresh Adam on ``direction``: θ ← θ − lr·g/(|g| + ε) (bias-corrected moments)."""
    with torch.no_grad():
        for name, param in params.items():
            g = direction[name]
            param -= lr * g / (g.abs() + ADAM_EPS)


def _adam_sign(ctx: UnlearnContext, options: IauOptions) -> MethodOutput:
    lr = options.step_size if options.step_size is not None else 1e-3
    params = trainable(ctx.model)
    grad_forget, grad_retain = ctx.mean_grads()
    direction = {k: options.correction * grad_retain[k] - grad_forget[k] for k in params}
    adam_sign_update(params, direction, lr)
    if options.steps > 1:
        # Later steps continue the same Adam (moments carried), with gradients at the new parameters.
        from iau_cli.gradients import loss_grad_sum

        optimizer = torch.optim.Adam(list(params.values()), lr=lr, eps=ADAM_EPS)
        _prime_adam(optimizer, params, direction)
        for _ in range(options.steps - 1):
            forget_sum, n_f = loss_grad_sum(ctx.model, ctx.data.train, ctx.forget_rows, ctx.device)
            retain_sum, n_r = loss_grad_sum(ctx.model, ctx.data.train, ctx.retain_rows, ctx.device)
            for name, param in params.items():
                param.grad = options.correction * retain_sum[name] / max(n_r, 1) - forget_sum[name] / max(n_f, 1)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return MethodOutput(ctx.model, {"rule": "adam-sign", "lr": lr, "steps": options.steps})


def _prime_adam(optimizer: torch.optim.Adam, params: dict[str, torch.nn.Parameter], first: GradDict) -> None:
    """Give the optimizer the state it would have after its first step on ``first``."""
    beta1, beta2 = optimizer.defaults["betas"]
    for name, param in params.items():
        optimizer.state[param] = {
            "step": torch.tensor(1.0),
            "exp_avg": (1 - beta1) * first[name].clone(),
            "exp_avg_sq": (1 - beta2) * first[name].clone() ** 2,
        }


class _Probe:
    """Forward passes over fixed rows at trial parameters, streamed from the feature store in
    batches at every measurement (never all of a large forget set on the device at once)."""

    def __init__(self, ctx: UnlearnContext, rows: Any) -> None:
        self.model = ctx.model
        self.split = ctx.data.train
        self.rows = np.asarray(rows, dtype=np.int64)
        self.device = ctx.device
        self.evaluations = 0

    @torch.no_grad()
    def measure(self) -> tuple[int, float]:
        """(errors, mean loss) of the model on the rows."""
        self.evaluations += 1
        errors, loss_sum, count = 0, 0.0, 0
        self.model.eval()
        for x, y in self.split.batches(self.rows, 1024, self.device):
            logits = self.model(x).float()
            errors += int((logits.argmax(1) != y).sum())
            loss_sum += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            count += len(y)
        return errors, loss_sum / max(count, 1)


def _target(ctx: UnlearnContext, options: IauOptions) -> MethodOutput:
    """Step along d ∝ ∇L_f − c·∇L_r by max(s_forget, s_retain):

    s_forget — the smallest step at which the forget rows' error rate reaches the held-out error
    rate; 0 when it already does (rows the model never fit) or when too few rows are asked to expect
    even one error (no forget-set statistic is then worth a step: chasing one costs utility);
    s_retain — the step that minimizes the retain loss along d (a 1-D Newton step toward the
    retrained optimum: what matters when the rows *pulled* the model, e.g. mislabeled rows).
    """
    params = trainable(ctx.model)
    theta_norm = math.sqrt(sum(float((p.detach().double() ** 2).sum()) for p in params.values()))
    heldout_split, heldout_rows = ctx.heldout_rows()
    heldout = predict(ctx.model, heldout_split, heldout_rows, ctx.device)
    n_forget = len(ctx.forget_rows)
    forget_probe = _Probe(ctx, ctx.forget_rows)
    rng = np.random.default_rng(ctx.config.train.seed)
    sample = ctx.retain_rows
    if len(sample) > options.retain_sample:
        sample = np.sort(rng.choice(sample, size=options.retain_sample, replace=False))
    retain_probe = _Probe(ctx, sample)
    target_error = options.target_error if options.target_error is not None else 1.0 - heldout.accuracy
    goal_errors = round(target_error * n_forget)
    details: dict[str, Any] = {
        "rule": "target",
        "heldout_rows": int(len(heldout_rows)),
        "heldout_error": 1.0 - heldout.accuracy,
        "retain_sample": int(len(sample)),
        "precondition": options.precondition,
        "goal": f"{goal_errors} of {n_forget} forget rows misclassified"
        if goal_errors >= 1
        else f"none: {n_forget} row(s) × held-out error {target_error:.3f} rounds to no expected error",
    }

    def forget_met(fraction: float) -> bool:
        errors, _ = forget_probe.measure()
        return errors >= max(1, round(goal_errors * fraction))

    grad_forget, grad_retain = ctx.mean_grads()
    scale = None
    if options.precondition == "fisher":
        fisher = empirical_fisher(ctx.model, ctx.data.train, sample, ctx.device)
        mean_fisher = sum(float(v.sum()) for v in fisher.values()) / max(sum(v.numel() for v in fisher.values()), 1)
        damping = options.fisher_damping * mean_fisher if mean_fisher > 0 else 1.0
        scale = {k: 1.0 / (v + damping) for k, v in fisher.items()}
    total_step = 0.0
    steps_forget, steps_retain = [], []
    for round_index in range(1, options.steps + 1):
        if round_index > 1:
            from iau_cli.gradients import loss_grad_sum

            forget_sum, _ = loss_grad_sum(ctx.model, ctx.data.train, ctx.forget_rows, ctx.device)
            grad_forget = {k: v / max(n_forget, 1) for k, v in forget_sum.items()}
        direction = {k: grad_forget[k] - options.correction * grad_retain[k] for k in params}
        if scale is not None:
            direction = {k: d * scale[k] for k, d in direction.items()}
        norm = math.sqrt(sum(float((d.double() ** 2).sum()) for d in direction.values()))
        if norm == 0.0 or theta_norm == 0.0:
            details["note"] = "the gradient is zero; nothing to move"
            break
        base = {k: p.detach().clone() for k, p in params.items()}
        unit = {k: d / norm for k, d in direction.items()}

        def move(step: float, base: GradDict = base, unit: GradDict = unit) -> None:
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(base[k] + step * theta_norm * unit[k])

        fraction = round_index / options.steps
        remaining = options.max_step - total_step
        if options.step_size is not None:
            step = options.step_size / options.steps
        else:

            def forget_at(step: float, fraction: float = fraction, move: Any = move) -> bool:
                move(step)
                return forget_met(fraction)

            def retain_loss_at(step: float, move: Any = move) -> float:
                move(step)
                return retain_probe.measure()[1]

            if goal_errors < 1 or forget_at(0.0):
                s_forget = 0.0
            else:
                s_forget = _first_met(forget_at, remaining, options.search_iterations)
            s_retain = _argmin(retain_loss_at, remaining, options.search_iterations)
            steps_forget.append(s_forget)
            steps_retain.append(s_retain)
            step = max(s_forget, s_retain)
        move(step)
        total_step += step
    errors, _ = forget_probe.measure()
    reached = (goal_errors < 1 or forget_met(1.0)) if options.step_size is None else None
    details.update(
        step=total_step,
        step_forget=sum(steps_forget),
        step_retain=sum(steps_retain),
        forget_goal_reached=reached,
        forget_errors=errors,
        evaluations=forget_probe.evaluations + retain_probe.evaluations,
    )
    if reached is False:
        details["note"] = f"the forget goal was not reached within max_step={options.max_step}"
    return MethodOutput(ctx.model, details)


def _first_met(met: Any, limit: float, iterations: int) -> float:
    """Smallest step in (0, limit] with ``met(step)`` (doubling, then bisection); ``limit`` if none."""
    low, high = 0.0, min(FIRST_TRIAL, limit)
    while not met(high):
        if high >= limit:
            return limit
        low, high = high, min(high * 2, limit)
    for _ in range(iterations):
        middle = (low + high) / 2
        if met(middle):
            high = middle
        else:
            low = middle
    return high


def _argmin(value: Any, limit: float, iterations: int) -> float:
    """Minimizer on [0, limit] of a function that decreases, if at all, and then increases.

    Doubles the step while the value keeps falling, then narrows the bracket by golden section.
    Returns 0 when the very first trial step does not improve on the start.
    """
    start_value = value(0.0)
    lower, best_step, best_value = 0.0, 0.0, start_value
    step = min(FIRST_TRIAL, limit)
    while True:
        current = value(step)
        if current >= best_value:
            break
        lower, best_step, best_value = best_step, step, current
        if step >= limit:
            return limit
        step = min(step * 2, limit)
    if best_step == 0.0:
        return 0.0
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lower, step
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = value(c), value(d)
    for _ in range(iterations):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = value(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = value(d)
    candidate, candidate_value = (c, fc) if fc <= fd else (d, fd)
    return candidate if candidate_value < best_value else best_step


SPEC = MethodSpec(
    name=MethodName.IAU,
    options=IauOptions,
    run=run,
    summary="IAU: ascent on forget + descent on retain at θ*, one calibrated step (or the reference Adam sign step)",
)
