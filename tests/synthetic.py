"""Synthetic workloads: where membership shows (a model memorizes its training rows) and where
labels are wrong. Each built-in synthetic dataset is one fixed recipe of :data:`BUILTIN_RECIPES`.

``prototype_workload`` writes a dataset in the shape of Purchase-100 (Shokri et al. 2017, the
usual membership-inference benchmark): each class has a random binary prototype; a row is its
class's prototype with every bit flipped independently with probability ``flip``. With few, noisy
rows per class an MLP fits every training row yet generalizes only partly, so a loss-threshold
attack tells training rows from held-out ones. With ``label_noise`` a fraction of the training
labels is replaced by another class (the rows are listed in ``NAME_flipped.txt``): the model fits
the wrong labels and retraining without them recovers test accuracy.

``noisy_digits_workload`` makes an image workload a CNN memorizes: shifted, noisy copies of the
built-in 8×8 digits with 30% of the labels wrong in both splits. ``mixed_workload`` makes a
tabular one of a different shape from Purchase: few classes, a few features of very different
scales and types, overlapping classes.

The built-in ``purchase``, ``noisy``, ``noisyimages`` and ``mixed`` datasets were made with
:data:`BUILTIN_RECIPES` once (``scripts/make_builtin_workloads.py``) and ship as parquet (a numpy
with other random streams must not change the data under a checkpoint's fingerprint); a test
regenerates them and compares. Other tests make small ones.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

_BUILTIN_DIR = Path(__file__).resolve().parents[1] / "iau_cli" / "builtin"
DIGITS = {split: _BUILTIN_DIR / f"digits_{split}.parquet" for split in ("train", "test")}
"""The shipped UCI digits (the source of ``noisyimages``); ``iau_cli.io.data`` is not imported here,
so that making data never needs torch."""


def prototype_workload(
    folder: Path,
    name: str,
    *,
    seed: int,
    classes: int,
    flip: float,
    n_train: int,
    n_test: int,
    features: int = 600,
    label_noise: float = 0.0,
) -> None:
    """Write ``NAME_train.parquet``, ``NAME_test.parquet`` (and ``NAME_flipped.txt`` with label noise)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    prototypes = (rng.random((classes, features)) < 0.5).astype(np.uint8)
    labels = {"train": rng.integers(0, classes, n_train), "test": rng.integers(0, classes, n_test)}
    rows = {}
    for split, split_labels in labels.items():
        clean = prototypes[split_labels]
        rows[split] = np.where(rng.random(clean.shape) < flip, 1 - clean, clean).astype(np.uint8)
    flipped = rng.random(n_train) < label_noise
    labels["train"][flipped] = (labels["train"][flipped] + rng.integers(1, classes, flipped.sum())) % classes
    for split in ("train", "test"):
        columns = {
            "id": [f"{name}-{split}-{i:05d}" for i in range(len(labels[split]))],
            "label": pa.array(labels[split], pa.int64()),
        }
        columns.update({f"f{j:03d}": pa.array(rows[split][:, j], pa.uint8()) for j in range(features)})
        pq.write_table(pa.table(columns), folder / f"{name}_{split}.parquet", compression="zstd")
    if label_noise:
        header = f"# the {flipped.sum()} training rows of {name} whose labels were replaced (seed {seed})\n"
        ids = [f"{name}-train-{i:05d}" for i in np.flatnonzero(flipped)]
        (folder / f"{name}_flipped.txt").write_text(header + "\n".join(ids) + "\n")


def noisy_digits_workload(
    folder: Path,
    name: str,
    *,
    seed: int,
    n_train: int,
    test_variants: int,
    label_noise: float,
    pixel_noise: float = 1.0,
    digits: dict[str, Path] = DIGITS,
) -> None:
    """Write ``NAME_train.parquet`` and ``NAME_test.parquet``: 8×8 images made from the digits
    parquet files ``digits``, each shifted by -1, 0 or +1 pixel in each direction (zero fill) with
    rounded Gaussian noise of ``pixel_noise`` pixel counts added (clipped to 0..16), and exactly a
    ``label_noise`` fraction of the labels of *each* split replaced by another class at random: as
    recorded labels can be, the held-out ones as much as the training ones. A CNN that fits the
    training split must memorize its wrong labels one row at a time, so a model retrained without
    a row disagrees with the original on it, and a loss-threshold attack tells members apart.

    Each training image comes from a different source digit (``n_train`` of the digits training
    rows, drawn once): two variants of one digit in the training split would let a model retrained
    without one of them still recognize it through the other, so that a forgotten row would stay
    partly remembered. Test images come only from the digits test split, ``test_variants`` of each
    digit (row ``v·n + i`` is variant v of test digit i), so none is a near copy of a training
    image. The string column ``source_id`` names each row's source digit (so the replaced labels
    can be found by comparing with ``builtin:digits``); being text, it is no feature.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    for split, variants in (("train", 1), ("test", test_variants)):
        source = pq.read_table(digits[split])
        if split == "train":
            source = source.take(np.sort(rng.choice(len(source), n_train, replace=False)))
        pixel_columns = [c for c in source.column_names if c.startswith("px")]
        pixels = np.stack([source.column(c).to_numpy() for c in pixel_columns], axis=1).astype(np.int16)
        images = np.tile(pixels.reshape(-1, 8, 8), (variants, 1, 1))
        images = _shifted(images, rng.integers(-1, 2, (len(images), 2)))
        images = images + np.rint(rng.normal(0.0, pixel_noise, images.shape)).astype(np.int16)
        flat = np.clip(images, 0, 16).astype(np.uint8).reshape(len(images), 64)
        labels = np.tile(source.column("label").to_numpy().astype(np.int64), variants)
        replaced = rng.permutation(len(labels))[: int(round(label_noise * len(labels)))]
        labels[replaced] = (labels[replaced] + rng.integers(1, 10, len(replaced))) % 10
        columns: dict[str, Any] = {
            "id": [f"{name}-{split}-{i:05d}" for i in range(len(labels))],
            "label": pa.array(labels, pa.int64()),
            "source_id": source.column("id").to_pylist() * variants,
        }
        columns.update({c: pa.array(flat[:, p], pa.uint8()) for p, c in enumerate(pixel_columns)})
        pq.write_table(pa.table(columns), folder / f"{name}_{split}.parquet", compression="zstd")


def _shifted(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each image moved by its (down, right) shift, the uncovered border filled with zeros."""
    out = np.zeros_like(images)
    height, width = images.shape[1:]
    for (dy, dx), image, target in zip(shifts, images, out):
        target[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = image[
            max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
        ]
    return out


MIXED_FEATURES = (
    ("sensor_a", "milli", "float32"),
    ("sensor_b", "milli", "float32"),
    ("sensor_c", "milli", "float32"),
    ("income", "amount", "int64"),
    ("balance", "amount", "int64"),
    ("credit_limit", "amount", "int64"),
    ("visits", "count", "int32"),
    ("items", "count", "int32"),
    ("returns", "count", "int32"),
    ("spend", "lognormal", "float32"),
    ("is_member", "flag", "bool_"),
    ("has_card", "flag", "bool_"),
    ("drift", "milli", "float32"),
    ("postcode_area", "amount", "int64"),
    ("logins", "count", "int32"),
)
"""The columns of :func:`mixed_workload`: (name, kind, Arrow type); the kind says how the row's
latent value z becomes the recorded one (see there). The last :data:`MIXED_NOISE_FEATURES` carry
no class signal."""
MIXED_NOISE_FEATURES = 3


def mixed_workload(
    folder: Path,
    name: str,
    *,
    seed: int,
    classes: int,
    n_train: int,
    n_test: int,
    separation: float,
) -> None:
    """Write ``NAME_train.parquet`` and ``NAME_test.parquet``: a tabular workload of mixed scales
    and types, as recorded business data is (unlike the 0/1 features of :func:`prototype_workload`).

    Each row has a class and one latent value z per feature: for the informative ones its class's
    mean (drawn once per class and feature, standard normal × ``separation``) plus standard normal
    noise; for the last :data:`MIXED_NOISE_FEATURES`, noise alone. z becomes the recorded value
    by the feature's kind: ``milli`` a reading 1e-3·(2 + z); ``amount`` a whole number
    round(20000 + 6000·z); ``count`` a Poisson count of mean exp(1 + z/2); ``lognormal`` a
    heavy-tailed exp(4 + 1.2·z); ``flag`` true with probability sigmoid(1.5·z). So the raw values
    span some ten orders of magnitude (without standardization an MLP sees mostly the amounts),
    and the counts, flags and rounding tie rows on some features.

    With a small ``separation`` the classes overlap: an MLP on standardized features (``mean:
    auto``, ``std: auto``) fits every training row, those in the overlap by memorizing them, and
    generalizes only partly; a model retrained without some rows gets them wrong as often as it
    does held-out rows, and a loss-threshold attack tells the original's members apart.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    informative = len(MIXED_FEATURES) - MIXED_NOISE_FEATURES
    means = np.zeros((classes, len(MIXED_FEATURES)))
    means[:, :informative] = separation * rng.standard_normal((classes, informative))
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, classes, n)
        latent = means[labels] + rng.standard_normal((n, len(MIXED_FEATURES)))
        columns: dict[str, Any] = {
            "id": [f"{name}-{split}-{i:05d}" for i in range(n)],
            "label": pa.array(labels, pa.int64()),
        }
        for j, (column, kind, arrow_type) in enumerate(MIXED_FEATURES):
            z = latent[:, j]
            if kind == "milli":
                value = 1e-3 * (2.0 + z)
            elif kind == "amount":
                value = np.rint(20000.0 + 6000.0 * z)
            elif kind == "count":
                value = rng.poisson(np.exp(1.0 + 0.5 * z))
            elif kind == "lognormal":
                value = np.exp(4.0 + 1.2 * z)
            else:  # flag
                value = rng.random(n) < 1.0 / (1.0 + np.exp(-1.5 * z))
            columns[column] = pa.array(value, getattr(pa, arrow_type)())
        pq.write_table(pa.table(columns), folder / f"{name}_{split}.parquet", compression="zstd")


BUILTIN_RECIPES: dict[str, Callable[[Path], None]] = {
    "purchase": partial(
        prototype_workload, name="purchase", seed=20251127, classes=100, flip=0.405, n_train=6000, n_test=2000
    ),
    "noisy": partial(
        prototype_workload,
        name="noisy",
        seed=20251128,
        classes=10,
        flip=0.44,
        n_train=4000,
        n_test=2000,
        label_noise=0.15,
    ),
    "noisyimages": partial(
        noisy_digits_workload, name="noisyimages", seed=20251201, n_train=1000, test_variants=3, label_noise=0.3
    ),
    "mixed": partial(
        mixed_workload, name="mixed", seed=20251202, classes=4, n_train=3000, n_test=1500, separation=0.55
    ),
}
"""How each shipped synthetic dataset was made: ``BUILTIN_RECIPES[name](folder)`` writes its files
into ``folder`` (``scripts/make_builtin_workloads.py`` into ``iau_cli/builtin``)."""
