"""Audit wall time (default mode and --shadow-models 4) and the audit figures for the original,
IAU-unlearned and retrained models on the built-in workloads (purchase, which the model
memorizes; the digits MLP and LeNet-5), 5% forget set, and the plain audit verdict of each model.

    python benchmarks/audit_cost.py [--work bench-out/audit] [--out benchmarks/results/audit.json]

Each step is a whole `iau` process, timed from outside; the figures come from `iau audit --json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
IAU = [sys.executable, "-m", "iau_cli"]
CONFIGS = {
    "purchase-mlp": ("sample_configs/purchase_mlp.yaml", "purchase"),
    "digits-mlp": ("sample_configs/digits_mlp.yaml", "digits"),
    "digits-lenet": ("sample_configs/digits_lenet.yaml", "digits"),
}


def iau(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([*IAU, *args], capture_output=True, text=True)
    if result.returncode not in (0, 1):
        raise RuntimeError(result.stderr)
    return time.perf_counter() - started, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench-out/audit"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/audit.json"))
    parser.add_argument("--shadows", type=int, default=4)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    import pyarrow.parquet as pq

    from iau_cli.io.data import BUILTIN_DATASETS

    results = {}
    for name, (config, dataset) in CONFIGS.items():
        ids = pq.read_table(BUILTIN_DATASETS[dataset]["train"], columns=["id"]).column("id").to_pylist()
        forget = args.work / f"forget-{dataset}.txt"
        chosen = np.random.default_rng(0).choice(ids, size=round(0.05 * len(ids)), replace=False)
        forget.write_text("\n".join(sorted(chosen)) + "\n")
        original, unlearned, retrained = (
            args.work / f"{name}-{k}.safetensors" for k in ("original", "unlearned", "retrained")
        )
        if not original.exists():
            iau("train", config, "--out", str(original), "-q")
        for path, method in ((unlearned, "iau"), (retrained, "retrain")):
            if not path.exists():
                iau("unlearn", str(original), "-f", str(forget), "-o", str(path), "-m", method, "-q")
        audit = ["audit", str(unlearned), "-f", str(forget), "--reference", str(retrained), "--original", str(original)]
        default_seconds, stdout = iau(*audit, "--json", "-", "-q")
        thorough_seconds, thorough_stdout = iau(*audit, "--shadow-models", str(args.shadows), "--json", "-", "-q")
        # The verdict of a plain `iau audit MODEL -f ids` for each model: the original must fail it.
        verdicts = {}
        for label, path in (("original", original), ("IAU-unlearned", unlearned), ("retrained", retrained)):
            payload = json.loads(iau("audit", str(path), "-f", str(forget), "--json", "-", "-q")[1])
            verdicts[label] = {"verdict": payload["verdict"], **{c["id"]: c["status"] for c in payload["checks"]}}
        results[name] = {
            "audit_seconds": default_seconds,
            "thorough_seconds": thorough_seconds,
            "shadow_models": args.shadows,
            "audit": json.loads(stdout),
            "thorough": json.loads(thorough_stdout),
            "verdicts": verdicts,
        }
        print(
            f"{name}: audit {default_seconds:.1f} s, --shadow-models {args.shadows} {thorough_seconds:.1f} s; "
            f"verdicts {verdicts}",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print_table(results)


def print_table(results: dict) -> None:
    print("| workload | model | forget acc | retain acc | test acc | MIA AUC | challenge acc | LiRA AUC | TPR@1%FPR |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        audit, thorough = result["audit"], result["thorough"]
        for label, key in (("original", "original"), ("IAU-unlearned", "model"), ("retrained", "reference")):
            figures, lira = audit[key], thorough[key]["mia"]
            accuracy, mia = figures["accuracy"], figures["mia"]
            print(
                f"| {name} | {label} | {accuracy['forget']:.3f} | {accuracy['retain']:.3f} | {accuracy['test']:.3f} | "
                f"{mia['loss_auc']:.3f} | {mia['challenge_accuracy']:.3f} | {lira['lira_auc']:.3f} | {mia['tpr_at_fpr']['0.01']:.3f} |"
            )


if __name__ == "__main__":
    main()
