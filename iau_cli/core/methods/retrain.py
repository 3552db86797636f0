"""Retraining from scratch on the retained rows: the gold standard every method is judged against.

It reuses the checkpoint's own recipe (architecture, optimizer, epochs, seed, gradient restriction),
so with the same seed it is exactly the model ``iau train`` would have produced without the rows.
"""

from __future__ import annotations

from iau_cli.core.methods.base import MethodOutput, UnlearnContext
from iau_cli.core.methods.options import RetrainOptions
from iau_cli.core.training import RowPartition, train_model


def run(ctx: UnlearnContext, options: RetrainOptions) -> MethodOutput:
    import dataclasses

    config = ctx.config
    if options.seed is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=options.seed))
    rows = RowPartition(learn=ctx.retain_rows, val=ctx.val_rows)
    model, stats = train_model(config, ctx.data, rows, ctx.device, progress=ctx.progress, allow_import=True)
    return MethodOutput(model, {"epochs_run": stats.epochs_run, "seed": config.train.seed})
