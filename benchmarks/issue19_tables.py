"""The compact tables of BENCHMARKS.md §1 (issue 19), from the JSON that benchmarks/issue19.sh wrote.

    python benchmarks/issue19_tables.py [bench-out]

Per workload and request: the default (``iau``) beside doing nothing, retraining with another seed,
the previous default and the best other registry method — Tug-of-War, test-accuracy gap, loss-attack
AUC gap to the retrained model, RTE — then the targets met or not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SHOWN = ("original (no unlearning)", "retrain (another seed)", "iau", "iau matched (previous default)")


def size_of(entry: dict) -> str:
    if entry.get("size"):
        return f"{entry['size']} rows"
    return f"{100 * entry['ratio']:g}%"


def fig(entry: dict, key: str, scale: float = 1.0, digits: int = 3, sign: bool = False) -> str:
    value = entry.get(key) or {}
    if not value or value.get("mean") is None:
        return "—"
    mean, low, high = (scale * value[k] for k in ("mean", "min", "max"))
    text = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return text if low == high else f"{text} ({low:.{digits}f}–{high:.{digits}f})"


def table(path: Path) -> str:
    data = json.loads(path.read_text())
    lines = []
    cells: dict[tuple, list[dict]] = {}
    for entry in data["summary"]:
        if entry["status"] != "ok":
            continue
        cells.setdefault((entry["workload"], entry["ratio"], entry.get("size"), entry.get("chain", 1)), []).append(
            entry
        )
    for (workload, _, _, chain), entries in cells.items():
        rows = entries[0].get("forget_rows", {}).get("mean", 0)
        title = f"{workload}, {size_of(entries[0])} ({rows:.0f} rows)" + (f", chain of {chain}" if chain > 1 else "")
        lines += [f"#### {title}", "", "| method | ToW | test − retrained (pt) | AUC − retrained | RTE |"]
        lines.append("|---|---|---|---|---|")
        rivals = [e for e in entries if e["label"] not in SHOWN and "retrain" not in e["method"]]
        best = max(rivals, key=lambda e: (e.get("tow") or {}).get("mean", -1), default=None)
        for entry in [e for label in SHOWN for e in entries if e["label"] == label] + ([best] if best else []):
            label = entry["label"] + (" (best other)" if entry is best else "")
            tow, test = fig(entry, "tow"), fig(entry, "test_gap", 100, 1, sign=True)
            lines.append(
                f"| {label} | {tow} | {test} | {fig(entry, 'mia_gap', sign=True)} | {fig(entry, 'rte', 1, 0)} |"
            )
        if chain > 1:
            iau = next((e for e in entries if e["label"] == "iau"), None)
            if iau is not None:
                lines += [
                    "",
                    f"worst single request, iau: {fig(iau, 'max_step_test_drop', 100, 1)} pt of held-out accuracy",
                ]
        lines.append("")
    met = [t for t in data["targets"]]
    if met:
        lines += ["| workload | request | target | value | |", "|---|---|---|---|---|"]
        for t in met:
            request = f"{t['size']} rows" if t.get("size") else f"{100 * t['ratio']:g}%"
            if t.get("chain", 1) > 1:
                request += f" × {t['chain']}"
            lines.append(
                f"| {t['workload']} | {request} | {t['target']} | {t['value']} | {'met' if t['met'] else '**not met**'} |"
            )
    return "\n".join(lines)


def overview(path: Path) -> str:
    """One line per request: the default's ToW beside the noise floor, doing nothing, the previous
    default and the best other method; its test and AUC gaps to the retrained model; its RTE."""
    data = json.loads(path.read_text())
    cells: dict[tuple, dict[str, dict]] = {}
    for entry in data["summary"]:
        if entry["status"] == "ok":
            key = (entry["workload"], entry["ratio"], entry.get("size"), entry.get("chain", 1))
            cells.setdefault(key, {})[entry["label"]] = entry
    lines = [
        "| workload | request | ToW: iau | retrain, another seed | original | previous default | best other "
        "| iau test − retrained (pt) | iau AUC − retrained | iau RTE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (workload, _, _, chain), entries in cells.items():
        iau = entries.get("iau")
        if iau is None:
            continue
        rivals = [e for label, e in entries.items() if label not in SHOWN and "retrain" not in e["method"]]
        best = max(rivals, key=lambda e: (e.get("tow") or {}).get("mean", -1), default=None)
        mean = lambda e: f"{e['tow']['mean']:.3f}" if e and e.get("tow") else "—"  # noqa: E731
        rows = iau.get("forget_rows", {}).get("mean", 0)
        request = f"{size_of(iau)} ({rows:.0f})" + (f" × {chain}" if chain > 1 else "")
        other = f"{mean(best)} ({best['label']})" if best else "—"
        lines.append(
            f"| {workload} | {request} | **{mean(iau)}** | {mean(entries.get('retrain (another seed)'))} | "
            f"{mean(entries.get('original (no unlearning)'))} | {mean(entries.get('iau matched (previous default)'))} | "
            f"{other} | {fig(iau, 'test_gap', 100, 1, sign=True)} | {fig(iau, 'mia_gap', sign=True)} | "
            f"{fig(iau, 'rte', 1, 0)} |"
        )
    return "\n".join(lines)


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "bench-out")
    for name in ("generalize", "chains10", "chains30"):
        path = folder / f"{name}.json"
        if path.exists():
            print(f"### {name}: overview\n\n{overview(path)}\n")
    for name in ("generalize", "chains10", "chains30", "cleanup"):
        path = folder / f"{name}.json"
        if path.exists():
            print(f"### {name}\n\n{table(path)}\n")


if __name__ == "__main__":
    main()
