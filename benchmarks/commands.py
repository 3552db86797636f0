"""Whole commands before and after a change, interleaved in one run (issue 13: retrain, bench and
audit --shadow-models ride the same data path as train).

    python benchmarks/commands.py --before /path/to/old/checkout [--repeats 2]

Each step is a whole `python -m iau_cli` process, timed from outside, once with the old checkout on
PYTHONPATH and once with this one, alternating, so that a busy machine slows both alike. Each
checkout gets its own fresh feature cache (the first command of the new code pays the encoding).
Steps: train the built-in digits MLP (100 epochs) and LeNet-5 (30 epochs); retrain without 5% of the
rows (`unlearn -m retrain`); `audit --shadow-models 4`; a one-seed `bench` at 5% with the original,
retrain and iau rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code before the change")
    parser.add_argument("--after", type=Path, default=ROOT, help="the checkout after it (default: this one)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/commands.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="iau-commands-"))
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from iau_cli.io.data import BUILTIN_DATASETS

    ids = pq.read_table(BUILTIN_DATASETS["digits"]["train"], columns=["id"]).column("id").to_pylist()
    forget = work / "forget.txt"
    forget.write_text("\n".join(sorted(np.random.default_rng(0).choice(ids, size=72, replace=False))) + "\n")
    bench_yaml = work / "bench.yaml"
    bench_yaml.write_text(
        f"workloads: [{{name: digits-mlp, config: {ROOT / 'sample_configs/digits_mlp.yaml'}}}]\n"
        "methods:\n  - {label: original, method: original}\n  - {label: retrain, method: retrain}\n"
        "  - {label: iau, method: iau}\nratios: [0.05]\nseeds: 1\n"
    )
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    caches = {name: Path(tempfile.mkdtemp(prefix=f"iau-cache-{name}-")) for name in checkouts}
    steps = {
        "train digits-mlp": lambda w, m: ["train", ROOT / "sample_configs/digits_mlp.yaml", "--out", m("mlp")],
        "train digits-lenet": lambda w, m: ["train", ROOT / "sample_configs/digits_lenet.yaml", "--out", m("lenet")],
        "retrain digits-mlp": lambda w, m: ["unlearn", m("mlp"), "-f", forget, "-m", "retrain", "-o", m("mlp-r")],
        "retrain digits-lenet": lambda w, m: ["unlearn", m("lenet"), "-f", forget, "-m", "retrain", "-o", m("lenet-r")],
        "audit --shadow-models 4 (mlp)": lambda w, m: ["audit", m("mlp-r"), "-f", forget, "--shadow-models", "4"],
        "bench (1 seed, 5%, 3 rows)": lambda w, m: ["bench", bench_yaml, "--out", w / "bench"],
    }
    times: dict[str, dict[str, list[float]]] = {step: {name: [] for name in checkouts} for step in steps}
    for repeat in range(args.repeats):
        for step, make in steps.items():
            for name, checkout in checkouts.items():
                folder = work / name / f"r{repeat}"
                folder.mkdir(parents=True, exist_ok=True)

                def model(key: str, folder: Path = folder) -> Path:
                    return folder / f"{key}.safetensors"

                env = {
                    **os.environ,
                    "PYTHONPATH": str(checkout),
                    "IAU_CACHE_DIR": str(caches[name]),
                    "HF_HUB_OFFLINE": "1",
                }
                command = [sys.executable, "-m", "iau_cli", *map(str, make(folder, model)), "-q"]
                started = time.perf_counter()
                result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work)
                elapsed = time.perf_counter() - started
                if result.returncode not in (0, 1):
                    raise RuntimeError(f"{name}: {' '.join(command)}: {result.stderr}")
                times[step][name].append(elapsed)
                print(f"{step:32s} {name:6s} {elapsed:7.2f} s", flush=True)
    summary = {
        step: {name: statistics.median(values) for name, values in by_name.items()} for step, by_name in times.items()
    }
    print("\n| command | before s | after s | speed-up |\n|---|---|---|---|")
    for step, medians in summary.items():
        print(
            f"| {step} | {medians['before']:.1f} | {medians['after']:.1f} | {medians['before'] / medians['after']:.2f}× |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"times": times, "median": summary, "repeats": args.repeats}, indent=2))


if __name__ == "__main__":
    main()
