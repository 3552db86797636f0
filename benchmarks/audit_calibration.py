"""Audit calibration: how often `iau audit`'s verdict fails a model that truly never saw the rows
(false alarms), and how often it catches a deletion that did nothing or only part of its work.

    python benchmarks/audit_calibration.py --workloads purchase-mlp,digits-mlp --pools 10 --sets 5 \
        --out benchmarks/results/audit_calibration.json
    python benchmarks/audit_calibration.py --thorough --workloads purchase-mlp --pools 5 \
        --out benchmarks/results/audit_thorough.json

Construction, per workload (seed 0):
- the original: `iau train`'s recipe on every row (with its reference models, so that the default
  rule runs as it does for users);
- P pools, each a random 20% of the learned rows, and per pool a model trained with the same recipe
  on the other 80%: it never saw any row of its pool, so it is a model *truly retrained without*
  every forget set drawn from that pool (without a few more rows too; that costs it a little test
  accuracy, which makes the `--original` rows slightly pessimistic);
- per pool and request size, `sets` random forget sets inside the pool (sizes: 5 rows, 1%, 5%,
  10% of the learned rows);
- judged for each forget set: the retrained model (a fail is a false alarm), the original (a
  no-op: a fail is a detection), the default rule with a quarter of its step budget
  (`-O steps=38`: a half-done deletion), and the default rule itself;
- `--exact N`: per size, N forget sets drawn from all learned rows, each with a model retrained
  without exactly it (the recipe and its seed, as `iau unlearn --method retrain` does) — the
  honest null for "test accuracy kept" against `--original`, which the 80% models overstate;
- the verdict is `iau audit`'s own (`verdict_checks` on the per-row evidence `audit` collects:
  every held-out row of the evaluation half, proxy rows the model still holds), alpha 0.01, with
  and without `--original`. "pass" / "fail" / "inconclusive" as the audit reports them.

Forget sets from one pool share one retrained model, so their outcomes are not independent: the
pools, not the sets, are the independent replicates (the table gives both counts).

`--thorough`: the per-row check against k = 4 shadow models (`iau audit --shadow-models`'s own:
retrains of the pool's complement with other seeds), 5% requests, for the retrained model, the
original, the default rule, and two deletions that push every forget row too far (`-O
rule=matched`, the previous default, and `gradient-ascent`); each judged with `--original`, the
verdict of the statistical checks with the shadows as the raw checks' witness.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = [("5 rows", 5, None), ("1%", None, 0.01), ("5%", None, 0.05), ("10%", None, 0.10)]


def take(predictions, index):
    from iau_cli.core.metrics import Predictions

    margins = predictions.margins[index] if predictions.margins is not None else None
    return Predictions(predictions.losses[index], predictions.correct[index], margins=margins)


def full_predictions(restored, model):
    """A model's predictions on every training row and every held-out (evaluation-half) row."""
    from iau_cli.core.metrics import predict
    from iau_cli.recipes.audit import heldout_pool

    train = predict(model, restored.data.train, np.arange(len(restored.data.train)), restored.device, keep_margins=True)
    pool = predict(model, restored.data.test, heldout_pool(restored.data.test), restored.device, keep_margins=True)
    return train, pool


def all_targets(restored, raw: bool):
    """The original's stored reference targets for every training row and every held-out row (what
    a model retrained from it carries, so what `iau audit` reads); None with --raw or no table."""
    from iau_cli.io.references import lookup_heldout_targets, lookup_targets
    from iau_cli.recipes.audit import heldout_pool

    meta, tensors = restored.meta.references, restored.checkpoint.reference_tensors
    pool = lookup_heldout_targets(meta, tensors, [restored.data.test.ids[r] for r in heldout_pool(restored.data.test)])
    if raw or pool is None:
        return None
    return lookup_targets(meta, tensors, restored.data.train.ids)[0], pool


def targets_for(table, forget, proxy):
    from iau_cli.recipes.audit import ReferenceTargets

    if table is None:
        return None
    train, pool = table
    return ReferenceTargets.usable(train[forget], pool, train[proxy])


def scores(cached, forget, proxy):
    from iau_cli.recipes.audit import RowScores

    train, pool = cached
    return RowScores(take(train, forget), pool, take(train, proxy))


def unlearned(restored, forget, method, options):
    from iau_cli.core.methods import get_method
    from iau_cli.recipes.unlearn import build_context, plan_rows

    spec = get_method(method)
    context = build_context(restored, plan_rows(restored, forget.tolist()), model=copy.deepcopy(restored.model))
    return spec.run(context, spec.parse_options(options)).model


def verdict_of(evidence, alpha, seed):
    from iau_cli.recipes.audit import Thresholds, overall_verdict, verdict_checks

    checks = verdict_checks(evidence, Thresholds(alpha=alpha), seed=seed)
    return overall_verdict(checks), [c.id for c in checks if c.status == "fail"]


def prepare(workload: str, work: Path, pools: int, device: str):
    from iau_cli.config import preset
    from iau_cli.core.training import RowPartition, train_model
    from iau_cli.recipes.train import restore, train

    config = preset(workload)
    path = work / f"{workload}-original.safetensors"
    if not path.exists():
        train(config, path, device=device)
    restored = restore(path, device=device)
    partition = restored.partition()
    learned = partition.learn
    rng = np.random.default_rng(12345)
    pool_rows, retrained = [], []
    for p in range(pools):
        chosen = np.sort(rng.choice(learned, size=len(learned) // 5, replace=False))
        started = time.perf_counter()
        model, _ = train_model(
            config, restored.data, RowPartition(learn=np.setdiff1d(learned, chosen), val=partition.val), restored.device
        )
        print(f"  {workload}: pool {p + 1}/{pools} retrained in {time.perf_counter() - started:.1f} s", flush=True)
        pool_rows.append(chosen)
        retrained.append(model)
    return config, restored, learned, pool_rows, retrained


def calibrate(args, workload: str) -> dict:
    from iau_cli.core.methods import MethodName
    from iau_cli.core.verdict import Groups
    from iau_cli.recipes.audit import Evidence, matched_sample

    started = time.perf_counter()
    config, restored, learned, pool_rows, retrained = prepare(workload, args.work, args.pools, args.device)
    train_labels, test = restored.data.train.labels, restored.data.test
    pool_labels = test.labels[test.halves()[1]]
    original = full_predictions(restored, restored.model)
    table = all_targets(restored, args.raw)
    kinds = ["retrained", "original (no-op)", "default rule, 1/4 of its steps", "default rule"]
    outcomes: dict = {}
    for p, (chosen, model) in enumerate(zip(pool_rows, retrained)):
        retrained_cached = full_predictions(restored, model)
        candidates = np.setdiff1d(learned, chosen)
        for label, rows, ratio in SIZES:
            count = rows if rows is not None else max(1, round(ratio * len(learned)))
            count = min(count, len(chosen) // 2)
            for s in range(args.sets):
                seed = p * 1000 + s
                forget = np.sort(np.random.default_rng([p, s, count]).choice(chosen, size=count, replace=False))
                proxy = matched_sample(
                    candidates, train_labels, train_labels[forget], min(1000, len(candidates) // 4), seed
                )
                groups = Groups(train_labels[forget], pool_labels)
                proxy_groups = Groups(train_labels[proxy], pool_labels)
                models = {"retrained": retrained_cached, "original (no-op)": original}
                if s < args.unlearn_sets:
                    models["default rule, 1/4 of its steps"] = full_predictions(
                        restored, unlearned(restored, forget, MethodName.IAU, {"steps": 38})
                    )
                    models["default rule"] = full_predictions(restored, unlearned(restored, forget, MethodName.IAU, {}))
                found = targets_for(table, forget, proxy)
                for kind, cached in models.items():
                    # the default (targeted) rule moved the rows to these targets: the audit does not
                    # judge it by them (iau_cli.recipes.audit.reference_targets), so neither does this
                    targets = None if kind.startswith("default rule") else found
                    audited = scores(cached, forget, proxy)
                    plain = Evidence(groups, proxy_groups, audited, targets=targets)
                    with_original = Evidence(
                        groups, proxy_groups, audited, original=scores(original, forget, proxy), targets=targets
                    )
                    for mode, evidence in (("plain", plain), ("--original", with_original)):
                        key = f"{label}|{kind}|{mode}"
                        entry = outcomes.setdefault(
                            key, {"pass": 0, "fail": 0, "inconclusive": 0, "pools": set(), "failed_checks": {}}
                        )
                        outcome, failed = verdict_of(evidence, args.alpha, seed)
                        entry[outcome] += 1
                        entry["pools"].add(p)
                        for check in failed:
                            entry["failed_checks"][check] = entry["failed_checks"].get(check, 0) + 1
        print(f"  {workload}: pool {p + 1} judged ({time.perf_counter() - started:.0f} s so far)", flush=True)
    table = []
    for key, entry in outcomes.items():
        size, kind, mode = key.split("|")
        n = entry["pass"] + entry["fail"] + entry["inconclusive"]
        table.append(
            {
                "workload": workload,
                "size": size,
                "model": kind,
                "mode": mode,
                "sets": n,
                "pools": len(entry["pools"]),
                "pass": entry["pass"] / n,
                "fail": entry["fail"] / n,
                "inconclusive": entry["inconclusive"] / n,
                "failed_checks": entry["failed_checks"],
            }
        )
    if args.exact:
        table += exact_rows(args, workload, config, restored, learned, original)
    return {"workload": workload, "seconds": time.perf_counter() - started, "rows": table, "kinds": kinds}


def exact_rows(args, workload, config, restored, learned, original) -> list[dict]:
    """Models retrained without exactly the forget set (the checkpoint's recipe and seed, as
    `iau unlearn --method retrain` does): what "test accuracy kept" sees against --original."""
    from iau_cli.core.training import RowPartition, train_model
    from iau_cli.core.verdict import Groups
    from iau_cli.recipes.audit import Evidence, matched_sample

    labels, test = restored.data.train.labels, restored.data.test
    pool_labels = test.labels[test.halves()[1]]
    val = restored.partition().val
    table = all_targets(restored, args.raw)
    rows = []
    for label, count_rows, ratio in SIZES:
        count = count_rows if count_rows is not None else max(1, round(ratio * len(learned)))
        tally = {
            mode: {"pass": 0, "fail": 0, "inconclusive": 0, "failed_checks": {}} for mode in ("plain", "--original")
        }
        for s in range(args.exact):
            forget = np.sort(np.random.default_rng([99, s, count]).choice(learned, size=count, replace=False))
            kept = np.setdiff1d(learned, forget)
            model, _ = train_model(config, restored.data, RowPartition(learn=kept, val=val), restored.device)
            cached = full_predictions(restored, model)
            proxy = matched_sample(kept, labels, labels[forget], min(1000, len(kept) // 4), s)
            groups, proxy_groups = Groups(labels[forget], pool_labels), Groups(labels[proxy], pool_labels)
            audited, targets = scores(cached, forget, proxy), targets_for(table, forget, proxy)
            with_original = Evidence(
                groups, proxy_groups, audited, original=scores(original, forget, proxy), targets=targets
            )
            for mode, evidence in (
                ("plain", Evidence(groups, proxy_groups, audited, targets=targets)),
                ("--original", with_original),
            ):
                outcome, failed = verdict_of(evidence, args.alpha, s)
                tally[mode][outcome] += 1
                for check in failed:
                    tally[mode]["failed_checks"][check] = tally[mode]["failed_checks"].get(check, 0) + 1
            print(f"  {workload}: exact retrain {label} {s + 1}/{args.exact}", flush=True)
        for mode, entry in tally.items():
            n = args.exact
            rows.append(
                {
                    "workload": workload,
                    "size": label,
                    "model": "retrained without exactly the set",
                    "mode": mode,
                    "sets": n,
                    "pools": n,
                    "pass": entry["pass"] / n,
                    "fail": entry["fail"] / n,
                    "inconclusive": entry["inconclusive"] / n,
                    "failed_checks": entry["failed_checks"],
                }
            )
    return rows


def thorough(args, workload: str) -> dict:
    """The per-row check (k shadow models) on 5% requests, one forget set per pool."""
    from iau_cli.core.methods import MethodName
    from iau_cli.core.verdict import Groups
    from iau_cli.io.ids import ForgetRequest
    from iau_cli.recipes.audit import (
        AuditRequest,
        AuditRows,
        Evidence,
        Thresholds,
        heldout_pool,
        matched_sample,
        overall_verdict,
        shadow_scores,
        verdict_checks,
    )

    started = time.perf_counter()
    config, restored, learned, pool_rows, retrained = prepare(workload, args.work, args.pools, args.device)
    train_labels, test = restored.data.train.labels, restored.data.test
    pool = heldout_pool(test)
    # every deletion is judged with --original (as `iau audit --original` does: no proxy rows held back)
    request = AuditRequest(
        checkpoint="", forget=ForgetRequest([], 0, "bench"), shadow_models=args.shadows, original="(the original)"
    )
    results: dict = {}
    for p, (chosen, model) in enumerate(zip(pool_rows, retrained)):
        count = round(0.05 * len(learned))
        forget = np.sort(np.random.default_rng([p, 0, count]).choice(chosen, size=count, replace=False))
        candidates = np.setdiff1d(learned, chosen)
        proxy = matched_sample(candidates, train_labels, train_labels[forget], min(1000, len(candidates) // 4), p)
        rows = AuditRows(forget=forget, retain=candidates, nonmember=pool, proxy=proxy)
        models = {
            "retrained": model,
            "original (no-op)": restored.model,
            "default rule": unlearned(restored, forget, MethodName.IAU, {}),
            "overshoot: -O rule=matched": unlearned(restored, forget, MethodName.IAU, {"rule": "matched"}),
            "overshoot: gradient-ascent": unlearned(restored, forget, MethodName.GRADIENT_ASCENT, {}),
        }
        request.seed = p
        z = shadow_scores(restored, rows, request, models)
        groups = Groups(train_labels[forget], test.labels[pool])
        proxy_groups = Groups(train_labels[proxy], test.labels[pool])
        original = scores(full_predictions(restored, restored.model), forget, proxy)
        for kind, m in models.items():
            audited = scores(full_predictions(restored, m), forget, proxy)
            evidence = Evidence(groups, proxy_groups, audited, original=original)
            evidence.shadow = {"audited": z[kind], "original": z["original (no-op)"]}
            checks = {c.id: c for c in verdict_checks(evidence, Thresholds(alpha=args.alpha), seed=p)}
            per_row = checks["per_row_shadow"]
            matched = groups.matched
            entry = results.setdefault(
                kind,
                {"statuses": [], "z_auc": [], "below": [], "above": [], "loss_auc": [], "verdict": [], "failed": {}},
            )
            entry["statuses"].append(per_row.status)
            entry["z_auc"].append(per_row.value)
            entry["below"].append(float(np.mean(z[kind].forget_side[matched] == -1)))
            entry["above"].append(float(np.mean(z[kind].forget_side[matched] == 1)))
            entry["loss_auc"].append(checks["membership_auc"].status)
            entry["verdict"].append(overall_verdict(list(checks.values())))
            for check in checks.values():
                if check.status == "fail":
                    entry["failed"][check.id] = entry["failed"].get(check.id, 0) + 1
        print(f"  {workload}: thorough pool {p + 1} ({time.perf_counter() - started:.0f} s)", flush=True)
    return {
        "workload": workload,
        "seconds": time.perf_counter() - started,
        "shadow_models": args.shadows,
        "per_kind": results,
    }


def paired(args, workload: str) -> dict:
    """--paired N: N forget sets of 5%, each retrained twice without exactly it (the recipe's seed
    and another); the first audited against the second as --reference (the paired tests)."""
    import dataclasses

    from iau_cli.core.training import RowPartition, train_model
    from iau_cli.core.verdict import Groups
    from iau_cli.recipes.audit import Evidence, matched_sample

    started = time.perf_counter()
    config, restored, learned, _, _ = prepare(workload, args.work, 0, args.device)
    labels, test = restored.data.train.labels, restored.data.test
    pool_labels = test.labels[test.halves()[1]]
    val = restored.partition().val
    tally = {mode: {"pass": 0, "fail": 0, "inconclusive": 0, "failed_checks": {}} for mode in ("plain", "--reference")}
    count = round(0.05 * len(learned))
    for s in range(args.paired):
        forget = np.sort(np.random.default_rng([77, s, count]).choice(learned, size=count, replace=False))
        kept = np.setdiff1d(learned, forget)
        models = []
        for seed in (config.train.seed, config.train.seed + 1000 + s):
            other = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))
            models.append(train_model(other, restored.data, RowPartition(learn=kept, val=val), restored.device)[0])
        proxy = matched_sample(kept, labels, labels[forget], min(1000, len(kept) // 4), s)
        groups, proxy_groups = Groups(labels[forget], pool_labels), Groups(labels[proxy], pool_labels)
        audited, reference = (scores(full_predictions(restored, m), forget, proxy) for m in models)
        for mode, evidence in (
            ("plain", Evidence(groups, proxy_groups, audited)),
            ("--reference", Evidence(groups, proxy_groups, audited, reference=reference)),
        ):
            outcome, failed = verdict_of(evidence, args.alpha, s)
            tally[mode][outcome] += 1
            for check in failed:
                tally[mode]["failed_checks"][check] = tally[mode]["failed_checks"].get(check, 0) + 1
        print(f"  {workload}: paired {s + 1}/{args.paired}", flush=True)
    return {"workload": workload, "seconds": time.perf_counter() - started, "paired": tally, "sets": args.paired}


def markdown(path: Path) -> str:
    """The calibration table: workload × size × model × mode → pass / fail / inconclusive."""
    results = json.loads(path.read_text())
    lines = []
    for workload, result in results.items():
        if "rows" not in result:
            continue
        lines += [
            f"**{workload}** ({result['seconds'] / 60:.0f} min)",
            "",
            "| size | model | mode | sets (pools) | pass | fail | inconclusive | failed checks |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in result["rows"]:
            failed = ", ".join(f"{k} {v}" for k, v in sorted(row.get("failed_checks", {}).items())) or "—"
            lines.append(
                f"| {row['size']} | {row['model']} | {row['mode']} | {row['sets']} ({row['pools']}) | "
                f"{row['pass']:.0%} | {row['fail']:.0%} | {row['inconclusive']:.0%} | {failed} |"
            )
        lines.append("")
    return "\n".join(lines)


def thorough_markdown(path: Path) -> str:
    results = json.loads(path.read_text())
    lines = [
        "| workload | model | per-row check (pass / fail / inconclusive) | z AUC (mean) | forget rows below / above every shadow "
        "| loss-AUC check | verdict (pass / fail / inconclusive) | failed checks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload, result in results.items():
        for kind, entry in result["per_kind"].items():
            statuses = entry["statuses"]
            counts = "/".join(str(statuses.count(s)) for s in ("pass", "fail", "inconclusive"))
            loss, verdicts = entry["loss_auc"], entry.get("verdict")
            verdict = "/".join(str(verdicts.count(s)) for s in ("pass", "fail", "inconclusive")) if verdicts else "—"
            lines.append(
                f"| {workload} | {kind} | {counts} of {len(statuses)} | {np.mean(entry['z_auc']):.3f} | "
                f"{np.mean(entry['below']):.0%} / {np.mean(entry['above']):.0%} | "
                f"{'/'.join(str(loss.count(s)) for s in ('pass', 'fail', 'inconclusive'))} | {verdict} | "
                f"{', '.join(f'{k} {v}' for k, v in sorted(entry.get('failed', {}).items())) or '—'} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="purchase-mlp,mixed-mlp,digits-mlp")
    parser.add_argument("--pools", type=int, default=10)
    parser.add_argument("--sets", type=int, default=5, help="forget sets per pool and size")
    parser.add_argument("--unlearn-sets", type=int, default=2, help="of those, how many also run the unlearning rows")
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--shadows", type=int, default=4)
    parser.add_argument("--thorough", action="store_true")
    parser.add_argument("--exact", type=int, default=0, help="forget sets per size retrained without exactly them")
    parser.add_argument(
        "--paired", type=int, default=0, help="only: 5%% sets retrained twice, audited with --reference"
    )
    parser.add_argument(
        "--raw", action="store_true", help="judge without the reference targets (the audit before they were stored)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=Path("bench-out/calibration"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--markdown", action="store_true", help="print the table of --out's results and stop")
    args = parser.parse_args()
    if args.markdown:
        print(thorough_markdown(args.out) if args.thorough else markdown(args.out))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for workload in args.workloads.split(","):
        print(f"{workload} …", flush=True)
        if args.paired:
            results[f"{workload} (paired)"] = paired(args, workload)
            results[f"{workload} (paired)"]["command"] = " ".join(sys.argv)
            args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
            continue
        results[workload] = thorough(args, workload) if args.thorough else calibrate(args, workload)
        results[workload]["command"] = " ".join(sys.argv)
        args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")  # after each workload


if __name__ == "__main__":
    main()
