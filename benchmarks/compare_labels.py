"""Two or more labels of the same bench cells side by side, per cell and seed-averaged: mean ToW, the
per-seed |test gap| and |loss-AUC gap| to the retrained model (the issue-19 target measures), retained
accuracy, the largest one-request test drop of a chain, RTE and which anchor weight the ladder kept.

    python benchmarks/compare_labels.py RUNS.jsonl|BENCH.json [...] --labels iau "iau ladder" [--markdown F]

Reads every run of every file given (a bench ``--json`` or an output folder's ``runs.jsonl``); a cell
is (workload, request, chain). Only cells every label has are shown.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from statistics import mean
from typing import Any

from issue19_tables import size_of  # the same request names as BENCHMARKS §1's compact tables


def load_runs(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        path = path / "runs.jsonl"
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    data = json.loads(path.read_text())
    return data["runs"] if isinstance(data, dict) else data


def request_name(run: dict[str, Any]) -> str:
    return size_of(run) + (f" × {run['chain']}" if run.get("chain", 1) > 1 else "")


def summary(runs: list[dict[str, Any]]) -> dict[str, str]:
    """The figures of one label in one cell, over its seeds."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:  # every seed of this label failed or diverged: say so in each column
        return dict.fromkeys(("tow", "test_gap", "auc_gap", "retain", "drop", "rte", "kept"), "—") | {"seeds": "0"}

    def avg(key: str, scale: float = 1.0, absolute: bool = False, digits: int = 3) -> str:
        values = [r[key] for r in ok if r.get(key) is not None]
        if not values:
            return "—"
        return f"{scale * mean(abs(v) if absolute else v for v in values):.{digits}f}"

    # every request of a chain counts (step_details); a single request is its details
    kept = Counter(
        str(step.get("correction", "—")) for r in ok for step in (r.get("step_details") or [r.get("details") or {}])
    )
    drops = [r["max_step_test_drop"] for r in ok if r.get("max_step_test_drop") is not None]
    return {
        "seeds": str(len(ok)),
        "tow": avg("tow"),
        "test_gap": avg("test_gap", 100, absolute=True, digits=1),
        "auc_gap": avg("mia_gap", absolute=True),
        "retain": avg("retain_accuracy"),
        "drop": f"{100 * mean(drops):.1f}" if drops else "—",
        "rte": avg("rte", digits=1),
        "kept": ", ".join(f"{w}×{n}" for w, n in sorted(kept.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--labels", nargs="+", required=True)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    cells: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    # One run per (workload, request, label, seed): a later file or line replaces an earlier one, so a
    # reused --out folder's runs.jsonl, which keeps the runs of an older default under the same label
    # (with an older key), counts only the newest.
    latest: dict[str, dict[str, Any]] = {}
    for path in args.runs:
        for run in load_runs(path):
            identity = json.dumps([run["workload"], request_name(run), run["label"], run["seed"]])
            latest.pop(identity, None)
            latest[identity] = run
    for run in latest.values():
        cells[(run["workload"], request_name(run))][run["label"]].append(run)
    lines = [
        "| workload | request | method | seeds | ToW | mean \\|test gap\\| (pt) | mean \\|AUC gap\\| | retain "
        "| worst request's test drop (pt) | RTE | anchor kept |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (workload, request), labels in cells.items():
        if not all(label in labels for label in args.labels):
            continue
        for label in args.labels:
            s = summary(labels[label])
            lines.append(
                f"| {workload} | {request} | {label} | {s['seeds']} | {s['tow']} | {s['test_gap']} | {s['auc_gap']} "
                f"| {s['retain']} | {s['drop']} | {s['rte']} | {s['kept']} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
