"""A chain of small requests run the way a retention job runs it (issue 19): `iau unlearn` on the
previous output each time, with and without `--fallback retrain`, so that the chain-level
self-check (`chain_heldout_drop`: held-out accuracy since the model was trained or retrained)
can act. The final model is judged against one retrained without every request's rows.

    python benchmarks/chain_fallback.py --config builtin:purchase-mlp --requests 30 --rows 30 \
        --out benchmarks/results/chain_fallback_purchase.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from iau_cli.config import preset
    from iau_cli.core.metrics import predict, tug_of_war
    from iau_cli.io.ids import parse_forget_ids
    from iau_cli.recipes.train import restore, train
    from iau_cli.recipes.unlearn import UnlearnRequest, unlearn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="builtin:purchase-mlp")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--original", type=Path, help="a checkpoint of the config to start from (else trained)")
    parser.add_argument("--option", "-O", action="append", default=[], metavar="KEY=VALUE", help="an iau -O option")
    parser.add_argument("--fallbacks", default="none,retrain", help="which runs: none, retrain or both")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="iau-chain-"))
    original = args.original
    if original is None:
        original = work / "original.safetensors"
        train(preset(args.config.removeprefix("builtin:")), original, device="cpu")
    restored = restore(original, device="cpu")
    ids = restored.data.train.ids
    learned = restored.partition().learn
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(learned, size=args.requests * args.rows, replace=False)
    requests = [[ids[r] for r in part] for part in np.split(chosen, args.requests)]
    every = [i for part in requests for i in part]

    def ask(start: Path, forget: list[str], out: Path, **kwargs):
        request = UnlearnRequest(
            checkpoint=str(start),
            forget=parse_forget_ids("\n".join(forget).encode(), "ids"),
            out=str(out),
            device="cpu",
            **kwargs,
        )
        return unlearn(request)

    def figures(path: Path) -> dict[str, float]:
        model = restore(path, device="cpu").model
        test = restored.data.test
        index = restored.data.train.row_index()
        forget_rows = np.array(sorted(index[i] for i in every))
        return {
            "forget": predict(model, restored.data.train, forget_rows, restored.device).accuracy,
            "retain": predict(model, restored.data.train, np.setdiff1d(learned, forget_rows), restored.device).accuracy,
            "test": predict(model, test, test.halves()[1], restored.device).accuracy,
        }

    started = time.perf_counter()
    ask(original, every, work / "retrained.safetensors", method="retrain")
    retrain_seconds = time.perf_counter() - started
    reference = figures(work / "retrained.safetensors")
    result = {"config": args.config, "requests": args.requests, "rows": args.rows, "retrained": reference, "runs": {}}
    result["options"] = args.option
    result["retrain_seconds"] = retrain_seconds
    from iau_cli.config import parse_key_values

    options = parse_key_values(args.option, source="--option")
    runs = {"none": "no fallback", "retrain": "--fallback retrain"}
    for fallback in args.fallbacks.split(","):
        label = runs[fallback]
        current, steps, started = original, [], time.perf_counter()
        for n, part in enumerate(requests):
            out = work / f"{fallback}-{n}.safetensors"
            outcome = ask(current, part, out, fallback=fallback, options=dict(options))
            check = outcome.details.get("fallback_from", {}).get("ran", {}).get("check") or outcome.details.get("check")
            steps.append({"check": (check or {}).get("code"), "fell_back": outcome.fell_back, **figures(out)})
            current = out
            print(f"{label}: request {n + 1}: {steps[-1]}", flush=True)
        final = figures(current)
        result["runs"][label] = {
            "seconds": time.perf_counter() - started,
            "final": final,
            "tow": tug_of_war(final, reference),
            "fallbacks": sum(s["fell_back"] for s in steps),
            "checks": {c: sum(s["check"] == c for s in steps) for c in {s["check"] for s in steps}},
            "steps": steps,
        }
    result["command"] = " ".join(sys.argv)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for label, run in result["runs"].items():
        print(label, run["final"], "ToW", round(run["tow"], 3), "fallbacks", run["fallbacks"], run["checks"])
    print("retrained", reference)


if __name__ == "__main__":
    main()
