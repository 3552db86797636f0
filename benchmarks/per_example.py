"""The per-example (U-LiRA) test of unlearning methods: can an attacker tell, row by row, a model a
method unlearned from one retrained without the rows? (``iau_cli.recipes.bench.per_example``; DESIGN §5.)

    python benchmarks/per_example.py [--workload builtin:purchase-mlp] [--seeds 8] [--ratio 0.05 | --rows N]
        [--methods iau 'no-corr=iau:{"correction":0.0}' finetune] [--chain N]
        [--out bench-out/per-example] [--cache bench-out/per-example-cache]

Trains one original per seed (0..S−1) on the workload, all with the same forget set (a random
``--ratio`` of the rows every seed learns from, or ``--rows N`` of them, drawn once with a fixed
seed), retrains each without it, and runs each method on each original (``--chain N``: the forget
set split into N requests forgotten in sequence, the final model judged). Two rows frame the
figure: "retrain (another seed)" (a model retrained with seed + 1000 posing as the unlearned one:
the floor, about 0.5) and "original (no unlearning)" (the ceiling). Originals and retrained models
are cached in ``--cache`` under names that say what made them, so a rerun only runs the methods.
Writes ``per_example.json`` and ``per_example.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from iau_cli.cli.report import Report, Table, to_json  # noqa: E402
from iau_cli.config import to_dict  # noqa: E402
from iau_cli.core.methods import (
    get_method,  # noqa: E402
    retrains,  # noqa: E402
)
from iau_cli.core.metrics import predict, tug_of_war  # noqa: E402
from iau_cli.core.models import nonfinite  # noqa: E402
from iau_cli.core.training import partition_rows  # noqa: E402
from iau_cli.errors import IauError  # noqa: E402
from iau_cli.io.data import load_data  # noqa: E402
from iau_cli.io.files import Outputs  # noqa: E402
from iau_cli.progress import no_progress  # noqa: E402
from iau_cli.recipes.bench.cells import (  # noqa: E402
    SeedGrid,
    chain_plan,
    held_out_accuracy,
    retrain_context,
    run_chain,
    timed_run,
)
from iau_cli.recipes.bench.per_example import per_example_test  # noqa: E402
from iau_cli.recipes.bench.spec import ORIGINAL, MethodEntry, Workload, workload_config  # noqa: E402
from iau_cli.recipes.bench.store import recipe_digest, with_seed  # noqa: E402
from iau_cli.recipes.train import Restored  # noqa: E402

FORGET_SEED = 20240  # the forget set is drawn once, with this seed, whatever --seeds says
ANOTHER_SEED = 1000
ORIGINAL_ROW = MethodEntry("original (no unlearning)", ORIGINAL)
# Its seed moves with the original's (seed + 1000), so that its models scatter as retrained ones do;
# the options shown say so and are never parsed.
ANOTHER_SEED_ROW = MethodEntry("retrain (another seed)", "retrain", {"seed": f"original's + {ANOTHER_SEED}"})


def parse_method(text: str) -> MethodEntry:
    """``label=method:{json options}``; the label and the options may be left out."""
    label, _, spec = text.partition("=") if "=" in text.split(":", 1)[0] else ("", "", text)
    method, _, options = spec.partition(":")
    try:
        parsed = json.loads(options) if options else {}
    except ValueError as exc:
        raise SystemExit(f"--methods {text!r}: the options are not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise SystemExit(f"--methods {text!r}: the options must be a JSON object")
    entry = MethodEntry(label or text, method.strip(), parsed)
    problems = entry.check()
    if problems:
        raise SystemExit(f"--methods {text!r}: {'; '.join(problems)}")
    return entry


def forget_requests(
    config: Any, seeds: int, ratio: float, rows: int | None, chain: int
) -> tuple[list[list[int]], list[str]]:
    """The fixed forget set, split into ``chain`` requests, and its ids: rows every seed's original
    learns from (the validation split moves with the seed), drawn once with ``FORGET_SEED``."""
    data = load_data(config.data)
    learned = None
    for seed in range(seeds):
        learn = partition_rows(data, with_seed(config, seed).train).learn
        learned = learn if learned is None else np.intersect1d(learned, learn)
    assert learned is not None
    size = rows if rows is not None else max(1, round(ratio * len(learned)))
    if not chain <= size < len(learned):
        raise SystemExit(f"the forget set of {size} row(s) must hold {chain} request(s) and leave rows to learn from")
    drawn = np.random.default_rng(FORGET_SEED).choice(learned, size=size, replace=False)
    requests = [sorted(part.tolist()) for part in np.array_split(drawn, chain)]
    return requests, [data.train.ids[r] for r in sorted(drawn.tolist())]


class Retrains:
    """Models retrained without the forget rows, cached by recipe, seed, forget set and options."""

    def __init__(self, folder: Path, forget_ids: list[str]) -> None:
        self.folder = folder
        self.forget_digest = hashlib.sha256("\n".join(sorted(forget_ids)).encode()).hexdigest()[:16]

    def get(self, restored: Restored, rows: Any, options: dict[str, Any]) -> tuple[Any, float]:
        """(model, seconds of the retrain that made it)."""
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file

        recipe = recipe_digest(restored.config)
        options_digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
        path = self.folder / f"retrain-{recipe}-{self.forget_digest}-{options_digest}.safetensors"
        model = copy.deepcopy(restored.model)
        if path.exists():
            model.load_state_dict(load_file(path, device=str(restored.device)))
            with safe_open(path, "pt") as handle:
                return model, float(handle.metadata()["seconds"])
        spec = get_method("retrain")
        output, seconds, _ = timed_run(spec, retrain_context(restored, rows), spec.parse_options(options))
        state = {k: v.detach().cpu().contiguous() for k, v in output.model.state_dict().items()}
        with Outputs() as outputs:
            outputs.stage(path, lambda temp: save_file(state, temp, metadata={"seconds": repr(seconds)}))
            outputs.publish()
        return output.model, seconds


def figures(restored: Restored, model: Any, rows: Any) -> dict[str, Any]:
    """φ on the forget rows, and accuracy on forget, retain and held-out (evaluation-half) rows."""
    train = restored.data.train
    forget = predict(model, train, rows.forget, restored.device, keep_margins=True)
    return {
        "phi": forget.margins,
        "accuracy": {
            "forget": forget.accuracy,
            "retain": predict(model, train, rows.retain, restored.device).accuracy,
            "test": held_out_accuracy(restored, model),
        },
    }


def run_entry(
    entry: MethodEntry, restored: Restored, plan: Any, seed: int, retrained: Retrains
) -> tuple[Any, float] | str:
    """(final model, seconds) of one method on one original, or why it has none."""
    if entry is ORIGINAL_ROW:
        return restored.model, float("nan")
    if entry is ANOTHER_SEED_ROW:
        return retrained.get(restored, plan.rows, {"seed": seed + ANOTHER_SEED})
    if retrains(entry.method):
        return retrained.get(restored, plan.rows, entry.options)
    try:
        outcome = run_chain(restored, plan, entry)
    except IauError as exc:
        return f"refused: {exc}"
    if outcome.diverged_at is not None or nonfinite(outcome.model.state_dict()):
        return "diverged (NaN/Inf parameters)"
    return outcome.model, outcome.seconds


def spread(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return None
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def show(values: dict[str, float] | None, digits: int = 3) -> str:
    if not values:
        return "—"
    mean, low, high = values["mean"], values["min"], values["max"]
    return f"{mean:.{digits}f}" if np.isclose(low, high) else f"{mean:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="builtin:purchase-mlp", help="builtin:NAME or a run-config YAML")
    parser.add_argument("--seeds", type=int, default=8, help="originals (seeds 0..S-1); at least 2")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--ratio", type=float, default=0.05, help="forget this fraction of the learned rows")
    size.add_argument("--rows", type=int, default=None, help="forget this many rows instead")
    parser.add_argument("--methods", nargs="+", default=["iau", "finetune"], help="label=method:{json options}")
    parser.add_argument("--chain", type=int, default=1, help="split the forget set into N requests in sequence")
    parser.add_argument("--out", type=Path, default=Path("bench-out/per-example"))
    parser.add_argument("--cache", type=Path, default=Path("bench-out/per-example-cache"))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.seeds < 2 or args.chain < 1 or not 0 < args.ratio < 1:
        raise SystemExit("--seeds must be at least 2, --chain at least 1 and --ratio between 0 and 1")
    entries = [ORIGINAL_ROW, ANOTHER_SEED_ROW, *map(parse_method, args.methods)]
    workload = Workload(args.workload, args.workload)
    config = workload_config(workload, Path.cwd())
    requests, forget_ids = forget_requests(config, args.seeds, args.ratio, args.rows, args.chain)
    args.cache.mkdir(parents=True, exist_ok=True)
    retrained = Retrains(args.cache, forget_ids)

    phi: dict[str, list[np.ndarray]] = {e.label: [] for e in entries}
    accuracy: dict[str, list[dict[str, float]]] = {e.label: [] for e in entries}
    seconds: dict[str, list[float]] = {e.label: [] for e in entries}
    status: dict[str, str] = {}
    reference_phi, reference_accuracy, retrain_seconds = [], [], []
    for seed in range(args.seeds):
        grid = SeedGrid(workload, config, seed, args.cache, args.device, no_progress, Path.cwd())
        restored = grid.original("gr")
        plan = chain_plan(restored, requests)
        assert len(plan.rows.forget) == len(forget_ids)  # every seed learned every forget row
        reference, t_retrain = retrained.get(restored, plan.rows, {})
        reference_figures = figures(restored, reference, plan.rows)
        reference_phi.append(reference_figures["phi"])
        reference_accuracy.append(reference_figures["accuracy"])
        retrain_seconds.append(t_retrain)
        for entry in entries:
            if entry.label in status:
                continue  # refused or diverged on an earlier seed: no per-example figure
            outcome = run_entry(entry, restored, plan, seed, retrained)
            if isinstance(outcome, str):
                status[entry.label] = outcome
                continue
            model, took = outcome
            measured = figures(restored, model, plan.rows)
            phi[entry.label].append(measured["phi"])
            accuracy[entry.label].append(measured["accuracy"])
            seconds[entry.label].append(took * (args.chain if retrains(entry.method) else 1))
        print(f"seed {seed}: done ({len(plan.rows.forget)} forget rows)", file=sys.stderr, flush=True)

    reference_phi_array = np.stack(reference_phi)
    rows_out = []
    for entry in entries:
        record: dict[str, Any] = {
            "label": entry.label,
            "method": entry.method,
            "options": entry.options,
            "status": status.get(entry.label, "ok"),
        }
        if record["status"] == "ok":
            test = per_example_test(np.stack(phi[entry.label]), reference_phi_array)
            pairs = list(zip(accuracy[entry.label], reference_accuracy))
            record.update(
                attack_accuracy=test.accuracy,
                attack_seed_accuracy=test.seed_accuracy,
                attack_row_accuracy=test.row_accuracy,
                attack_seed_row_accuracy=test.seed_row_accuracy,
                tow=spread([tug_of_war(a, r) for a, r in pairs]),
                test_accuracy=spread([a["test"] for a, _ in pairs]),
                forget_accuracy=spread([a["forget"] for a, _ in pairs]),
                test_gap=spread([a["test"] - r["test"] for a, r in pairs]),
                forget_gap=spread([a["forget"] - r["forget"] for a, r in pairs]),
                seconds=spread(seconds[entry.label]),
            )
        rows_out.append(record)
    result = {
        "workload": args.workload,
        "config": to_dict(config),
        "seeds": args.seeds,
        "forget_rows": len(forget_ids),
        "ratio": None if args.rows is not None else args.ratio,
        "rows": args.rows,
        "chain": args.chain,
        "forget_seed": FORGET_SEED,
        "retrained": {
            "test_accuracy": spread([r["test"] for r in reference_accuracy]),
            "forget_accuracy": spread([r["forget"] for r in reference_accuracy]),
            "seconds": spread(retrain_seconds),
        },
        "methods": rows_out,
    }
    write(args.out, result)
    return result


def write(out: Path, result: dict[str, Any]) -> None:
    """``per_example.json`` and the Markdown table beside it."""
    table = []
    for record in result["methods"]:
        if record["status"] != "ok":
            table.append([record["label"], record["status"].split(":")[0], *[""] * 6])
            continue
        attack = {"mean": record["attack_accuracy"]} | _range(record["attack_seed_accuracy"])
        rows = {"mean": record["attack_row_accuracy"]} | _range(record["attack_seed_row_accuracy"])
        table.append(
            [
                record["label"],
                show(attack),
                show(rows),
                show(record["tow"]),
                show(record["test_accuracy"]),
                show(record["forget_accuracy"]),
                show(record["forget_gap"]),
                show(record["seconds"]),
            ]
        )
    retrained = result["retrained"]
    size = f"{result['forget_rows']} forget rows" + (
        f" in {result['chain']} requests in sequence" if result["chain"] > 1 else ""
    )
    report = Report(
        title=f"Per-example test (U-LiRA): {result['workload']}, {size}, {result['seeds']} seeds",
        tables=[
            Table(
                "Can an attacker tell each seed's unlearned model from its retrained one? mean (min–max) over held-out seeds",
                ["method", "attack acc.", "per-row acc.", "ToW", "test acc.", "forget acc.", "forget gap", "time s"],
                table,
            )
        ],
        notes=[
            "attack acc.: leave one seed out; per forget row, Gaussians of φ = log(p_y/(1−p_y)) over the other seeds' "
            "unlearned and retrained models; the held-out seed's two models each classified by the summed "
            "log-likelihood ratio. 0.5 = cannot tell (retrain (another seed) measures that floor), 1 = always",
            "per-row acc.: share of (held-out model, row) whose own likelihood ratio points the right way",
            f"retrained models: test acc. {show(retrained['test_accuracy'])}, forget acc. "
            f"{show(retrained['forget_accuracy'])}, {show(retrained['seconds'])} s each; ToW and gaps against "
            "the same seed's retrained model; test acc. on the evaluation half of the test split",
        ],
    )
    out.mkdir(parents=True, exist_ok=True)
    with Outputs() as outputs:
        outputs.stage_text(out / "per_example.json", to_json(result), overwrite=True)
        outputs.stage_text(out / "per_example.md", report.to_markdown() + "\n", overwrite=True)
        outputs.publish()


def _range(values: list[float]) -> dict[str, float]:
    return {"min": float(min(values)), "max": float(max(values))}


if __name__ == "__main__":
    main()
