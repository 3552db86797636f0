"""Probe (issue 20): which shadow models make the per-row check hold its null where the training
split differs from the test split (`builtin:noisy`: wrong labels in the training split only).

    python benchmarks/shadow_variants.py --variant halves --workloads noisy-mlp --pools 5 --out benchmarks/results/shadow_variants_halves.json
    python benchmarks/shadow_variants.py --variant line --workloads noisy-mlp --pools 5 --out benchmarks/results/shadow_variants_line.json
    python benchmarks/shadow_variants.py --variant complement --workloads noisy-mlp --pools 8 --out benchmarks/results/shadow_variants_complement.json
    python benchmarks/shadow_variants.py --variant retrain --held-back 0 --workloads noisy-mlp --pools 8 --out benchmarks/results/shadow_variants_retrain0.json
    python benchmarks/shadow_variants.py --variant retrain --held-back 256 --workloads noisy-mlp --pools 8 --out benchmarks/results/shadow_variants_retrain256.json
    python benchmarks/shadow_variants.py --variant retrain --held-back 128 --workloads noisy-mlp --pools 8 --out benchmarks/results/shadow_variants_retrain128.json

Runs `audit_calibration.py --thorough` with `iau audit`'s shadow training replaced by a variant:
- ``halves``: LiRA's shadows, each on a random half of the retained rows less the proxy rows (the
  audit before this probe);
- ``line``: the same shadows, and a line fitted from the shadows' mean φ to the audited model's on
  the held-out rows, z taken from that line;
- ``complement``: every shadow on all the retained rows less the proxy rows, other seeds;
- ``retrain``: every shadow on the retained rows less ``--held-back`` of the proxy rows, other seeds
  (what `iau audit` does now: 128 without `--original`, none with it).
Every variant uses the retrain's validation rows (none on the built-in presets, whose
``val_fraction`` is 0) and `iau audit`'s shadow seeds (never the recipe's). Not a test: the
variants' figures are in BENCHMARKS.md §4b.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def variant_scores(variant: str, held_back_rows: int):
    import iau_cli.recipes.audit as audit
    from iau_cli.core.training import RowPartition, train_model

    def shadow_scores(restored, rows, request, models, progress=audit.no_progress):
        rng = np.random.default_rng(request.seed + 1)
        train, test = restored.data.train, restored.data.test
        val = restored.partition(exclude={train.ids[r] for r in rows.forget}).val
        if variant == "retrain":
            held_back = np.sort(rng.choice(len(rows.proxy), size=min(len(rows.proxy), held_back_rows), replace=False))
        else:
            held_back = np.arange(len(rows.proxy))
        unseen = rows.proxy[held_back]
        trainable = np.setdiff1d(rows.retain, unseen)
        phis: dict[str, list[np.ndarray]] = {"forget": [], "pool": [], "proxy": []}
        for shadow in range(request.shadow_models):
            learn = trainable
            if variant in ("halves", "line"):
                learn = np.sort(rng.choice(trainable, size=len(trainable) // 2, replace=False))
            seed = audit.shadow_seed(restored.config.train.seed, request.seed, shadow)
            config = dataclasses.replace(restored.config, train=dataclasses.replace(restored.config.train, seed=seed))
            model, _ = train_model(config, restored.data, RowPartition(learn=learn, val=val), restored.device)
            for key, split, index in (
                ("forget", train, rows.forget),
                ("pool", test, rows.nonmember),
                ("proxy", train, unseen),
            ):
                phis[key].append(audit._phi(model, restored, split, index, request))
        stacked = {key: np.stack(value) for key, value in phis.items()}
        pooled_std = float(np.concatenate([stacked["forget"], stacked["pool"]], axis=1).std(axis=0).mean()) + 1e-6
        result = {}
        for name, model in models.items():
            observed = {
                "forget": audit._phi(model, restored, train, rows.forget, request),
                "pool": audit._phi(model, restored, test, rows.nonmember, request),
                "proxy": audit._phi(model, restored, train, unseen, request),
            }
            slope, intercept = (1.0, 0.0)
            if variant == "line":
                slope, intercept = np.polyfit(stacked["pool"].mean(0), observed["pool"], 1)
            z = {k: (observed[k] - (intercept + slope * stacked[k].mean(0))) / pooled_std for k in observed}
            sides = {k: audit._side(observed[k], stacked[k]) for k in ("forget", "pool")}
            result[name] = audit.ShadowZ(z["forget"], z["pool"], z["proxy"], sides["forget"], sides["pool"], held_back)
        return result

    return shadow_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["halves", "line", "complement", "retrain"], required=True)
    parser.add_argument("--held-back", type=int, default=128)
    parser.add_argument("--workloads", default="noisy-mlp")
    parser.add_argument("--pools", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("bench-out/calibration"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import audit_calibration as calibration

    import iau_cli.recipes.audit as audit

    audit.shadow_scores = variant_scores(args.variant, args.held_back)
    options = argparse.Namespace(work=args.work, pools=args.pools, device="cpu", shadows=4, alpha=0.01)
    results = {w: calibration.thorough(options, w) for w in args.workloads.split(",")}
    for result in results.values():
        result["variant"], result["held_back"] = args.variant, args.held_back
    args.out.write_text(json.dumps(results, indent=2))
    print(calibration.thorough_markdown(args.out))


if __name__ == "__main__":
    main()
