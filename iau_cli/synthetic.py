"""Synthetic prototype workloads: where membership shows (a model memorizes) and where labels are wrong.

``prototype_workload`` writes a dataset in the shape of Purchase-100 (Shokri et al. 2017, the
usual membership-inference benchmark): each class has a random binary prototype; a row is its
class's prototype with every bit flipped independently with probability ``flip``. With few, noisy
rows per class an MLP fits every training row yet generalizes only partly, so a loss-threshold
attack tells training rows from held-out ones. With ``label_noise`` a fraction of the training
labels is replaced by another class (the rows are listed in ``NAME_flipped.txt``): the model fits
the wrong labels and retraining without them recovers test accuracy.

The built-in ``purchase`` and ``noisy`` datasets were made with it once
(``scripts/make_builtin_workloads.py``) and ship as parquet; tests make small ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
