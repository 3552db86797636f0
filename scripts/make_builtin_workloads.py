"""Development-time generation of the built-in synthetic workloads (not run by users or CI).

Writes into ``iau_cli/builtin/`` (see SOURCE.md there), each from its fixed recipe in
``tests.synthetic.BUILTIN_RECIPES``:

- ``purchase_{train,test}.parquet`` — a Purchase-100-like *memorizing* workload: 100 classes, each
  a random binary prototype over 600 features; a row is its class's prototype with every bit
  flipped independently with probability 0.405. Few, noisy rows per class: an MLP fits every
  training row and generalizes to about 75%, so a loss-threshold attack tells members from
  held-out rows (Shokri et al. 2017 made Purchase-100 the standard membership benchmark).
- ``noisy_{train,test}.parquet`` and ``noisy_flipped.txt`` — a label-noise *cleanup* workload: the
  same generator with 10 classes (flip probability 0.44), and 15% of the training labels replaced
  by another class. An MLP fits the wrong labels and loses test accuracy that retraining without
  the flipped rows (listed in ``noisy_flipped.txt``) recovers.
- ``noisyimages_{train,test}.parquet`` — a memorizing *image* workload: shifted, noisy copies of
  the built-in 8×8 digits (1,000 train, each from its own digit; 3 of each of the 359 test digits),
  30% of the labels in both splits replaced. LeNet-5 fits the wrong training labels one by one.
- ``mixed_{train,test}.parquet`` — a memorizing *tabular* workload of another shape: 4 overlapping
  classes, 15 features of mixed scales and types (readings near 1e-3, amounts near 2e4, counts, a
  log-normal amount, flags), 3,000/1,500 rows, for an MLP on standardized features.

Generated once from fixed seeds with numpy and shipped, so a numpy release that changes its
random streams cannot change the data under a checkpoint's fingerprint (a test regenerates them
and compares, so a generator edited without new files shows).

    python scripts/make_builtin_workloads.py [NAME ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the generator lives in tests/
from tests.synthetic import BUILTIN_RECIPES  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent.parent / "iau_cli" / "builtin"


def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(BUILTIN_RECIPES))
    if unknown:
        sys.exit(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(BUILTIN_RECIPES)}")
    for name in names or BUILTIN_RECIPES:
        BUILTIN_RECIPES[name](OUT_DIR)
        print(name, "written")


if __name__ == "__main__":
    main(sys.argv[1:])
