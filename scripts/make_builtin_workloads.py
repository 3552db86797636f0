"""Development-time generation of the built-in synthetic workloads (not run by users or CI).

Writes into ``iau_cli/builtin/`` (see SOURCE.md there):

- ``purchase_{train,test}.parquet`` — a Purchase-100-like *memorizing* workload: 100 classes, each
  a random binary prototype over 600 features; a row is its class's prototype with every bit
  flipped independently with probability 0.405. Few, noisy rows per class: an MLP fits every
  training row and generalizes to about 75%, so a loss-threshold attack tells members from
  held-out rows (Shokri et al. 2017 made Purchase-100 the standard membership benchmark).
- ``noisy_{train,test}.parquet`` and ``noisy_flipped.txt`` — a label-noise *cleanup* workload: the
  same generator with 10 classes (flip probability 0.44), and 15% of the training labels replaced
  by another class. An MLP fits the wrong labels and loses test accuracy that retraining without
  the flipped rows (listed in ``noisy_flipped.txt``) recovers.

Generated once from fixed seeds with numpy and shipped, so a numpy release that changes its
random streams cannot change the data under a checkpoint's fingerprint.

    python scripts/make_builtin_workloads.py
"""

from __future__ import annotations

from pathlib import Path

from iau_cli.synthetic import prototype_workload

OUT_DIR = Path(__file__).resolve().parent.parent / "iau_cli" / "builtin"


def main() -> None:
    prototype_workload(OUT_DIR, "purchase", seed=20251127, classes=100, flip=0.405, n_train=6000, n_test=2000)
    prototype_workload(
        OUT_DIR, "noisy", seed=20251128, classes=10, flip=0.44, n_train=4000, n_test=2000, label_noise=0.15
    )


if __name__ == "__main__":
    main()
