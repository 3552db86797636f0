"""What a default deletion costs as the data grows, and what its reference targets cost once (issue 19).

    python benchmarks/request_cost.py [--sizes 5000,50000] [--forget 30] [--repeats 5] [--out PATH]

For each size: a training set of jittered copies of the built-in digits (benchmarks/scaling.py's
``make_rows``), the built-in MLP recipe for 3 epochs — timed as ``iau train`` runs it, the
plain training and the reference models separately (the one-off cost, as a multiple of the plain
training) — then the default rule (``iau``, rule auto → targeted) forgetting the same number of
rows, timed in-process (median of ``--repeats``, each from the original), and one retrain without
those rows for RTE. Writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from scaling import make_rows  # noqa: E402

from iau_cli.config import preset  # noqa: E402
from iau_cli.core.methods import get_method  # noqa: E402
from iau_cli.recipes.train import restore, train  # noqa: E402
from iau_cli.recipes.unlearn import build_context, plan_rows  # noqa: E402


def one_size(size: int, forget: int, repeats: int, folder: Path) -> dict:
    config = preset("digits-mlp")
    data = dataclasses.replace(config.data, train=str(make_rows(size, folder)), test="builtin:digits")
    config = dataclasses.replace(config, data=data, train=dataclasses.replace(config.train, epochs=3))
    path = folder / f"model-{size}.safetensors"
    result = train(config, path, device="cpu", overwrite=True)
    restored = restore(path, device="cpu")
    learn = restored.partition().learn
    rows = plan_rows(restored, sorted(np.random.default_rng(0).choice(learn, forget, replace=False).tolist()))
    spec = get_method("iau")
    seconds, details = [], {}
    for _ in range(repeats):
        context = build_context(restored, rows, model=copy.deepcopy(restored.model))
        started = time.perf_counter()
        output = spec.run(context, spec.parse_options({}))
        seconds.append(time.perf_counter() - started)
        details = output.details
    retrain = get_method("retrain")
    context = build_context(restored, rows, model=copy.deepcopy(restored.model))
    started = time.perf_counter()
    retrain.run(context, retrain.parse_options({}))
    retrain_seconds = time.perf_counter() - started
    median = statistics.median(seconds)
    return {
        "rows": size,
        "forget": forget,
        "train_seconds": result.seconds,
        "reference_seconds": result.reference_seconds,
        "reference_multiple": result.reference_seconds / result.seconds,
        "unlearn_seconds_median": median,
        "unlearn_seconds": seconds,
        "rule": details.get("rule"),
        "check": details.get("check", {}).get("code"),
        "retrain_seconds": retrain_seconds,
        "rte": retrain_seconds / median,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--forget", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("bench-out/request-cost"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/request_cost.json"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = [one_size(int(s), args.forget, args.repeats, args.work) for s in args.sizes.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for r in results:
        print(
            f"{r['rows']:>7,} rows: train {r['train_seconds']:.1f} s + references {r['reference_seconds']:.1f} s "
            f"({r['reference_multiple']:.2f}x); unlearn {r['forget']} rows {r['unlearn_seconds_median']:.3f} s "
            f"(median of {len(r['unlearn_seconds'])}); retrain {r['retrain_seconds']:.1f} s; RTE {r['rte']:.0f}"
        )


if __name__ == "__main__":
    main()
