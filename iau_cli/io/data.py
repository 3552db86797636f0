"""Datasets on local files, the sample-id index and the built-in datasets (forget-id files: :mod:`iau_cli.io.ids`).

Rows are read with Hugging Face ``datasets``, checked against the data contract, and encoded once
per dataset version into a feature store (:mod:`iau_cli.io.store`): in memory when it fits the memory
budget, memory-mapped from disk otherwise, and cached so that the next command on the same data
starts from the encoded rows. Batches are slices or index-selects of that store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iau_cli.config import BUILTIN_PREFIX, DataConfig, to_dict
from iau_cli.errors import DataError
from iau_cli.io.rowprint import RowDigest, digest_rows
from iau_cli.io.store import (
    STORE_FORMAT,
    EncodedSplit,
    FeatureStore,
    cache_key,
    encode_split,
    load_entry,
    memory_budget,
    staging_for,
)
from iau_cli.progress import Progress, no_progress

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "builtin"
BUILTIN_DATASETS = {
    name: {"train": BUILTIN_DIR / f"{name}_train.parquet", "test": BUILTIN_DIR / f"{name}_test.parquet"}
    for name in ("digits", "purchase", "noisy", "noisyimages", "mixed")
}
"""Shipped with the package (source and license in ``builtin/SOURCE.md``): ``digits`` (UCI 8×8
handwritten digits), ``purchase`` (a Purchase-100-like workload an MLP memorizes), ``noisy`` (a
10-class workload with 15% of its training labels replaced; the rows are in ``noisy_flipped.txt``),
``noisyimages`` (shifted, noisy 8×8 digits with 30% of the labels of both splits replaced, which
LeNet-5 memorizes) and ``mixed`` (4 overlapping classes, 15 features of very different scales:
standardize it with ``mean: auto``, ``std: auto``)."""
BUILTIN_SCALE = {"digits": 1.0 / 16.0, "noisyimages": 1.0 / 16.0}
"""Raw-value scale of a built-in dataset (digits and noisyimages are pixel counts 0..16; purchase
and noisy are 0/1; mixed is left raw, for ``mean: auto``/``std: auto`` to standardize)."""
NOISY_FLIPPED_IDS = BUILTIN_DIR / "noisy_flipped.txt"
_SUFFIX_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_TEST_SPLIT_KEY = "iau-test-split"
_CALIBRATION_KEY = "iau-calibration"


def builtin_config(name: str = "digits", **overrides: Any) -> DataConfig:
    """The data section for a built-in dataset (``builtin:NAME``, tabular)."""
    if name not in BUILTIN_DATASETS:
        raise DataError(f"unknown built-in dataset {name!r}; available: {', '.join(BUILTIN_DATASETS)}")
    values: dict[str, Any] = {"train": BUILTIN_PREFIX + name, "scale": BUILTIN_SCALE.get(name, 1.0)}
    values.update(overrides)
    return DataConfig(**values)


def unit_hash(key: str, sample_id: str) -> float:
    """A stable number in [0, 1) for an id: splits made with it never depend on other rows."""
    digest = hashlib.blake2b(f"{key}\x00{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# --------------------------------------------------------------------------------------------
# Reading files


def _resolve_source(source: str, which: str) -> Path:
    if source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN_DATASETS:
            known = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_DATASETS)
            raise DataError(f"unknown built-in dataset {source!r}; available: {known}")
        return BUILTIN_DATASETS[name][which]
    return Path(source)


def _detect_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return "disk"
        return "imagefolder"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the data format from the file ending; set data.format to one of "
            "parquet, csv, json, disk, imagefolder"
        )
    return fmt


def _quiet_datasets() -> Any:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _read_table(path: Path, fmt: str) -> Any:
    """Read one split as a ``datasets.Dataset`` (or a ``DatasetDict`` for a save_to_disk folder)."""
    if not path.exists():
        raise DataError(f"{path}: data file not found")
    datasets = _quiet_datasets()
    try:
        if fmt == "parquet":
            return datasets.Dataset.from_parquet(str(path))
        if fmt == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            return datasets.Dataset.from_csv(str(path), sep=sep)
        if fmt == "json":
            return datasets.Dataset.from_json(str(path))
        if fmt == "disk":
            return datasets.load_from_disk(str(path))
        if fmt == "imagefolder":
            loaded = datasets.load_dataset("imagefolder", data_dir=str(path), split="train")
            return loaded.cast_column("image", datasets.Image(decode=False))
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input, named with its file
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read as {fmt}: {message}") from None
    raise DataError(f"{path}: unknown data format {fmt!r}")


def fingerprint_files(paths: Sequence[Path]) -> dict[str, Any]:
    """sha256 over the content (and relative names, for folders) of the data files."""
    digest = hashlib.sha256()
    n_files = 0
    n_bytes = 0
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            name = file.name if file == root else str(file.relative_to(root))
            digest.update(name.encode() + b"\x00")
            try:
                with open(file, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
                        n_bytes += len(chunk)
            except OSError as exc:
                raise DataError(f"{file}: cannot read data file ({exc.strerror})") from None
            n_files += 1
    return {"sha256": digest.hexdigest(), "files": n_files, "bytes": n_bytes}


# --------------------------------------------------------------------------------------------
# Splits


@dataclass
class Split:
    """One split: ids, labels and encoded features (see :mod:`iau_cli.io.store`), cut into batches."""

    name: str
    ids: list[str]
    labels: np.ndarray
    features: FeatureStore
    source: str
    _row_index: dict[str, int] | None = field(default=None, repr=False)
    _label_store: FeatureStore | None = field(default=None, repr=False)
    _halves: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        """(calibration rows, evaluation rows) of a held-out split, half each by id hash.

        Unlearning methods may calibrate on the first half; audits, bench figures and unlearn
        reports measure on the second, so that a method is never judged on rows it tuned itself to.
        """
        if self._halves is None:
            calibration = np.array([unit_hash(_CALIBRATION_KEY, i) < 0.5 for i in self.ids], dtype=bool)
            if calibration.all() or not calibration.any():  # a split of one or two rows: share them
                self._halves = (np.arange(len(self.ids)), np.arange(len(self.ids)))
            else:
                self._halves = (np.flatnonzero(calibration), np.flatnonzero(~calibration))
        return self._halves

    def row_digest(self, rows: Sequence[int] | np.ndarray | None = None) -> RowDigest:
        """The order-independent digest of ``rows`` (default: all), see :mod:`iau_cli.io.rowprint`."""
        return digest_rows(self.ids, self.labels, self.features.array, rows)

    def row_index(self) -> dict[str, int]:
        """id → row number (built on first use, then kept)."""
        if self._row_index is None:
            self._row_index = {sample_id: row for row, sample_id in enumerate(self.ids)}
        return self._row_index

    def fetch(self, rows: Sequence[int] | np.ndarray, device: Any = None) -> tuple[Any, Any]:
        """Features and labels of the given row indices as tensors (on ``device`` when given)."""
        if self._label_store is None:
            self._label_store = FeatureStore(self.labels)
        rows = np.asarray(rows, dtype=np.int64)
        return self.features.gather(rows, device), self._label_store.gather(rows, device)

    def batches(
        self, rows: Sequence[int] | np.ndarray | None = None, batch_size: int = 256, device: Any = None
    ) -> Iterator[tuple[Any, Any]]:
        """Yield (features, labels) for ``rows`` (default: all rows, in order), batch by batch."""
        order = np.arange(len(self.ids)) if rows is None else np.asarray(rows, dtype=np.int64)
        for start in range(0, len(order), batch_size):
            yield self.fetch(order[start : start + batch_size], device)


@dataclass
class Encoder:
    """Turns an Arrow chunk into the stored array, as the data config says: float32 features
    (scaled, reshaped, resized and normalized) for tabular data; uint8 C×H×W pixels for images
    (normalized when a batch is cut, see :class:`iau_cli.io.store.FeatureStore`)."""

    config: DataConfig
    feature_columns: list[str]
    input_shape: list[int] = field(default_factory=list)

    def encode(self, chunk: Any, ids: list[str], source: str) -> np.ndarray:
        if self.config.image_column:
            return self._decode_images(chunk.column(self.config.image_column).to_pylist(), ids, source)
        columns = [chunk.column(name).to_numpy(zero_copy_only=False) for name in self.feature_columns]
        array = np.stack(columns, axis=1).astype(np.float32) * np.float32(self.config.scale)
        if self.config.shape:
            array = array.reshape(len(ids), *self.config.shape)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.config.resize:
            tensor = torch.nn.functional.interpolate(
                tensor, size=tuple(self.config.resize), mode="bilinear", align_corners=False
            )
        mean, std = self.config.mean, self.config.std
        if mean != 0.0 or std != 1.0:
            view = [1, -1] + [1] * (tensor.dim() - 2)
            mean_t = torch.tensor(mean if isinstance(mean, list) else [mean], dtype=tensor.dtype).view(view)
            std_t = torch.tensor(std if isinstance(std, list) else [std], dtype=tensor.dtype).view(view)
            tensor = (tensor - mean_t) / std_t
        return tensor.numpy()

    def _decode_images(self, cells: list[Any], ids: list[str], source: str) -> np.ndarray:
        """Decode (and resize) a chunk of images; all must come out the same size."""
        arrays = [self._decode_one(cell, sample_id, source) for cell, sample_id in zip(cells, ids)]
        for sample_id, cell, array in zip(ids, cells, arrays):
            if not self.input_shape:
                self.input_shape = list(array.shape)
            elif list(array.shape) != self.input_shape:
                where = (cell or {}).get("path") or f"row id {sample_id}"
                raise DataError(
                    f"{where}: image is {array.shape[2]}×{array.shape[1]}, others are "
                    f"{self.input_shape[2]}×{self.input_shape[1]}; set data.resize: [height, width]"
                )
        return np.stack(arrays)

    def _decode_one(self, cell: Any, sample_id: str, source: str) -> np.ndarray:
        import io

        from PIL import Image, UnidentifiedImageError

        where = (cell or {}).get("path") or f"row id {sample_id}"
        try:
            if cell and cell.get("bytes"):
                image = Image.open(io.BytesIO(cell["bytes"]))
            elif cell and cell.get("path"):
                image = Image.open(cell["path"])
            else:
                raise DataError(f"{source}: image of id {sample_id!r} is empty")
            image = image.convert("L" if self.config.grayscale else "RGB")
            if self.config.resize:
                height, width = self.config.resize
                image = image.resize((width, height), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"{where}: image does not decode ({type(exc).__name__}); fix or remove it") from None
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


@dataclass
class DataBundle:
    """Train and test splits with what the model needs to know about them."""

    config: DataConfig
    train: Split
    test: Split
    num_classes: int
    input_shape: list[int]
    fingerprint: dict[str, Any]
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    """The tabular feature columns, in the order the model reads them (None for images)."""
    dropped_columns: list[str] = field(default_factory=list)
    """Columns of the training file that are no feature: non-numeric ones when
    ``data.feature_columns`` was not given (said in the train report), or ones it left out."""

    _row_digests: dict[str, RowDigest] | None = field(default=None, repr=False)

    def locate(self, ids: Sequence[str]) -> dict[str, str]:
        """Where each id is a row: ``train``, ``test`` or ``neither`` (the one place ids are sorted;
        whether an id was forgotten is the checkpoint's to say)."""
        train, test = self.train.row_index(), self.test.row_index()
        return {i: "train" if i in train else "test" if i in test else "neither" for i in ids}

    def row_digests(self) -> dict[str, RowDigest]:
        """Each split's row digest (computed once): what lets forgotten rows be deleted later."""
        if self._row_digests is None:
            self._row_digests = {"train": self.train.row_digest(), "test": self.test.row_digest()}
        return self._row_digests

    def full_fingerprint(self, since_event: int) -> dict[str, Any]:
        """The files' digest and the rows' digests; deletions recorded in lineage events from
        ``since_event`` on are measured against these rows."""
        rows = {name: digest.to_json() for name, digest in self.row_digests().items()}
        return {**self.fingerprint, "rows": rows, "since_event": since_event}

    def describe(self, since_event: int = 1, fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the checkpoint records about the data (``iau.data``); ``fingerprint`` keeps a
        recorded one (then the rows are not hashed again)."""

        return {
            "config": to_dict(self.config),
            "fingerprint": fingerprint if fingerprint is not None else self.full_fingerprint(since_event),
            "num_classes": self.num_classes,
            "input_shape": self.input_shape,
            "rows": {"train": len(self.train), "test": len(self.test)},
            "class_names": self.class_names,
            **({"feature_names": self.feature_names} if self.feature_names is not None else {}),
        }


def load_data(config: DataConfig, *, progress: Progress = no_progress) -> DataBundle:
    """Read, validate, index and encode the train and test splits named by ``config``.

    A dataset version seen before (same files, same config) comes from the feature cache without
    reading the files again (:mod:`iau_cli.io.store`); only their fingerprint is recomputed.
    """
    if config.mean == "auto" or config.std == "auto":
        return _with_feature_statistics(config, progress)
    train_path = _resolve_source(config.train, "train")
    if not train_path.exists():
        raise DataError(f"{train_path}: data file not found; check data.train")
    fmt = _detect_format(train_path, config.format)
    test_path: Path | None = None
    if config.test is not None:
        test_path = _resolve_source(config.test, "test")
        if not test_path.exists():
            raise DataError(f"{test_path}: test data not found; check data.test")
    elif config.train.startswith(BUILTIN_PREFIX):
        test_path = _resolve_source(config.train, "test")
    paths = [train_path] + ([test_path] if test_path is not None and test_path != train_path else [])
    fingerprint = fingerprint_files(paths)
    # The key is what the data is (its files' content) and how it is encoded, not where it lies:
    # a moved dataset is not encoded again.
    # num_classes changes no encoded byte: it is checked against the labels on every load instead.
    encoding = {k: v for k, v in to_dict(config).items() if k not in ("train", "test", "num_classes")}
    key = cache_key(fingerprint["sha256"], encoding)
    budget = memory_budget()
    entry = load_entry(key, budget, paths)
    if entry is None:
        return _read_and_encode(config, train_path, test_path, fmt, fingerprint, key, budget, progress)
    meta, splits = entry
    if meta["config"]["image_column"] != config.image_column:
        config = dataclasses.replace(config, image_column=meta["config"]["image_column"])
    return _bundle(config, splits, meta, fingerprint, _sources(train_path, test_path, meta["test_origin"]))


def _with_feature_statistics(config: DataConfig, progress: Progress) -> DataBundle:
    """``mean: auto`` / ``std: auto``: each feature's (or image channel's) mean and standard
    deviation over the training split, computed on the encoded rows and then written into the
    config as numbers — so the checkpoint records them, and later commands (after rows are
    forgotten and deleted) normalize exactly as training did."""
    raw = load_data(
        dataclasses.replace(
            config,
            mean=0.0 if config.mean == "auto" else config.mean,
            std=1.0 if config.std == "auto" else config.std,
        ),
        progress=progress,
    )
    array = raw.train.features.array
    per_channel = array.ndim > 2
    total = sumsq = 0.0
    count = 0
    for start in range(0, len(array), 4096):
        block = np.asarray(array[start : start + 4096], dtype=np.float64)
        if array.dtype == np.uint8:
            block = block / 255.0
        if per_channel:
            block = np.moveaxis(block, 1, -1).reshape(-1, block.shape[1])
        total = total + block.sum(axis=0)
        sumsq = sumsq + (block * block).sum(axis=0)
        count += len(block)
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(sumsq / max(count, 1) - mean * mean, 0.0))
    std = np.where(std > 1e-8, std, 1.0)  # a constant feature is centred, not blown up
    changes = {}
    if config.mean == "auto":
        changes["mean"] = [round(float(v), 7) for v in np.atleast_1d(mean)]
    if config.std == "auto":
        # recorded to 7 decimals: a spread that rounds to 0 is taken as constant too (centred only)
        changes["std"] = [round(float(v), 7) or 1.0 for v in np.atleast_1d(std)]
    return load_data(dataclasses.replace(config, **changes), progress=progress)


def _sources(train_path: Path, test_path: Path | None, test_origin: str) -> dict[str, str]:
    """How messages name each split's rows (``test_origin``: file, fraction or saved split)."""
    test = {"file": str(test_path), "fraction": f"{train_path} (test fraction)"}.get(
        test_origin, f"{train_path} (test split)"
    )
    return {"train": str(train_path), "test": test}


def _class_count(config: DataConfig, train: np.ndarray, test: np.ndarray, sources: dict[str, str]) -> int:
    """``data.num_classes``, or the largest label + 1 — refused when it is far above the number of
    distinct labels (a typo would build a huge output layer). Computed from the labels on every
    load (not cached), so a checkpoint's recorded count and a fresh inference never mix."""
    num_classes = config.num_classes or int(max(train.max(initial=0), test.max(initial=0)) + 1)
    distinct = len(np.union1d(np.unique(train), np.unique(test)))
    if config.num_classes is None and num_classes > max(2 * distinct, 100):
        raise DataError(
            f"{sources['train']}: the largest label is {num_classes - 1:,} but there are only {distinct} distinct "
            f"labels (a typo?); a {num_classes:,}-class model would be built. Fix the label, or set data.num_classes"
        )
    for labels, name in ((train, "train"), (test, "test")):
        if len(labels) and labels.max() >= num_classes:
            raise DataError(f"{sources[name]}: label {int(labels.max())} is out of range for num_classes={num_classes}")
    if num_classes < 2:
        raise DataError(f"{sources['train']}: only one class found; a classifier needs at least two")
    return num_classes


def _bundle(
    config: DataConfig,
    splits: dict[str, EncodedSplit],
    meta: dict[str, Any],
    fingerprint: dict[str, Any],
    sources: dict[str, str],
) -> DataBundle:
    train, test = (Split(name, s.ids, s.labels, s.features, sources[name]) for name, s in splits.items())
    return DataBundle(
        config=config,
        train=train,
        test=test,
        num_classes=_class_count(config, train.labels, test.labels, sources),
        input_shape=train.features.row_shape,
        fingerprint=fingerprint,
        class_names=meta["class_names"],
        feature_names=meta.get("feature_columns"),
        dropped_columns=list(meta.get("dropped_columns") or []),
    )


def _read_and_encode(
    config: DataConfig,
    train_path: Path,
    test_path: Path | None,
    fmt: str,
    fingerprint: dict[str, Any],
    key: str,
    budget: int,
    progress: Progress,
) -> DataBundle:
    """Read both splits with ``datasets``, check the data contract, and encode them into stores."""
    config, train_table, test_table, class_names = _read_splits(config, train_path, test_path, fmt)
    rows = _checked_rows(config, train_table, test_table, train_path, test_path)
    splits, meta = _encode_splits(config, rows, class_names, key, budget, [train_path, test_path], progress)
    return _bundle(config, splits, meta, fingerprint, _sources(train_path, test_path, rows.test_origin))


def _read_splits(
    config: DataConfig, train_path: Path, test_path: Path | None, fmt: str
) -> tuple[DataConfig, Any, Any, list[str] | None]:
    """(config, train table, test table or None, class names of an image folder)."""
    if fmt == "imagefolder" and not config.image_column:
        config = dataclasses.replace(config, image_column="image")
    train_table = _read_table(train_path, fmt)
    test_table = None
    if test_path is not None:
        test_format = "parquet" if config.test is None else _detect_format(test_path, config.format)
        test_table = _read_table(test_path, test_format)
    if isinstance(train_table, _quiet_datasets().DatasetDict):
        train_table, test_table = _split_dict(train_table, test_table, train_path)
    class_names = None
    if fmt == "imagefolder":
        train_table, class_names = _imagefolder_ids(train_table, train_path, config, None)
        if test_table is not None and test_path is not None:
            test_table, _ = _imagefolder_ids(test_table, test_path, config, class_names)
    return config, train_table, test_table, class_names


@dataclass
class _Rows:
    """Both splits as checked: tables, ids, labels, where each came from, the feature columns."""

    tables: dict[str, Any]
    ids: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    sources: dict[str, str]
    feature_columns: list[str]
    test_origin: str  # "file", "saved split" or "fraction"


def _checked_rows(
    config: DataConfig, train_table: Any, test_table: Any, train_path: Path, test_path: Path | None
) -> _Rows:
    """The data contract: columns present in both splits, unique ids, labels, finite features (the
    test split cut off by id hash when there is no test file)."""
    label_source = str(train_path)
    _check_columns(train_table, config, label_source)
    feature_columns = _feature_columns(train_table, config, label_source)
    if test_table is not None:
        _check_columns(test_table, config, str(test_path))
        missing = [c for c in feature_columns if c not in test_table.column_names]
        if missing:
            raise DataError(f"{test_path}: feature column(s) {', '.join(missing)} missing (present in train)")
    train_ids = _ids(train_table, config.id_column, label_source)
    if test_table is None:
        test_mask = np.array([unit_hash(_TEST_SPLIT_KEY, i) < config.test_fraction for i in train_ids])
        if test_mask.all() or not test_mask.any():
            raise DataError(f"{label_source}: too few rows to split off a test fraction; give data.test")
        test_table = train_table.select(np.flatnonzero(test_mask))
        train_table = train_table.select(np.flatnonzero(~test_mask))
        train_ids = [i for i, t in zip(train_ids, test_mask) if not t]
        test_origin = "fraction"
    else:
        test_origin = "file" if test_path is not None else "saved split"
    test_source = _sources(train_path, test_path, test_origin)["test"]
    test_ids = _ids(test_table, config.id_column, test_source)
    overlap = set(train_ids).intersection(test_ids)
    if overlap:
        example = sorted(overlap)[0]
        raise DataError(
            f"{test_source}: {len(overlap)} id(s) also in the train split (e.g. {example!r}); ids must be unique"
        )
    train_labels = _labels(train_table, config.label_column, label_source)
    test_labels = _labels(test_table, config.label_column, test_source)
    _class_count(config, train_labels, test_labels, {"train": label_source, "test": test_source})
    if not train_ids:
        raise DataError(f"{label_source}: no training rows")
    if not test_ids:
        raise DataError(f"{test_source}: no test rows")
    if not config.image_column:
        _check_finite(train_table, feature_columns, train_ids, label_source)
        _check_finite(test_table, feature_columns, test_ids, test_source)
    _check_shapes(config, feature_columns, label_source)
    return _Rows(
        tables={"train": train_table, "test": test_table},
        ids={"train": train_ids, "test": test_ids},
        labels={"train": train_labels, "test": test_labels},
        sources={"train": label_source, "test": test_source},
        feature_columns=feature_columns,
        test_origin=test_origin,
    )


def _encode_splits(
    config: DataConfig,
    rows: _Rows,
    class_names: list[str] | None,
    key: str,
    budget: int,
    paths: list[Path | None],
    progress: Progress,
) -> tuple[dict[str, EncodedSplit], dict[str, Any]]:
    """Both splits encoded into the feature store (within ``budget`` bytes of memory), and its metadata."""
    encoder = Encoder(config, rows.feature_columns)
    images = bool(config.image_column)
    # Images keep their pixels as bytes; the store normalizes them batch by batch.
    mean, std = (config.mean, config.std) if images else (0.0, 1.0)
    row_bytes = 4096 if images else 8 * max(len(rows.feature_columns), 1)
    splits: dict[str, EncodedSplit] = {}
    with staging_for(key, [p for p in paths if p is not None]) as staging:
        used = 0
        for name in ("train", "test"):
            arrow, ids, source = rows.tables[name].with_format("arrow"), rows.ids[name], rows.sources[name]

            def encode(start: int, stop: int, arrow: Any = arrow, ids: list[str] = ids, source: str = source) -> Any:
                return encoder.encode(arrow[start:stop], ids[start:stop], source)

            features = encode_split(
                name,
                len(ids),
                encode,
                staging,
                budget - used,
                row_bytes_hint=row_bytes,
                mean=mean,
                std=std,
                progress=progress,
            )
            used += 0 if features.mapped else features.nbytes
            splits[name] = EncodedSplit(ids, rows.labels[name], features)
            staging.write(name, splits[name])
        meta = {
            "format": STORE_FORMAT,
            "config": to_dict(config),
            "class_names": class_names,
            "mean": mean,
            "std": std,
            "test_origin": rows.test_origin,
            "feature_columns": None if images else rows.feature_columns,
            "dropped_columns": _dropped_columns(rows.tables["train"], config, rows.feature_columns),
        }
        staging.publish(meta)
    return splits, meta


def _check_shapes(config: DataConfig, feature_columns: list[str], source: str) -> None:
    """What the config says about the features must fit the features: data.shape holds exactly
    the feature count, resize applies to images (or reshaped features), and a per-feature or
    per-channel mean/std list has one value each."""
    import math

    images = bool(config.image_column)
    if not images and config.shape and math.prod(config.shape) != len(feature_columns):
        raise DataError(
            f"{source}: data.shape {config.shape} holds {math.prod(config.shape)} values but there are "
            f"{len(feature_columns)} feature columns"
        )
    if config.resize and not images and not config.shape:
        raise DataError(f"{source}: data.resize applies to images (or features given a data.shape); remove it")
    if images:
        width = 1 if config.grayscale else 3
        what = "channel"
    elif config.shape:
        width, what = config.shape[0], "channel (data.shape[0])"
    else:
        width, what = len(feature_columns), "feature column"
    for name in ("mean", "std"):
        value = getattr(config, name)
        if isinstance(value, list) and len(value) not in (1, width):
            raise DataError(f"{source}: data.{name} has {len(value)} values; give one per {what} ({width}) or one")


def _split_dict(dataset_dict: Any, test_table: Any, path: Path) -> tuple[Any, Any]:
    if "train" not in dataset_dict:
        raise DataError(f"{path}: saved dataset has splits {', '.join(dataset_dict)}, but no 'train' split")
    if test_table is None and "test" in dataset_dict:
        test_table = dataset_dict["test"]
    return dataset_dict["train"], test_table


def _imagefolder_ids(
    table: Any, root: Path, config: DataConfig, class_names: list[str] | None
) -> tuple[Any, list[str]]:
    """Image folders carry no id column: the file's path from the split folder's parent is the id
    (``train/cat/001.png``), so train and test ids never collide."""
    names = table.features["label"].names if "label" in table.features else []
    if class_names is not None:
        unknown = [n for n in names if n not in class_names]
        if unknown:
            raise DataError(f"{root}: class folder(s) {', '.join(unknown)} do not exist in the train folder")
        remap = np.array([class_names.index(n) for n in names], dtype=np.int64)
        table = table.map(lambda batch: {"label": remap[np.asarray(batch["label"])].tolist()}, batched=True)
    if config.id_column not in table.column_names:
        paths = [cell["path"] for cell in table.with_format("arrow")[config.image_column or "image"].to_pylist()]
        ids = [os.path.relpath(p, root.resolve().parent) if p else "" for p in paths]
        table = table.add_column(config.id_column, ids)
    return table, class_names if class_names is not None else list(names)


def _check_columns(table: Any, config: DataConfig, source: str) -> None:
    columns = table.column_names
    for role, name in (("id", config.id_column), ("label", config.label_column)):
        if name not in columns:
            raise DataError(
                f"{source}: {role} column {name!r} not found (columns: {', '.join(columns[:12])}); "
                f"set data.{role}_column"
            )
    if config.image_column and config.image_column not in columns:
        raise DataError(f"{source}: image column {config.image_column!r} not found; set data.image_column")


def _feature_columns(table: Any, config: DataConfig, source: str) -> list[str]:
    import pyarrow as pa

    if config.image_column:
        return []
    schema = table.data.schema
    if config.feature_columns is not None:
        missing = [c for c in config.feature_columns if c not in schema.names]
        if missing:
            raise DataError(f"{source}: feature column(s) {', '.join(missing)} not found")
        columns = list(config.feature_columns)
    else:
        reserved = {config.id_column, config.label_column}
        columns = [f.name for f in schema if f.name not in reserved and _numeric(f.type, pa)]
    if not columns:
        raise DataError(f"{source}: no numeric feature columns; set data.feature_columns or data.image_column")
    for name in columns:
        if not _numeric(schema.field(name).type, pa):
            raise DataError(f"{source}: feature column {name!r} is {schema.field(name).type}, not numeric")
    return columns


def _dropped_columns(table: Any, config: DataConfig, feature_columns: list[str]) -> list[str]:
    """Columns that are neither id, label, image nor a feature (what the model never sees)."""
    used = {config.id_column, config.label_column, config.image_column, *feature_columns}
    return [name for name in table.data.schema.names if name not in used and not name.startswith("__")]


def _numeric(arrow_type: Any, pa: Any) -> bool:
    return bool(pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type))


def _ids(table: Any, column: str, source: str) -> list[str]:
    ids = [str(v) if v is not None else "" for v in table.with_format("arrow")[column].to_pylist()]
    if any(not i.strip() for i in ids):
        row = next(n for n, i in enumerate(ids) if not i.strip())
        raise DataError(f"{source}: row {row} has an empty id in column {column!r}")
    if len(set(ids)) != len(ids):
        from collections import Counter

        example = next(sample_id for sample_id, count in Counter(ids).items() if count > 1)
        raise DataError(
            f"{source}: {len(ids) - len(set(ids))} duplicate id(s) in column {column!r} (e.g. {example!r}); "
            "ids must be unique"
        )
    return ids


def _labels(table: Any, column: str, source: str) -> np.ndarray:
    import pyarrow as pa

    values = table.with_format("arrow")[column]
    if isinstance(values, pa.Table):
        values = values.column(0)
    if values.null_count:
        raise DataError(f"{source}: label column {column!r} has {values.null_count} empty value(s)")
    if not pa.types.is_integer(values.type):
        example = values[0].as_py() if len(values) else None
        raise DataError(
            f"{source}: labels in column {column!r} must be integer class indices, found {values.type} "
            f"(e.g. {example!r}); map class names to 0..K-1"
        )
    labels = values.to_numpy(zero_copy_only=False).astype(np.int64)
    if len(labels) and labels.min() < 0:
        raise DataError(f"{source}: negative label {int(labels.min())} in column {column!r}")
    return labels


def _check_finite(table: Any, columns: list[str], ids: list[str], source: str) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    arrow = table.with_format("arrow")[:]
    for name in columns:
        column = arrow.column(name)
        bad = pc.is_null(column)
        if pa.types.is_floating(column.type):
            bad = pc.or_kleene(bad, pc.fill_null(pc.invert(pc.is_finite(column)), True))
        count = pc.sum(bad).as_py() or 0
        if count:
            row = pc.index(bad, True).as_py()
            raise DataError(
                f"{source}: feature column {name!r} has {count} NaN/infinite/empty value(s) "
                f"(first at id {ids[row]!r}); clean or impute them"
            )
