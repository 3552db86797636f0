"""Baselines that keep training: fine-tuning on the retained rows, gradient ascent on the forget
rows, and NegGrad+ (ascent on forget and descent on retain in the same step)."""

from __future__ import annotations

import dataclasses

import numpy as np
from torch.nn import functional as F

from iau_cli.core.methods.base import MethodOutput, UnlearnContext
from iau_cli.core.methods.options import AscentOptions, FinetuneOptions
from iau_cli.core.training import RowPartition, batch_slices, fit, make_optimizer


def _lr(options: FinetuneOptions | AscentOptions, recipe_lr: float) -> float:
    """The learning rate that runs: the option when set, else the recipe's (never a falsy fallback)."""
    return recipe_lr if options.lr is None else options.lr


def run_finetune(ctx: UnlearnContext, options: FinetuneOptions) -> MethodOutput:
    recipe = ctx.config.train
    config = dataclasses.replace(recipe, epochs=options.epochs, lr=_lr(options, recipe.lr), val_fraction=0.0)
    rows = RowPartition(learn=ctx.retain_rows, val=np.zeros(0, dtype=np.int64))
    stats = fit(ctx.model, ctx.data, rows, config, ctx.device, progress=ctx.progress)
    ctx.model.eval()
    return MethodOutput(ctx.model, {"epochs": stats.epochs_run, "lr": config.lr})


def _ascent(ctx: UnlearnContext, options: AscentOptions, retain_weight: float) -> MethodOutput:
    recipe = ctx.config.train
    config = dataclasses.replace(recipe, lr=_lr(options, recipe.lr))
    optimizer = make_optimizer(ctx.model, config)
    rng = np.random.default_rng(recipe.seed)
    steps = 0
    ctx.model.train()
    for _ in range(options.epochs):
        order = ctx.forget_rows[rng.permutation(len(ctx.forget_rows))]
        for part in batch_slices(len(order), options.batch_size):
            x, y = ctx.data.train.fetch(np.sort(order[part]), ctx.device)
            loss = -(1 - retain_weight) * F.cross_entropy(ctx.model(x), y)
            if retain_weight > 0 and len(ctx.retain_rows):
                size = min(len(ctx.retain_rows), max(2, part.stop - part.start))
                retain = np.sort(rng.choice(ctx.retain_rows, size=size, replace=False))
                xr, yr = ctx.data.train.fetch(retain, ctx.device)
                loss = loss + retain_weight * F.cross_entropy(ctx.model(xr), yr)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
    ctx.model.eval()
    return MethodOutput(ctx.model, {"steps": steps, "lr": config.lr})


def run_gradient_ascent(ctx: UnlearnContext, options: AscentOptions) -> MethodOutput:
    return _ascent(ctx, options, retain_weight=0.0)


def run_neggrad_plus(ctx: UnlearnContext, options: AscentOptions) -> MethodOutput:
    return _ascent(ctx, options, retain_weight=options.retain_weight)
