"""Running under ``torchrun``: PyTorch's own process group, data sharded per rank, sums combined
with ``all_reduce``. Outside torchrun every helper is a no-op, so one code path serves both.

Rows are split into contiguous per-rank blocks by the rule ``datasets.distributed.
split_dataset_by_node`` applies to map-style datasets (``Dataset.shard(contiguous=True)``), so
gathering per-rank results in rank order restores the original row order. Rank 0 alone writes
checkpoints, reports and JSON.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from iau_cli.environment import env_int
from iau_cli.errors import ConfigError


def launched() -> bool:
    """True inside a multi-process torchrun launch."""

    return env_int("WORLD_SIZE", 1, minimum=1, maximum=1 << 20) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (before the process group is joined: torchrun's RANK)."""
    if active():
        return dist.get_rank()

    return env_int("RANK", 0, maximum=1 << 20) if launched() else 0


def world_size() -> int:
    """The number of processes sharing the work (1 outside torchrun)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes outputs (rank 0, or the only process)."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun prepared (gloo on CPU, nccl on CUDA); returns this rank's device."""
    if not launched() or active():
        return _rank_device(device)
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} not set: run under torchrun "
            "(it sets them), or unset WORLD_SIZE for one process"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    device = _rank_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    return device


def _rank_device(device: torch.device) -> torch.device:
    if device.type == "cuda" and launched() and device.index is None:
        return torch.device("cuda", env_int("LOCAL_RANK", 0, maximum=1 << 16))
    return device


def block(n: int, index: int | None = None, count: int | None = None) -> tuple[int, int]:
    """[start, stop) of shard ``index`` of ``count`` over n items (contiguous, sizes differ by ≤ 1)."""
    index = rank() if index is None else index
    count = world_size() if count is None else count
    size, extra = divmod(n, count)
    start = index * size + min(index, extra)
    return start, start + size + (1 if index < extra else 0)


def shard(rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """This rank's contiguous block of ``rows``."""
    rows = np.asarray(rows, dtype=np.int64)
    start, stop = block(len(rows))
    return rows[start:stop]


def all_reduce_sum(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Sum each tensor over ranks, in place (a no-op in one process)."""
    if active():
        for tensor in values.values():
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return values


def sum_count(count: int, device: torch.device) -> int:
    if not active():
        return count
    total = torch.tensor([count], dtype=torch.int64, device=device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return int(total.item())


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any: a decision (stop now) all ranks must share,
    or the next collective call would wait forever for the rank that left."""
    if not active():
        return flag
    value = torch.tensor([int(flag)], dtype=torch.int64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_(tensors: list[torch.Tensor]) -> None:
    """Give every rank rank 0's values, in place (rank 0 is the one that writes)."""
    if active():
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


def gather_arrays(arrays: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """Concatenate per-rank arrays in rank order (each position of the list separately)."""
    if not active():
        return arrays
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, arrays)
    result: list[np.ndarray | None] = []
    for position in range(len(arrays)):
        parts = [g[position] for g in gathered if g[position] is not None]
        result.append(np.concatenate(parts) if parts else None)
    return result


def barrier() -> None:
    if active():
        dist.barrier()
