"""Development-time conversion of the built-in dataset (not run by users or CI).

Reads scikit-learn's copy of the UCI optical handwritten digits (1,797 8x8 images, pixel values
0..16) and writes two small parquet files into ``iau_cli/builtin/``: a fixed, class-stratified
80/20 train/test split with string sample ids. Requires scikit-learn and pyarrow.

    python scripts/make_builtin_digits.py
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_digits

OUT_DIR = Path(__file__).resolve().parent.parent / "iau_cli" / "builtin"
TEST_FRACTION = 0.2
SEED = 20250731


def main() -> None:
    bunch = load_digits()
    pixels = bunch.data.astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    rng = np.random.default_rng(SEED)
    is_test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_test = int(round(TEST_FRACTION * len(members)))
        is_test[rng.choice(members, size=n_test, replace=False)] = True
    for split, mask in (("train", ~is_test), ("test", is_test)):
        rows = np.flatnonzero(mask)
        columns = {
            "id": pa.array([f"digit-{i:04d}" for i in rows], pa.string()),
            "label": pa.array(labels[rows], pa.int64()),
        }
        for p in range(64):
            columns[f"px{p // 8}{p % 8}"] = pa.array(pixels[rows, p], pa.uint8())
        pq.write_table(pa.table(columns), OUT_DIR / f"digits_{split}.parquet", compression="zstd")
        print(split, len(rows))


if __name__ == "__main__":
    main()
