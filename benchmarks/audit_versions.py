"""The audit's wall time, this checkout against an earlier one, measured in one run, alternating.

    git worktree add /tmp/iau-old bbcddbb     # the audit before issue 20
    python benchmarks/audit_versions.py --old /tmp/iau-old --repeats 3 --out benchmarks/results/audit_versions.json

Each version trains its own checkpoints with its own code (checkpoint formats differ between
versions): the purchase MLP, the default rule's deletion of a 5% forget set, and a retrain; then
`iau audit UNLEARNED -f ids --reference RETRAINED --original ORIGINAL` is timed as a whole process,
old and new alternating, `--repeats` times, and once each with `--shadow-models K` (thorough mode).
Medians and the ratio are what to quote: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
CONFIG = "sample_configs/purchase_mlp.yaml"


def iau(checkout: Path, *args: str) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "iau_cli", *args], capture_output=True, text=True, env=env, cwd=checkout
    )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"{checkout}: iau {' '.join(args)}: {result.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def checkpoints(checkout: Path, work: Path, forget: Path) -> list[str]:
    """Train, unlearn (the default rule) and retrain with this checkout; the audit's arguments."""
    work.mkdir(parents=True, exist_ok=True)
    original, unlearned, retrained = (work / f"{k}.safetensors" for k in ("original", "unlearned", "retrained"))
    if not original.exists():
        iau(checkout, "train", CONFIG, "--out", str(original), "-q")
    for path, method in ((unlearned, "iau"), (retrained, "retrain")):
        if not path.exists():
            iau(checkout, "unlearn", str(original), "-f", str(forget), "-o", str(path), "-m", method, "-q")
    return ["audit", str(unlearned), "-f", str(forget), "--reference", str(retrained), "--original", str(original)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="a checkout of the earlier version")
    parser.add_argument("--work", type=Path, default=Path("bench-out/audit-versions"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shadows", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import pyarrow.parquet as pq

    from iau_cli.io.data import BUILTIN_DATASETS

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    ids = pq.read_table(BUILTIN_DATASETS["purchase"]["train"], columns=["id"]).column("id").to_pylist()
    forget = work / "forget.txt"
    chosen = np.random.default_rng(0).choice(ids, size=round(0.05 * len(ids)), replace=False)
    forget.write_text("\n".join(sorted(chosen)) + "\n")
    versions = {"old": args.old.resolve(), "new": HERE}
    audits = {name: checkpoints(path, work / name, forget) for name, path in versions.items()}
    times: dict[str, list[float]] = {name: [] for name in versions}
    for _ in range(args.repeats):
        for name, path in versions.items():
            times[name].append(iau(path, *audits[name], "-q"))
    thorough = {
        name: iau(path, *audits[name], "--shadow-models", str(args.shadows), "-q") for name, path in versions.items()
    }
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "old": str(versions["old"]),
        "repeats": args.repeats,
        "audit_seconds": times,
        "audit_median": medians,
        "ratio": medians["new"] / medians["old"],
        "shadow_models": args.shadows,
        "thorough_seconds": thorough,
        "per_shadow_seconds": {name: (thorough[name] - medians[name]) / args.shadows for name in versions},
        "command": " ".join(sys.argv),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
