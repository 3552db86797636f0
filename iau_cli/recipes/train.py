"""Runs: train a model into a checkpoint, and rebuild model and data from a checkpoint alone."""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iau_cli import __version__
from iau_cli.config import RunConfig, TrainConfig, from_dict, to_dict
from iau_cli.core import distributed
from iau_cli.core.ledger import compute_ledger
from iau_cli.core.metrics import predict
from iau_cli.core.models import build_model, is_import_path, nonfinite, parameter_count
from iau_cli.core.references import compute_references
from iau_cli.core.training import RowPartition, partition_rows, train_model
from iau_cli.errors import CheckpointError, ConfigError, DataChangedError, ModelError, TrainingError
from iau_cli.io import usercode
from iau_cli.io.checkpoint import (
    Checkpoint,
    CheckpointMeta,
    ForgottenIds,
    NewCheckpoint,
    load_checkpoint,
    params_sha256,
    utc_now,
)
from iau_cli.io.data import DataBundle, load_data
from iau_cli.io.files import Outputs, check_writable
from iau_cli.io.rowprint import masked, unmasked
from iau_cli.progress import Progress, no_progress


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is bad input. Under torchrun this
    also joins the process group and returns this rank's device."""

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name!r}: expected auto, cpu or cuda")
    return distributed.setup(torch.device(name))


def model_meta(config: RunConfig, data: DataBundle, code: dict[str, str] | None = None) -> dict[str, Any]:
    meta = {
        "name": config.model.name,
        "args": config.model.args,
        "input_shape": data.input_shape,
        "num_classes": data.num_classes,
    }
    if is_import_path(config.model.name):  # pin the code that ran (see iau_cli.io.usercode)
        meta["code"] = code if code is not None else usercode.pin(config.model.name, config.model.path)
    return meta


def config_from_meta(meta: CheckpointMeta, source: str) -> RunConfig:
    """The run config a checkpoint was made with (as recorded in its metadata)."""
    train = {k: v for k, v in meta.train.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    mapping = {
        "data": meta.data.get("config", {}),
        "model": {"name": meta.model.get("name"), "args": meta.model.get("args", {}), "path": _code_folder(meta.model)},
        "train": train,
    }
    try:
        return from_dict(RunConfig, mapping, source=f"{source} (metadata)")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def _code_folder(model: dict[str, Any]) -> str | None:
    code = model.get("code")
    return code.get("folder") if isinstance(code, dict) else None


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
    fallback_config: RunConfig | None = None,
) -> Restored:
    """Rebuild model and dataset from a checkpoint alone (or from a plain state dict plus ``config``).

    A user-supplied ``config`` takes precedence over the recorded one (for data that moved) and
    allows its import-path model. An import path recorded in the checkpoint is only imported with
    ``trust_code``. A data fingerprint that differs from the recorded one is refused unless
    ``allow_data_change``. ``fallback_config`` (one already restored, trusted) describes a plain
    state dict when no ``config`` is given (the audit's ``--original`` from the user's own script).
    """
    # Long on purpose: each refusal (user code, data changed, weights that do not fit) is a step of
    # the one restore.
    device = resolve_device(device) if isinstance(device, str) else device
    checkpoint = load_checkpoint(path, require_meta=config is None and fallback_config is None)
    if checkpoint.meta is None and config is None:
        config = fallback_config
    run_config = config if config is not None else config_from_meta(checkpoint.meta, str(path))
    if checkpoint.meta is not None:
        run_config = _as_trained(run_config, checkpoint.meta)
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
        meta = verify_data(meta, data, str(path), allow_data_change=allow_data_change)
        if config is not None:  # the user's config describes the data now; its fingerprint stays
            meta = dataclasses.replace(meta, data=data.describe(fingerprint=meta.data["fingerprint"]))
    allow_import = True
    name, folder = run_config.model.name, run_config.model.path
    if is_import_path(name):
        recorded = checkpoint.meta.model.get("code") if checkpoint.meta is not None else None
        allow_import = usercode.consented(name, folder, named=trust_code or config is not None, recorded=recorded)
        if allow_import:  # the child records the model and code that run now
            code = usercode.pin(name, folder)
            meta = dataclasses.replace(
                meta, model={**meta.model, "name": name, "args": run_config.model.args, "code": code}
            )
    build = (name, run_config.model.args, data.input_shape, data.num_classes)
    check_weights_fit(checkpoint, build, allow_import, str(path), folder)
    model = build_model(*build, allow_import=allow_import, folder=folder)
    try:
        model.load_state_dict(checkpoint.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])
        raise CheckpointError(f"{path}: weights do not fit model {run_config.model.name!r}: {detail}") from None
    model.to(device).eval()
    return Restored(checkpoint=checkpoint, meta=meta, config=run_config, data=data, model=model, device=device)


def restore_for(request: Any, progress: Progress = no_progress) -> Restored:
    """:func:`restore` with what a command's request carries: ``checkpoint``, ``config``,
    ``trust_code``, ``allow_data_change`` and ``device`` (unlearn's and audit's requests)."""
    return restore(
        request.checkpoint,
        config=request.config,
        trust_code=request.trust_code,
        allow_data_change=request.allow_data_change,
        device=request.device,
        progress=progress,
    )


def _as_trained(config: RunConfig, meta: CheckpointMeta) -> RunConfig:
    """What training fixed stays fixed whatever the data holds now: the class count (forgetting
    and deleting a whole class must not shrink the output layer) and statistics computed by
    ``mean: auto`` / ``std: auto`` (recomputing them on fewer rows would re-encode every row)."""
    recorded = meta.data.get("config", {}) if isinstance(meta.data.get("config"), dict) else {}
    changes: dict[str, Any] = {}
    if config.data.num_classes is None:
        changes["num_classes"] = int(meta.model["num_classes"])
    for name in ("mean", "std"):
        if getattr(config.data, name) == "auto" and recorded.get(name) not in (None, "auto"):
            changes[name] = recorded[name]
    return dataclasses.replace(config, data=dataclasses.replace(config.data, **changes)) if changes else config


def verify_data(meta: CheckpointMeta, data: DataBundle, source: str, *, allow_data_change: bool) -> CheckpointMeta:
    """Check that ``data`` is the data the checkpoint was made from — the same files, or the same
    rows less the rows of requests it has since forgotten (a retention job deletes those; see
    :mod:`iau_cli.io.rowprint`). Anything else raises :class:`DataChangedError` unless
    ``allow_data_change``, which records the data as it is now (the child's fingerprint is new,
    never the stale one)."""
    recorded = meta.data.get("fingerprint")
    if isinstance(recorded, dict) and recorded.get("sha256") == data.fingerprint["sha256"]:
        return meta
    if allow_data_change:
        fingerprint = _masked_fingerprint(meta, data)
        pending = _present_forgotten_rows(meta, data, fingerprint.get("mask_nonce"))
        if pending is not None:
            fingerprint["pending_removed"] = pending
        return dataclasses.replace(meta, data={**meta.data, "fingerprint": fingerprint})
    if not isinstance(recorded, dict) or not isinstance(recorded.get("sha256"), str):
        raise DataChangedError(
            f"{source}: records no data fingerprint, so iau cannot tell whether this is its training data; "
            "pass --allow-data-change to proceed (the output then records the data as it is now)"
        )
    try:
        deleted = _deleted_requests(meta, recorded, data)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{source}: iau.data fingerprint is corrupt ({exc})") from None
    if deleted is not None:
        return meta
    error = DataChangedError(
        f"{source}: training data changed since this checkpoint was written (fingerprint {recorded['sha256'][:12]}… "
        f"≠ {data.fingerprint['sha256'][:12]}…), and not only by deleting the rows of the requests it has forgotten, "
        "whole requests, oldest first; pass --allow-data-change to proceed"
    )
    error.data, error.forgotten = data, meta.forgotten
    raise error


def _masked_fingerprint(meta: CheckpointMeta, data: DataBundle) -> dict[str, Any]:
    """The data's fingerprint retaken, its row sums masked under the operator key when there is
    one: the sum of the rows left is the training-time sum less the rows deleted since, so in clear
    it names them (given a backup of the old data); masked it names nothing."""
    import secrets

    since = len(meta.lineage)
    # A fresh nonce per record: two retakes from one parent (sibling branches) must not share a
    # mask, or subtracting one masked sum from the other would unmask their difference.
    nonce = secrets.token_hex(8)
    rows = {
        name: masked(meta.forgotten, digest, f"rows/{since}/{nonce}/{name}")
        for name, digest in data.row_digests().items()
    }
    return {**data.fingerprint, "rows": rows, "since_event": since, "mask_nonce": nonce}


def _present_forgotten_rows(meta: CheckpointMeta, data: DataBundle, nonce: str | None = None) -> dict[str, Any] | None:
    """The (masked) digests of rows the checkpoint forgot that are still in the data when its
    fingerprint is retaken: they may still be deleted later."""

    if not len(meta.forgotten):
        return None
    since = len(meta.lineage)
    found = {}
    for name, split in (("train", data.train), ("test", data.test)):
        rows = [row for row, sample_id in enumerate(split.ids) if meta.forgotten.contains(sample_id)]
        found[name] = masked(meta.forgotten, split.row_digest(rows), _context("pending", since, nonce, name))
    if not any(value["count"] for value in found.values()):
        return None
    return found


def _context(kind: str, since: int, nonce: str | None, split: str) -> str:
    """The mask context of a recorded row digest (records before the nonce existed have none)."""
    return f"{kind}/{since}/{nonce}/{split}" if nonce is not None else f"{kind}/{since}/{split}"


def _deleted_requests(meta: CheckpointMeta, recorded: dict[str, Any], data: DataBundle) -> int | None:
    """How many of the forgetting requests since the fingerprint have had their rows deleted from
    the data (the first k, in order), or None when the data is not the recorded rows less those.
    Rows forgotten before the fingerprint was (re)taken with --allow-data-change and still present
    then (``pending_removed``) may be deleted too, all together."""

    rows = recorded.get("rows")
    if rows is None:
        return None  # written before row digests were recorded: only the same files are accepted
    since = recorded.get("since_event", 1)
    if not isinstance(since, int) or isinstance(since, bool) or not 0 <= since <= len(meta.lineage):
        raise ValueError(f"since_event {since!r} is not an event index")
    nonce = recorded.get("mask_nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise ValueError("mask_nonce is not text")
    now = data.row_digests()
    base = {
        split: unmasked(meta.forgotten, rows[split], _context("rows", since, nonce, split))
        for split in ("train", "test")
    }
    starts = [base]
    pending = recorded.get("pending_removed")
    if pending is not None:
        starts.append(
            {
                split: base[split] - unmasked(meta.forgotten, pending[split], _context("pending", since, nonce, split))
                for split in base
            }
        )
    for expected in starts:
        requests = 0
        if now == expected:
            return requests
        for event in meta.lineage[since:]:
            if "rows_removed" not in event:
                continue
            context = str(event.get("ids_digest", ""))
            expected = dict(expected)
            expected["train"] = expected["train"] - unmasked(meta.forgotten, event["rows_removed"], context)
            if "test_rows_removed" in event:
                removed = unmasked(meta.forgotten, event["test_rows_removed"], context + "/test")
                expected["test"] = expected["test"] - removed
            requests += 1
            if now == expected:
                return requests
    return None


def check_weights_fit(
    checkpoint: Checkpoint, build: tuple[Any, ...], allow_import: bool, source: str, folder: str | None = None
) -> None:
    """Compare the tensors the recorded model would have (built on the ``meta`` device: shapes
    only, nothing allocated) with the file's, before the real model is built: metadata declaring a
    model far larger than the file is refused without allocating it, and weights of the wrong
    dtype (integer weights where the model has floats) are refused rather than cast."""
    try:
        with torch.device("meta"):
            skeleton = build_model(*build, allow_import=allow_import, folder=folder)
    except (ModelError, ConfigError):
        raise
    except Exception:  # noqa: BLE001 - a user model that cannot be built on "meta": the real build checks it
        return
    expected = skeleton.state_dict()
    stored = checkpoint.state_dict
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        what = f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(extra[:3])}"
        raise CheckpointError(f"{source}: weights do not fit model {build[0]!r}: {what}")
    bad = nonfinite(stored)
    if bad:
        raise CheckpointError(f"{source}: has NaN or infinite weights ({bad[0]}); the checkpoint itself is damaged")
    for name, tensor in expected.items():
        if tuple(stored[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{source}: weights do not fit model {build[0]!r}: {name} is {tuple(stored[name].shape)} in the file, "
                f"{tuple(tensor.shape)} in the model its metadata describes"
            )
        if stored[name].dtype != tensor.dtype and not (stored[name].is_floating_point() and tensor.is_floating_point()):
            raise CheckpointError(
                f"{source}: {name} is stored as {stored[name].dtype}, the model needs {tensor.dtype}; not cast"
            )


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
    reference_models: int = 0  # per-row unlearning targets (iau_cli.core.references), a one-off cost
    reference_seconds: float = 0.0
    epoch_losses: list[float] = dataclasses.field(default_factory=list)
    data_sha256: str = ""
    """The data files' fingerprint (what later commands check the data against)."""
    features: list[str] | None = None
    dropped_columns: list[str] = dataclasses.field(default_factory=list)
    """Columns of the training file the model never reads (non-numeric ones, unless data.feature_columns chose)."""
    child: NewCheckpoint | None = dataclasses.field(default=None, repr=False)  # made by train(); not in the JSON

    def to_dict(self) -> dict[str, Any]:
        fields = [f.name for f in dataclasses.fields(self) if f.name != "child"]
        return {name: copy.deepcopy(getattr(self, name)) for name in fields}


def train_meta(
    config: RunConfig, data: DataBundle, model: nn.Module, stats: Any, rows: RowPartition, code: Any = None
) -> CheckpointMeta:
    """Metadata of a freshly trained checkpoint, with its one-event lineage (``code``: the pin of
    user model code, taken before training)."""
    return CheckpointMeta(
        model=model_meta(config, data, code),
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


def make_trained(config: RunConfig, *, device: str = "auto", progress: Progress = no_progress) -> TrainResult:
    """Train the configured model on its data: the result, with the self-describing checkpoint in
    ``result.child`` — nothing written (the CLI stages it; :func:`train` writes it)."""
    torch_device = resolve_device(device)
    data = load_data(config.data, progress=progress)
    config = dataclasses.replace(config, data=data.config)
    rows = partition_rows(data, config.train)
    code = None
    if is_import_path(config.model.name):  # the user named this code: later commands may import it
        code = usercode.pin(config.model.name, config.model.path)  # taken before it runs: what ran
        usercode.remember(code)
    model, stats = train_model(config, data, rows, torch_device, progress=progress)
    bad = nonfinite(model.state_dict())
    if bad:
        raise TrainingError(
            f"training diverged: NaN or infinite weights ({bad[0]}) after {stats.epochs_run} epoch(s); nothing "
            f"written. Lower train.lr (now {config.train.lr:g}) or gr_alpha"
        )
    learned = predict(model, data.train, rows.learn, torch_device)
    test = predict(model, data.test, None, torch_device)
    meta = train_meta(config, data, model, stats, rows, code)
    meta.ledger, ledger_tensors = compute_ledger(model, data, rows.learn, torch_device, progress=progress)
    meta.references, reference_tensors = compute_references(config, data, rows, model, torch_device, progress=progress)
    return TrainResult(
        out="",
        sha256="",  # known once written
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
        reference_models=config.train.references if meta.references else 0,
        reference_seconds=meta.references["seconds"] if meta.references else 0.0,
        epoch_losses=[record["train_loss"] for record in stats.history],
        data_sha256=data.fingerprint["sha256"],
        features=data.feature_names,
        dropped_columns=data.dropped_columns,
        child=NewCheckpoint(model.state_dict(), meta, ledger_tensors, reference_tensors),
    )


def write_checkpoint(
    child: NewCheckpoint, out: str | os.PathLike[str], outputs: Outputs | None = None, *, overwrite: bool = False
) -> str:
    """Stage ``child`` at ``out`` in ``outputs`` (the caller publishes), or, without ``outputs``,
    write it at once (holding the output lock); its sha256. Under ``torchrun`` only rank 0 writes."""
    sha = ""
    if distributed.is_main():
        if outputs is not None:
            sha = child.stage(outputs, out, overwrite=overwrite)
        else:
            with Outputs() as own:
                own.lock(out)
                sha = child.stage(own, out, overwrite=overwrite)
                own.publish()
    distributed.barrier()
    return sha


def train(
    config: RunConfig,
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    device: str = "auto",
    progress: Progress = no_progress,
) -> TrainResult:
    """:func:`make_trained`, and the checkpoint written to ``out``: the library's own output owner.
    An ``out`` that exists (without ``overwrite``) fails before the training, and its lock is held
    for the whole run."""
    check_writable(Path(out), overwrite=overwrite)
    with Outputs() as own:
        if distributed.is_main():
            own.lock(out)
        result = make_trained(config, device=device, progress=progress)
        assert result.child is not None
        result.out, result.sha256 = str(out), write_checkpoint(result.child, out, own, overwrite=overwrite)
        if distributed.is_main():
            own.publish()
    return result
