"""How close the stored per-row targets are to what retrained models give each row (issue 19).

    python benchmarks/target_quality.py --workloads purchase-mlp,mixed-mlp,noisyimages-lenet \
        --forget 0.05 --retrains 4 --out benchmarks/results/target_quality.json

Per workload (seed 0 of the built-in preset, trained as ``iau train`` trains it, reference models
included): a random forget set, ``--retrains`` models retrained without it (the recipe's seed, then
other seeds), and per forget row φ = log(p_y/(1 − p_y)) of each. Reports the targets t against μ,
the retrained models' mean φ per row: mean and spread of each, their correlation and rms distance,
the least-squares line μ ≈ a + b·t (b < 1: the targets are spread wider than the conditional mean),
the line from the references' own mean φ̄ to μ against the line ``iau train`` fitted on held-out rows,
and, as a yardstick (not a floor: the conditional mean would sit closer to μ), one retrained model's
rms distance and correlation to the mean of the others. Not a test: the figures are in BENCHMARKS.md §1.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from iau_cli.config import preset  # noqa: E402
from iau_cli.core.methods import get_method  # noqa: E402
from iau_cli.core.references import phi  # noqa: E402
from iau_cli.recipes.train import restore, train  # noqa: E402
from iau_cli.recipes.unlearn import build_context, plan_rows  # noqa: E402


def least_squares(x: np.ndarray, y: np.ndarray) -> list[float]:
    slope = float(np.cov(x, y, bias=True)[0, 1] / np.var(x))
    return [float(np.mean(y) - slope * np.mean(x)), slope]


def one_workload(name: str, ratio: float, retrains: int, folder: Path) -> dict:
    path = folder / f"{name}.safetensors"
    train(preset(name), path, device="cpu", overwrite=True)
    restored = restore(path, device="cpu")
    learn = restored.partition().learn
    count = max(1, round(ratio * len(learn)))
    rows = plan_rows(restored, sorted(np.random.default_rng(1).choice(learn, count, replace=False).tolist()))
    context = build_context(restored, rows, model=copy.deepcopy(restored.model))
    targets = np.asarray(context.forget_targets, dtype=np.float64)
    a, b = restored.meta.references["fit"]
    reference_mean = (targets - a) / b  # φ̄: the references' mean φ, before iau train's line
    spec = get_method("retrain")
    retrained = []
    for k in range(retrains):
        context = build_context(restored, rows, model=copy.deepcopy(restored.model))
        output = spec.run(context, spec.parse_options({"seed": 1000 * k} if k else {}))
        retrained.append(phi(output.model, restored.data.train, rows.forget, restored.device))
    phis = np.array(retrained)
    mu = phis.mean(0)
    others = [np.delete(phis, k, 0).mean(0) for k in range(retrains)]
    return {
        "workload": name,
        "forget_rows": int(count),
        "retrains": retrains,
        "original_mean_phi": float(phi(restored.model, restored.data.train, rows.forget, restored.device).mean()),
        "target_mean": float(targets.mean()),
        "retrained_mean": float(mu.mean()),
        "target_sd": float(targets.std()),
        "retrained_sd_one_model": float(phis.std(1).mean()),
        "retrained_seed_sd_per_row": float(phis.std(0, ddof=1).mean()),
        "correlation_target_retrained_mean": float(np.corrcoef(targets, mu)[0, 1]),
        "rms_target_to_retrained_mean": float(np.sqrt(np.mean((targets - mu) ** 2))),
        "line_retrained_mean_on_target": least_squares(targets, mu),
        "line_fitted_at_training": [a, b],
        "line_retrained_mean_on_reference_mean": least_squares(reference_mean, mu),
        "one_retrain_rms_to_others": float(np.mean([np.sqrt(np.mean((p - o) ** 2)) for p, o in zip(phis, others)])),
        "one_retrain_correlation_to_others": float(np.mean([np.corrcoef(p, o)[0, 1] for p, o in zip(phis, others)])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="purchase-mlp,mixed-mlp,noisyimages-lenet")
    parser.add_argument("--forget", type=float, default=0.05)
    parser.add_argument("--retrains", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.retrains < 3:
        parser.error("--retrains: at least 3 (one retrained model is compared with the mean of the others)")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.workloads.split(","):
            results.append(one_workload(name, args.forget, args.retrains, Path(folder)))
            print(json.dumps(results[-1]), flush=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
