"""Encoded features, once per dataset version: the store every batch is cut from.

Reading rows from Arrow and decoding images for every batch made training 8× slower than a plain
PyTorch loop. Instead each split is encoded once — images decoded and resized, tabular columns
stacked, scaled and normalized — into one contiguous array with a row per sample (float32, or
uint8 for images, normalized when a batch is cut). A batch is then a slice or an index-select of
that array.

Where the array lives:

- in memory, when the splits fit the memory budget (``IAU_MEMORY_BUDGET``, e.g. ``2G``, per
  process; default a quarter of physical RAM, shared by the processes torchrun starts on a machine);
- otherwise memory-mapped from a ``.npy`` file, so resident memory stays bounded whatever the
  size of the data; only the rows a batch needs are read.

Encoded splits (with their ids and labels) are also kept in a cache folder (``IAU_CACHE_DIR``;
default ``$XDG_CACHE_HOME/iau`` or ``~/.cache/iau``; ``IAU_CACHE_DIR=off`` turns it off), keyed by
the sha256 fingerprint of the data files and the data config: a later command on the same data
skips reading, validating and encoding altogether (and does not even import ``datasets``). A
changed file or config is a different key, so a stale entry is never used; old entries can be
deleted at any time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iau_cli.environment import env_int, env_size
from iau_cli.io.files import file_sha256

STORE_FORMAT = 3  # 3: the meta records the feature and dropped columns
_CHUNK_BYTES = 64 << 20
"""Rows are encoded in chunks of about this many bytes (so encoding itself stays bounded)."""


def memory_budget() -> int:
    """Bytes of encoded features one process may hold in memory (``IAU_MEMORY_BUDGET``; default a
    quarter of RAM shared by the processes torchrun starts on this machine)."""

    budget = env_size("IAU_MEMORY_BUDGET")
    if budget is not None:
        return budget
    local_processes = env_int("LOCAL_WORLD_SIZE", 1, minimum=1, maximum=1 << 16)
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4 // local_processes


def cache_root(inputs: Sequence[Path] = ()) -> Path | None:
    """The feature-cache folder, or None when ``IAU_CACHE_DIR`` is ``off`` — or when it lies inside
    a data folder among ``inputs``: the cache would write into the dataset (an input, never
    written), and its files would change the folder's fingerprint and be read as rows."""
    raw = os.environ.get("IAU_CACHE_DIR")
    if raw is not None and raw.strip().lower() in ("off", "none", "0", "false", ""):
        return None
    if raw:
        root = Path(raw).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "iau"
    where = Path(os.path.realpath(root))
    for data in inputs:
        folder = Path(os.path.realpath(data))
        if folder.is_dir() and (where == folder or folder in where.parents):
            return None
    return root


def cache_key(fingerprint: str, config: dict[str, Any]) -> str:
    """The cache entry of a dataset version: its files' fingerprint and how rows become tensors."""
    text = json.dumps({"format": STORE_FORMAT, "data": fingerprint, "config": config}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class FeatureStore:
    """One split's encoded rows. ``gather(rows)`` is a batch: a slice when the rows are consecutive,
    otherwise an index-select (from memory) or a read of just those rows (from a memory map).

    uint8 image stores keep pixels as bytes and return ``(pixels / 255 − mean) / std`` as float32.
    On a CUDA device the store is copied to the GPU once (when it fits a quarter of the card's free
    memory), so a batch never crosses the bus.
    """

    def __init__(self, array: np.ndarray, *, mean: Any = 0.0, std: Any = 1.0) -> None:
        self.array = array
        self.mapped = isinstance(array, np.memmap)
        self.tensor = None if self.mapped else torch.from_numpy(array)
        self.scale = None
        if array.dtype == np.uint8:
            view = [1, -1] + [1] * (array.ndim - 2)
            mean_t = torch.tensor(mean if isinstance(mean, list) else [mean], dtype=torch.float32).view(view)
            std_t = torch.tensor(std if isinstance(std, list) else [std], dtype=torch.float32).view(view)
            # (x/255 − mean)/std = x·a + b with a = 1/(255·std), b = −mean/std.
            self.scale = (1.0 / (255.0 * std_t), -mean_t / std_t)
        self._on_device: dict[str, tuple[torch.Tensor | None, Any]] = {}

    def __len__(self) -> int:
        return len(self.array)

    @property
    def row_shape(self) -> list[int]:
        return list(self.array.shape[1:])

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    def gather(self, rows: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
        """Rows ``rows`` (int64 indices, in the given order) as one batch tensor (uint8 pixels come back
        as normalized float32)."""
        source, scale = self._source(device)
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and (len(rows) < 3 or np.all(np.diff(rows) == 1)):
            start, stop = int(rows[0]), int(rows[-1]) + 1
            if source is None:
                batch = torch.from_numpy(np.array(self.array[start:stop]))
            else:
                # A view would let a model that edits its input in place edit the store itself.
                batch = source[start:stop] if scale is not None else source[start:stop].clone()
        elif source is not None:
            batch = source.index_select(0, torch.as_tensor(rows, device=source.device))
        else:
            batch = torch.from_numpy(self.array[rows])
        if device is not None:
            batch = batch.to(device)
        if scale is not None:
            batch = batch.float().mul_(scale[0]).add_(scale[1])
        return batch

    def _source(self, device: torch.device | None) -> tuple[torch.Tensor | None, Any]:
        """(where rows are cut from, the uint8 scale on the batch's device)."""
        if device is None or device.type != "cuda":
            return self.tensor, self.scale
        key = str(device)
        if key not in self._on_device:
            free, _ = torch.cuda.mem_get_info(device)
            fits = self.tensor is not None and self.nbytes <= free // 4
            moved = self.tensor.to(device) if fits else None  # type: ignore[union-attr]
            scale = None if self.scale is None else (self.scale[0].to(device), self.scale[1].to(device))
            self._on_device[key] = (moved, scale)
        moved, scale = self._on_device[key]
        # Too large for the card (or memory-mapped): batches are cut on the host and sent.
        return (moved if moved is not None else self.tensor), scale


@dataclass
class EncodedSplit:
    """A split ready for training: ids, labels and features, all in row order."""

    ids: list[str]
    labels: np.ndarray
    features: FeatureStore


class Staging:
    """Where a split's encoded array is put while it is built.

    With a cache folder: a hidden folder beside the entry, renamed into place when every split is
    written (concurrent writers of one entry are harmless: the first rename wins, the content is
    the same). Without one: a temporary folder, used only for splits beyond the memory budget.
    """

    def __init__(self, key: str, inputs: Sequence[Path] = ()) -> None:
        self.key = key
        self.root = cache_root(inputs)
        self.folder: Path | None = None
        self.cached = False
        self.digests: dict[str, str] = {}
        if self.root is not None:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                self.folder = self.root / f".{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
                self.folder.mkdir()
                self.cached = True
            except OSError:
                self.folder = None  # an unwritable cache folder only costs speed

    def spill_folder(self) -> Path:
        """A folder for memory-mapped arrays (the staging folder, or a temporary one)."""
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="iau-features-"))
        return self.folder

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype, in_memory: bool) -> np.ndarray:
        if in_memory:
            return np.empty(shape, dtype=dtype)
        path = self.spill_folder() / f"{name}.features.npy"
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        if not self.cached:
            # Nothing will ever read it by name: unlink it now (the map stays valid), so a run killed
            # while encoding leaves no multi-gigabyte file behind.
            path.unlink()
        return array

    def write(self, name: str, split: EncodedSplit) -> None:
        """Put a finished split's ids, labels and (in-memory) features into the staging folder."""
        if not self.cached:
            return
        assert self.folder is not None
        try:
            array = split.features.array
            if isinstance(array, np.memmap):
                array.flush()
            else:
                np.save(self.folder / f"{name}.features.npy", array)
            np.save(self.folder / f"{name}.labels.npy", split.labels)
            (self.folder / f"{name}.ids.json").write_text(json.dumps(split.ids), encoding="utf-8")
            for part in _PARTS:
                self.digests[f"{name}.{part}"] = file_sha256(self.folder / f"{name}.{part}")
        except OSError:
            self.cached = False  # a full cache disk only costs speed; the arrays in hand are complete

    def publish(self, meta: dict[str, Any]) -> None:
        """Make the entry visible to later commands (or drop the staging folder if it cannot be)."""
        if not self.cached:
            self._drop_unmapped()
            return
        assert self.folder is not None and self.root is not None
        final = self.root / self.key
        try:
            (self.folder / "meta.json").write_text(json.dumps({**meta, "digests": self.digests}), encoding="utf-8")
            os.rename(self.folder, final)
        except OSError:
            shutil.rmtree(self.folder, ignore_errors=True)  # another process published it first, or no room

    def _drop_unmapped(self) -> None:
        # Mapped files stay readable after unlinking (the pages go when the map does), so a temporary
        # spill folder can go at once and nothing is left behind, even after a kill.
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


_PARTS = ("features.npy", "labels.npy", "ids.json")


def encode_split(
    name: str,
    n_rows: int,
    encode: Callable[[int, int], np.ndarray],
    staging: Staging,
    budget_left: int,
    *,
    row_bytes_hint: int,
    mean: Any,
    std: Any,
    progress: Callable[[str, float, float], None],
) -> FeatureStore:
    """Encode rows [0, n_rows) chunk by chunk (``encode(start, stop)``) into one array: in memory
    when it fits ``budget_left`` bytes, else memory-mapped in the staging folder."""
    chunk = max(1, min(n_rows, _CHUNK_BYTES // max(row_bytes_hint, 1)))
    first = encode(0, chunk)
    shape = (n_rows, *first.shape[1:])
    nbytes = int(np.prod(shape, dtype=np.int64)) * first.dtype.itemsize
    array = staging.allocate(name, shape, first.dtype, in_memory=nbytes <= budget_left)
    array[: len(first)] = first
    progress(f"encode {name}", len(first), n_rows)
    for start in range(len(first), n_rows, chunk):
        stop = min(start + chunk, n_rows)
        array[start:stop] = encode(start, stop)
        progress(f"encode {name}", stop, n_rows)
    return FeatureStore(array, mean=mean, std=std)


def load_entry(
    key: str, budget: int, inputs: Sequence[Path] = ()
) -> tuple[dict[str, Any], dict[str, EncodedSplit]] | None:
    """A cached dataset version (meta, splits), or None when absent or unreadable."""
    root = cache_root(inputs)
    if root is None:
        return None
    folder = root / key
    if not folder.is_dir():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != STORE_FORMAT:
            raise ValueError("another store format")
        # Checked against what was written, every read: a tampered entry (features zeroed) is
        # re-encoded from the data, never used.
        for name in ("train", "test"):
            for part in _PARTS:
                if file_sha256(folder / f"{name}.{part}") != meta["digests"][f"{name}.{part}"]:
                    raise ValueError(f"{name}.{part} differs from what was written")
        splits = {}
        for name in ("train", "test"):
            mapped = np.load(folder / f"{name}.features.npy", mmap_mode="r")
            in_memory = mapped.nbytes <= budget
            budget -= mapped.nbytes if in_memory else 0
            features = np.array(mapped) if in_memory else mapped
            labels = np.load(folder / f"{name}.labels.npy")
            ids = json.loads((folder / f"{name}.ids.json").read_text(encoding="utf-8"))
            if not (len(ids) == len(labels) == len(features)):
                raise ValueError("splits of different lengths")
            splits[name] = EncodedSplit(ids, labels, FeatureStore(features, mean=meta["mean"], std=meta["std"]))
        return meta, splits
    except (OSError, ValueError, KeyError, TypeError):
        # A damaged (or outdated) entry is moved aside and removed, so that this run's encoding
        # can take its place; entries are only ever published whole, so this is never a half-written one.
        trash = root / f".{key}.{os.getpid()}.{secrets.token_hex(4)}.trash"
        with contextlib.suppress(OSError):
            os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return None


@contextlib.contextmanager
def staging_for(key: str, inputs: Sequence[Path] = ()) -> Iterator[Staging]:
    """A staging area for one dataset version; dropped if encoding fails."""
    staging = Staging(key, inputs)
    try:
        yield staging
    except BaseException:
        if staging.folder is not None:
            shutil.rmtree(staging.folder, ignore_errors=True)
        raise
