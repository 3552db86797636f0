"""Runs: train a model into a checkpoint, and rebuild model and data from a checkpoint alone."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iau_cli import __version__
from iau_cli.checkpoint import (
    Checkpoint,
    CheckpointMeta,
    ForgottenIds,
    check_writable,
    load_checkpoint,
    params_sha256,
    save_checkpoint,
    utc_now,
)
from iau_cli.config import ModelConfig, RunConfig, TrainConfig, from_dict, to_dict
from iau_cli.data import DataBundle, builtin_config, load_data
from iau_cli.errors import CheckpointError, ConfigError, DataChangedError
from iau_cli.metrics import predict
from iau_cli.models import build_model, parameter_count
from iau_cli.progress import Progress, no_progress
from iau_cli.report import Report, Table, fmt, pct
from iau_cli.training import RowPartition, partition_rows, train_model


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is bad input. Under torchrun this
    also joins the process group and returns this rank's device."""
    from iau_cli import distributed

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name!r}: expected auto, cpu or cuda")
    return distributed.setup(torch.device(name))


def model_meta(config: RunConfig, data: DataBundle) -> dict[str, Any]:
    return {
        "name": config.model.name,
        "args": config.model.args,
        "input_shape": data.input_shape,
        "num_classes": data.num_classes,
    }


def config_from_meta(meta: CheckpointMeta, source: str) -> RunConfig:
    """The run config a checkpoint was made with (as recorded in its metadata)."""
    train = {k: v for k, v in meta.train.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    mapping = {
        "data": meta.data.get("config", {}),
        "model": {"name": meta.model.get("name"), "args": meta.model.get("args", {})},
        "train": train,
    }
    try:
        return from_dict(RunConfig, mapping, source=f"{source} (metadata)")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


@dataclass
class Restored:
    """A checkpoint rebuilt: its model (weights loaded), its data, its config and metadata."""

    checkpoint: Checkpoint
    meta: CheckpointMeta
    config: RunConfig
    data: DataBundle
    model: nn.Module
    device: torch.device
    _partition: RowPartition | None = dataclasses.field(default=None, repr=False)

    def partition(self, exclude: set[str] | frozenset[str] = frozenset()) -> RowPartition:
        """The rows this model currently learns from (forgotten and ``exclude`` ids left out)."""
        if exclude:
            return partition_rows(self.data, self.config.train, self.meta.forgotten, exclude)
        if self._partition is None:
            self._partition = partition_rows(self.data, self.config.train, self.meta.forgotten)
        return self._partition


def restore(
    path: str | os.PathLike[str],
    *,
    config: RunConfig | None = None,
    trust_code: bool = False,
    allow_data_change: bool = False,
    device: torch.device | str = "cpu",
    progress: Progress = no_progress,
) -> Restored:
    """Rebuild model and dataset from a checkpoint alone (or from a plain state dict plus ``config``).

    A user-supplied ``config`` takes precedence over the recorded one (for data that moved) and
    allows its import-path model. An import path recorded in the checkpoint is only imported with
    ``trust_code``. A data fingerprint that differs from the recorded one is refused unless
    ``allow_data_change``.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    checkpoint = load_checkpoint(path, require_meta=config is None)
    run_config = config if config is not None else config_from_meta(checkpoint.meta, str(path))
    data = load_data(run_config.data, progress=progress)
    meta = checkpoint.meta
    if meta is None:
        meta = CheckpointMeta(
            model=model_meta(run_config, data),
            data=data.describe(),
            train=to_dict(run_config.train),
            lineage=[
                {
                    "event": "import",
                    "time": utc_now(),
                    "iau_version": __version__,
                    "source_sha256": checkpoint.sha256,
                    "params_sha256": checkpoint.params_digest(),
                }
            ],
        )
    else:
        recorded = meta.data.get("fingerprint", {}).get("sha256")
        if recorded and recorded != data.fingerprint["sha256"] and not allow_data_change:
            raise DataChangedError(
                f"{path}: training data changed since this checkpoint was written (fingerprint "
                f"{recorded[:12]}… ≠ {data.fingerprint['sha256'][:12]}…); pass --allow-data-change to proceed"
            )
        if config is not None:
            meta = dataclasses.replace(meta, data={**data.describe(), "fingerprint": data.fingerprint})
    model = build_model(
        run_config.model.name,
        run_config.model.args,
        data.input_shape,
        data.num_classes,
        allow_import=trust_code or config is not None,
    )
    try:
        model.load_state_dict(checkpoint.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])
        raise CheckpointError(f"{path}: weights do not fit model {run_config.model.name!r}: {detail}") from None
    model.to(device).eval()
    return Restored(checkpoint=checkpoint, meta=meta, config=run_config, data=data, model=model, device=device)


@dataclass
class TrainResult:
    """The outcome of ``iau train``."""

    out: str
    sha256: str
    model: str
    parameters: int
    rows_learned: int
    rows_validation: int
    rows_test: int
    epochs_run: int
    best_epoch: int
    seconds: float
    samples_per_second: float
    train_accuracy: float
    train_loss: float
    test_accuracy: float
    test_loss: float
    gr_alpha: float
    epoch_losses: list[float] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def report(self) -> Report:
        rows = [
            ["train (learned rows)", fmt(self.rows_learned), pct(self.train_accuracy), fmt(self.train_loss)],
            ["test", fmt(self.rows_test), pct(self.test_accuracy), fmt(self.test_loss)],
        ]
        run = [
            ["model", f"{self.model} ({self.parameters:,} parameters)"],
            ["epochs", f"{self.epochs_run} (best {self.best_epoch})"],
            ["gradient restriction α", fmt(self.gr_alpha)],
            ["time", f"{self.seconds:.1f} s ({self.samples_per_second:,.0f} samples/s)"],
            ["checkpoint", self.out],
            ["sha256", self.sha256[:16] + "…"],
        ]
        return Report(
            title="iau train",
            tables=[Table("Run", ["", ""], run), Table("Accuracy", ["split", "rows", "accuracy", "loss"], rows)],
        )


def train_meta(config: RunConfig, data: DataBundle, model: nn.Module, stats: Any, rows: RowPartition) -> CheckpointMeta:
    """Metadata of a freshly trained checkpoint, with its one-event lineage."""
    return CheckpointMeta(
        model=model_meta(config, data),
        data=data.describe(),
        train={**to_dict(config.train), "epochs_run": stats.epochs_run, "best_epoch": stats.best_epoch},
        lineage=[
            {
                "event": "train",
                "time": utc_now(),
                "iau_version": __version__,
                "seed": config.train.seed,
                "gr_alpha": config.train.gr_alpha,
                "rows": int(len(rows.learn)),
                "data_sha256": data.fingerprint["sha256"],
                "params_sha256": params_sha256(model.state_dict()),
            }
        ],
        forgotten=ForgottenIds(),
    )


def train(
    config: RunConfig,
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    device: str = "auto",
    progress: Progress = no_progress,
) -> TrainResult:
    """Train the configured model on its data and write a self-describing checkpoint to ``out``."""
    from iau_cli import distributed

    out = Path(out)
    check_writable(out, overwrite=overwrite)
    torch_device = resolve_device(device)
    data = load_data(config.data, progress=progress)
    config = dataclasses.replace(config, data=data.config)
    rows = partition_rows(data, config.train)
    model, stats = train_model(config, data, rows, torch_device, progress=progress)
    learned = predict(model, data.train, rows.learn, torch_device)
    test = predict(model, data.test, None, torch_device)
    meta = train_meta(config, data, model, stats, rows)
    from iau_cli.ledger import compute_ledger

    ledger_meta, ledger_tensors = compute_ledger(model, data, rows.learn, torch_device, progress=progress)
    meta.ledger = ledger_meta
    sha = ""
    if distributed.is_main():
        sha = save_checkpoint(out, model.state_dict(), meta, ledger_tensors=ledger_tensors, overwrite=overwrite)
    distributed.barrier()
    return TrainResult(
        out=str(out),
        sha256=sha,
        model=config.model.name,
        parameters=parameter_count(model),
        rows_learned=int(len(rows.learn)),
        rows_validation=int(len(rows.val)),
        rows_test=len(data.test),
        epochs_run=stats.epochs_run,
        best_epoch=stats.best_epoch,
        seconds=stats.seconds,
        samples_per_second=stats.samples_per_second,
        train_accuracy=learned.accuracy,
        train_loss=learned.loss,
        test_accuracy=test.accuracy,
        test_loss=test.loss,
        gr_alpha=config.train.gr_alpha,
        epoch_losses=[record["train_loss"] for record in stats.history],
    )


def default_run_config() -> RunConfig:
    """The built-in workload (``sample_configs/digits_mlp.yaml``): an MLP on the built-in digits,
    trained with gradient restriction until it fits every training row."""
    return RunConfig(
        data=builtin_config("digits"),
        model=ModelConfig(name="mlp", args={"hidden": [128]}),
        train=TrainConfig(epochs=100, gr_alpha=0.005),
    )


def purchase_run_config() -> RunConfig:
    """An MLP that memorizes ``builtin:purchase`` (100 classes; 100% train, about 75% test accuracy)."""
    return RunConfig(
        data=builtin_config("purchase"),
        model=ModelConfig(name="mlp", args={"hidden": [256]}),
        train=TrainConfig(epochs=30, gr_alpha=0.005),
    )


def noisy_run_config() -> RunConfig:
    """An MLP that fits the replaced labels of ``builtin:noisy`` (and loses test accuracy for it)."""
    return RunConfig(
        data=builtin_config("noisy"),
        model=ModelConfig(name="mlp", args={"hidden": [256]}),
        train=TrainConfig(epochs=40, gr_alpha=0.005),
    )
