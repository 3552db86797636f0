"""The training loop, with gradient restriction (GR) and optional early stopping.

GR adds α·‖∇θ ℓ‖₂ to the batch loss, where ℓ is the batch-mean cross-entropy. The reference
aggregation ("per-tensor") sums the L2 norms of each parameter tensor's gradient; "global" takes the
norm of the whole gradient vector. Either needs the gradient as part of the graph, so each step
costs a double backward.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from iau_cli.config import RunConfig, TrainConfig
from iau_cli.core import distributed
from iau_cli.core.metrics import predict
from iau_cli.core.models import build_model
from iau_cli.errors import DataError
from iau_cli.io.checkpoint import ForgottenIds
from iau_cli.io.data import DataBundle, unit_hash
from iau_cli.progress import Progress, no_progress

PROGRESS_INTERVAL = 0.2
"""Seconds between progress reports from a loop (a report per step would cost more than the step)."""


@dataclass
class RowPartition:
    """Which train-split rows the model learns from, and which are held out for validation."""

    learn: np.ndarray
    val: np.ndarray


def partition_rows(
    data: DataBundle,
    config: TrainConfig,
    forgotten: ForgottenIds | None = None,
    exclude: Iterable[str] = (),
) -> RowPartition:
    """Train rows minus forgotten and excluded ids, split into learn/validation by id hash.

    The validation draw depends only on each row's own id and the seed, so removing rows never
    moves another row between learn and validation: a retrained model sees the same split.
    """
    excluded = set(exclude)
    keep = np.array(
        [i not in excluded and not (forgotten is not None and forgotten.contains(i)) for i in data.train.ids],
        dtype=bool,
    )
    if config.val_fraction > 0:
        key = f"iau-val-{config.seed}"
        is_val = np.array([unit_hash(key, i) < config.val_fraction for i in data.train.ids], dtype=bool)
    else:
        is_val = np.zeros(len(data.train), dtype=bool)
    return RowPartition(learn=np.flatnonzero(keep & ~is_val), val=np.flatnonzero(keep & is_val))


def gradient_restricted_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, alpha: float, norm: str = "per-tensor"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, cross-entropy) with total = CE + α·‖∇θ CE‖ (per-tensor or global norm)."""
    ce = F.cross_entropy(model(x), y)
    if alpha == 0:
        return ce, ce
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(ce, params, create_graph=True, allow_unused=True)
    return ce + alpha * gradient_penalty([g for g in grads if g is not None], norm), ce


def gradient_penalty(grads: list[torch.Tensor], norm: str) -> torch.Tensor:
    """‖∇‖: the sum of per-tensor L2 norms ("per-tensor") or one L2 norm over all ("global")."""
    norms = [torch.linalg.vector_norm(g) for g in grads]
    if norm == "global":
        # The norm of the per-tensor norms: vector_norm's derivative at a zero gradient is 0 (a
        # square root of a sum of squares would give NaN there).
        return torch.linalg.vector_norm(torch.stack(norms))
    return sum(norms)


def _data_parallel_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, global_size: int, alpha: float, norm: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of the global batch's GR loss, and its CE sum.

    Each rank's CE sum is divided by the *global* batch size, so the ranks' losses add up to the
    global batch mean. The penalty needs the global batch's gradient inside the graph: a
    differentiable all_reduce sums the ranks' gradients, and each rank adds 1/world of the
    (identical) penalty, so that after the gradients are summed over ranks the step equals one
    process's step on the whole batch.
    """
    from torch.distributed.nn.functional import all_reduce

    ce_sum = F.cross_entropy(model(x), y, reduction="sum")
    ce_share = ce_sum / global_size
    params = [p for p in model.parameters() if p.requires_grad]
    local = torch.autograd.grad(ce_share, params, create_graph=True)
    penalty = gradient_penalty([all_reduce(g) for g in local], norm)
    return ce_share + alpha * penalty / distributed.world_size(), ce_sum.detach()


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Batch boundaries; a trailing batch of one row joins the previous one (batch norm needs two)."""
    starts = list(range(0, n, batch_size))
    slices = [slice(s, min(s + batch_size, n)) for s in starts]
    if len(slices) > 1 and slices[-1].stop - slices[-1].start == 1:
        slices[-2:] = [slice(slices[-2].start, n)]
    return slices


@dataclass
class TrainStats:
    """What happened during training."""

    epochs_run: int
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    samples: int = 0

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


def fit(
    model: nn.Module,
    data: DataBundle,
    rows: RowPartition,
    config: TrainConfig,
    device: torch.device,
    *,
    progress: Progress = no_progress,
) -> TrainStats:
    """Train ``model`` in place on ``rows.learn``; early-stop on ``rows.val`` when it is not empty."""
    # Long on purpose: the training loop itself (epochs, batches, GR, early stopping share its
    # state); timed against a plain loop in benchmarks/throughput.py.
    if len(rows.learn) == 0:
        raise DataError("no rows left to train on (every training row is forgotten or held out)")

    rng = np.random.default_rng(config.seed)
    optimizer = make_optimizer(model, config)
    parallel = distributed.active()
    step_module: nn.Module = model
    if parallel and config.gr_alpha == 0:
        from torch.nn.parallel import DistributedDataParallel

        step_module = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    stats = TrainStats(epochs_run=0, best_epoch=0)
    best_val = float("inf")
    best_state = None
    stale_epochs = 0
    started = time.perf_counter()
    slices = batch_slices(len(rows.learn), config.batch_size)
    total_steps = config.epochs * len(slices)
    reported = time.monotonic()
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rows.learn[rng.permutation(len(rows.learn))]
        running = torch.zeros((), dtype=torch.float64, device=device)
        for step, part in enumerate(slices, start=1):
            batch = np.sort(order[part])
            # Under torchrun each rank takes its block of the same global batch.
            x, y = data.train.fetch(distributed.shard(batch), device)
            optimizer.zero_grad(set_to_none=True)
            if not parallel:
                loss, ce = gradient_restricted_loss(model, x, y, config.gr_alpha, config.gr_norm)
                loss.backward()
                running += ce.detach() * len(y)
            elif config.gr_alpha == 0:
                # DistributedDataParallel averages gradients over ranks: scale to the global mean.
                ce_sum = F.cross_entropy(step_module(x), y, reduction="sum")
                (ce_sum * distributed.world_size() / len(batch)).backward()
                running += ce_sum.detach()
            else:
                loss, ce_sum = _data_parallel_loss(model, x, y, len(batch), config.gr_alpha, config.gr_norm)
                loss.backward()
                distributed.all_reduce_sum({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
                running += ce_sum
            optimizer.step()
            stats.samples += len(batch)
            if time.monotonic() - reported >= PROGRESS_INTERVAL:
                reported = time.monotonic()
                last = f" · loss {stats.history[-1]['train_loss']:.4f}" if stats.history else ""
                progress(f"train · epoch {epoch}/{config.epochs}{last}", (epoch - 1) * len(slices) + step, total_steps)
        running = distributed.all_reduce_sum({"loss": running})["loss"]
        record = {"epoch": float(epoch), "train_loss": float(running) / len(rows.learn)}
        stats.epochs_run = epoch
        if len(rows.val):
            val_loss = predict(model, data.train, rows.val, device).loss
            record["val_loss"] = val_loss
            if val_loss < best_val - 1e-6:
                best_val, stats.best_epoch, stale_epochs = val_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale_epochs += 1
        else:
            stats.best_epoch = epoch
        stats.history.append(record)
        if len(rows.val) and stale_epochs >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    stats.seconds = time.perf_counter() - started
    progress("train", total_steps, total_steps)
    return stats


def train_model(
    config: RunConfig,
    data: DataBundle,
    rows: RowPartition,
    device: torch.device,
    *,
    progress: Progress = no_progress,
    allow_import: bool = True,
) -> tuple[nn.Module, TrainStats]:
    """Seed, build and train a fresh model: the recipe ``train`` and ``retrain`` share."""
    torch.manual_seed(config.train.seed)
    model = build_model(
        config.model.name,
        config.model.args,
        data.input_shape,
        data.num_classes,
        allow_import=allow_import,
        folder=config.model.path,
    ).to(device)
    stats = fit(model, data, rows, config.train, device, progress=progress)
    model.eval()
    return model, stats
