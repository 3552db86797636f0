"""Training throughput with and without gradient restriction (GR costs a double backward).

    python benchmarks/throughput.py [--epochs 5] [--repeats 3] [--out benchmarks/results/throughput.json]

For each workload (the built-in digits MLP, LeNet-5 on the digits as 32×32 images) and each
gr_alpha in {0, 0.005}: train `epochs` epochs `repeats` times in this process and report the
median samples/s and the GR slowdown (no-GR samples/s ÷ GR samples/s), measured in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from iau_cli.config import preset  # noqa: E402
from iau_cli.core.training import partition_rows, train_model  # noqa: E402
from iau_cli.io.data import load_data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/throughput.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    results = []
    for name in ("digits-mlp", "digits-lenet"):
        base = preset(name)
        data = load_data(base.data)
        rows = partition_rows(data, base.train)
        for alpha in (0.0, 0.005):
            config = dataclasses.replace(
                base, train=dataclasses.replace(base.train, epochs=args.epochs, gr_alpha=alpha)
            )
            train_model(
                dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1)), data, rows, device
            )
            speeds = []
            for _ in range(args.repeats):
                _, stats = train_model(config, data, rows, device)
                speeds.append(stats.samples_per_second)
            results.append(
                {"workload": name, "gr_alpha": alpha, "samples_per_second": statistics.median(speeds), "runs": speeds}
            )
            print(
                f"{name:13s} gr_alpha={alpha:<6} median {statistics.median(speeds):9,.0f} samples/s  {[round(s) for s in speeds]}"
            )
    for name in ("digits-mlp", "digits-lenet"):
        plain, gr = (r["samples_per_second"] for r in results if r["workload"] == name)
        print(f"{name:13s} GR slowdown: {plain / gr:.2f}×")
    meta = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"meta": meta, "epochs": args.epochs, "repeats": args.repeats, "results": results}, indent=2)
    )


if __name__ == "__main__":
    main()
