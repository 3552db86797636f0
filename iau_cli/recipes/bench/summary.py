"""Per-seed figures summarized (mean, min, max), the issue targets, and the JSON shape."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from iau_cli.core.methods import retrains
from iau_cli.recipes.bench.spec import LISTED, ORIGINAL

METRICS = (
    "request_rows",
    "forget_rows",
    "reference_forget_accuracy",
    "seconds",
    "rte",
    "peak_mb",
    "forget_accuracy",
    "retain_accuracy",
    "test_accuracy",
    "forget_loss",
    "mia_auc",
    "indiscernibility",
    "tow",
    "forget_gap",
    "mia_gap",
    "test_gap",
    "mia_gap_abs",
    "test_gap_abs",
    "max_step_test_drop",
)
STEP_METRICS = ("rows", "seconds", "test_accuracy", "forget_accuracy", "forgotten_accuracy", "test_drop")
"""Each step of a chain, summarized over seeds: its rows, time, held-out accuracy after it, forget
accuracy of its request and of every request so far, and the held-out accuracy it cost."""


def cell_of(run: dict[str, Any]) -> tuple[str, float | None, int | None, int]:
    """(workload, ratio, size, chain): the request a run or summary entry belongs to (runs written
    before sizes and chains existed are one-request ratio cells)."""
    return run["workload"], run["ratio"], run.get("size"), run.get("chain", 1)


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, min and max over seeds for each (workload, ratio, size, chain, method label), and
    for each step of a chain."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((*cell_of(run), run["label"]), []).append(run)
    summary = []
    for (workload, ratio, size, chain, label), group in groups.items():
        ok = [r for r in group if r.get("status") == "ok"]
        entry: dict[str, Any] = {
            "workload": workload,
            "ratio": ratio,
            "size": size,
            "chain": chain,
            "label": label,
            "method": group[0]["method"],
            "seeds": len(ok),
            "status": "ok" if ok else group[0].get("status", "failed"),
        }
        for metric in METRICS:
            source = metric.removesuffix("_abs")  # |gap| per seed, so gaps of opposite signs cannot cancel
            values = [r.get(source) for r in ok]
            entry[metric] = _spread([abs(v) for v in _numbers(values)] if metric != source else _numbers(values))
        epochs = _numbers([(r.get("details") or {}).get("epochs_run") for r in ok])
        if epochs:  # a retrain's time follows the epochs it ran (early stopping: each its own)
            entry["epochs_run"] = _spread(epochs)
        stepped = [r["steps"] for r in ok if r.get("steps")]
        entry["steps"] = [
            {
                "step": k + 1,
                **{m: _spread(_numbers([s[k].get(m) for s in stepped if len(s) > k])) for m in STEP_METRICS},
            }
            for k in range(max((len(s) for s in stepped), default=0))
        ]
        summary.append(entry)
    return summary


def _numbers(values: list[Any]) -> list[float]:
    return [v for v in values if v is not None and not _nan(v)]


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def targets(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The removal targets for IAU's default (issues 11 and 19), per workload and forget set, on
    means over seeds. Random forget fractions judge ``iau`` (erase): forget accuracy within max(2
    points, 2·SE) of the retrained model's, the loss-attack AUC within 0.03 of the retrained model's
    (either way: overshooting counts), test accuracy within 1 point of the retrained model's (1.5 for
    a chain's final model, whose every request must also cost at most 1 point of held-out accuracy),
    Tug-of-War ≥ 0.95 and above doing nothing and every method but retraining. Listed (mislabeled)
    rows judge ``iau cleanup``: ≥ 60% of retraining's test-accuracy gain recovered. Both: RTE ≥ 20.
    Request sizes in rows and chains are judged alike, a chain's final model against the model
    retrained without all its requests."""
    found = []
    for entry in summary:
        listed = entry["ratio"] == LISTED  # a size in rows has no ratio
        if entry["status"] != "ok" or entry["label"] != ("iau cleanup" if listed else "iau"):
            continue
        same = [s for s in summary if cell_of(s) == cell_of(entry) and s["status"] == "ok"]
        original = next((s for s in same if s["method"] == ORIGINAL), None)
        mean = {k: (v or {}).get("mean", float("nan")) for k, v in entry.items() if isinstance(v, dict) or v is None}
        rte = mean["rte"]
        found.append(_target(entry, "RTE ≥ 20", f"{rte:,.0f}", rte >= 20))
        if listed:
            if original is not None and original["test_gap"]["mean"] < 0:
                recovered = 1 - mean["test_gap"] / original["test_gap"]["mean"]
                found.append(_target(entry, "≥ 60% of retraining's test gain", f"{recovered:.0%}", recovered >= 0.6))
            continue
        reference = mean["reference_forget_accuracy"]
        rows = max(mean["forget_rows"], 1)
        allowed = max(0.02, 2 * math.sqrt(max(reference * (1 - reference), 1 / rows) / rows))
        gap = mean["forget_gap"]
        found.append(
            _target(entry, "forget acc within max(2 pt, 2 SE)", f"{gap:.3f} (allowed {allowed:.3f})", gap <= allowed)
        )
        # Per seed |gap|, then the mean: gaps of opposite signs on two seeds do not cancel.
        auc_gap, auc_gap_abs = mean["mia_gap"], mean["mia_gap_abs"]
        value = f"{auc_gap:+.3f} (mean |gap| {auc_gap_abs:.3f})"
        found.append(_target(entry, "|AUC − retrained's| ≤ 0.03", value, auc_gap_abs <= 0.03))
        chained = entry.get("chain", 1) > 1
        limit = 0.015 if chained else 0.01
        test_gap = mean["test_gap"]
        value = f"{100 * test_gap:+.1f} pt (mean |gap| {100 * mean['test_gap_abs']:.1f})"
        found.append(_target(entry, f"test acc within {100 * limit:g} pt", value, mean["test_gap_abs"] <= limit))
        if chained:
            drop = (entry.get("max_step_test_drop") or {}).get("max", float("nan"))  # the worst seed
            found.append(_target(entry, "no request costs > 1 pt", f"{100 * drop:.1f} pt", drop <= 0.01))
        tow = mean["tow"]
        rivals = [s for s in same if not retrains(s["method"]) and s is not entry and s["tow"]]
        best = max(rivals, key=lambda s: s["tow"]["mean"], default=None)
        best_tow = best["tow"]["mean"] if best is not None else float("-inf")
        value = f"{tow:.3f}" + (f" (best other: {best['label']} {best_tow:.3f})" if best is not None else "")
        found.append(_target(entry, "ToW ≥ 0.95 and above the rest", value, tow >= 0.95 and tow >= best_tow))
    return found


def _target(entry: dict[str, Any], target: str, value: str, met: bool) -> dict[str, Any]:
    workload, ratio, size, chain = cell_of(entry)
    return {
        "workload": workload,
        "ratio": ratio,
        "size": size,
        "chain": chain,
        "target": target,
        "value": value,
        "met": bool(met),
    }


_CELL = {"workload": str, "ratio": (float, None), "size": (int, None), "chain": int}
JSON_SHAPE: dict[str, Any] = {
    "out": str,
    "config": dict,
    "runs": [{"key": str, **_CELL, "label": str, "method": str, "seed": int, "status": str}],
    "summary": [{**_CELL, "label": str, "method": str, "seeds": int, "status": str, "steps": list}],
    "targets": [{**_CELL, "target": str, "value": str, "met": bool}],
    "interrupted": bool,
    "skipped": int,
}
"""The documented shape of ``iau bench --json``: required keys and their types (lists hold records;
a tuple lists the types allowed, None for null). A cell is a ratio (``size`` null; ratio 0 = the
workload's listed ids) or a size in rows (``ratio`` null), forgotten as ``chain`` requests in sequence."""


def validate_shape(data: Any, shape: Any = JSON_SHAPE, where: str = "$") -> list[str]:
    """Problems where ``data`` does not match ``shape`` (empty when it does)."""
    if isinstance(shape, dict):
        if not isinstance(data, dict):
            return [f"{where}: expected an object"]
        problems = []
        for key, sub in shape.items():
            if key not in data:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += validate_shape(data[key], sub, f"{where}.{key}")
        return problems
    if isinstance(shape, tuple):
        if any(not validate_shape(data, alternative, where) for alternative in shape):
            return []
        names = " or ".join("null" if a is None else a.__name__ for a in shape)
        return [f"{where}: expected {names}, got {type(data).__name__}"]
    if shape is None:
        return [] if data is None else [f"{where}: expected null, got {type(data).__name__}"]
    if isinstance(shape, list):
        if not isinstance(data, list):
            return [f"{where}: expected a list"]
        return [p for i, item in enumerate(data) for p in validate_shape(item, shape[0], f"{where}[{i}]")]
    if shape is float:
        ok = isinstance(data, (int, float)) and not isinstance(data, bool)
    else:
        ok = isinstance(data, shape) and not (shape is int and isinstance(data, bool))
    return [] if ok else [f"{where}: expected {shape.__name__}, got {type(data).__name__}"]
