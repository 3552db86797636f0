"""The bench chart (matplotlib, optional)."""

from __future__ import annotations

import os
from typing import Any

from iau_cli.errors import ConfigError
from iau_cli.recipes.bench.run import BenchResult


def require_matplotlib() -> Any:
    """pyplot (Agg), or a one-line error: checked before the bench runs, not after."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'iau-cli[plot]'") from None
    return plt


def plot(result: BenchResult, path: str | os.PathLike[str]) -> None:
    """A PNG: removal (ToW, forget-accuracy gap) against utility (test accuracy) and time."""
    plt = require_matplotlib()
    # Every row with a Tug-of-War, "original" (0 s: drawn at the left edge) and "retrain (another
    # seed)" (the noise floor) included; hollow markers and a small per-method offset keep methods
    # that land on one spot visible.
    ok = [s for s in result.summary if s["status"] == "ok" and s["tow"]]
    workloads = sorted({s["workload"] for s in ok})
    figure, axes = plt.subplots(len(workloads), 2, figsize=(12, 4.5 * len(workloads)), squeeze=False)
    labels = sorted({s["label"] for s in ok})
    colors = {label: plt.cm.tab10(i % 10) for i, label in enumerate(labels)}
    markers = {label: "os^Dv<>PX*hp"[i % 12] for i, label in enumerate(labels)}
    offsets = {label: 1.0 + 0.04 * (i - len(labels) / 2) for i, label in enumerate(labels)}
    timed = [s["seconds"]["mean"] for s in ok if s["seconds"] and s["seconds"]["mean"]]
    floor = min(timed) / 4 if timed else 1e-3
    for row, workload in enumerate(workloads):
        for s in (s for s in ok if s["workload"] == workload):
            size = 30 + 400 * (s["ratio"] or 0.0)  # a size in rows (no ratio): the smallest marker
            style = {
                "s": size,
                "facecolors": "none",
                "edgecolors": colors[s["label"]],
                "linewidths": 1.6,
                "marker": markers[s["label"]],
            }
            seconds = s["seconds"]["mean"] if s["seconds"] and s["seconds"]["mean"] else floor
            name = s["label"] + (" (0 s)" if seconds == floor else "")
            axes[row][0].scatter(seconds * offsets[s["label"]], s["tow"]["mean"], label=name, **style)
            gap = s["forget_gap"]["mean"] if s.get("forget_gap") else float("nan")
            axes[row][1].scatter(gap, s["test_accuracy"]["mean"], **style)
        axes[row][0].set(
            xscale="log",
            xlabel="unlearning time (s, log)",
            ylabel="Tug-of-War vs retrain",
            title=f"{workload}: closeness vs time",
        )
        axes[row][1].set(
            xlabel="|forget acc − retrained's| (removal gap)",
            ylabel="test accuracy (utility)",
            title=f"{workload}: removal vs utility",
        )
    handles, names = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(names, handles))
    figure.legend(unique.values(), unique.keys(), loc="lower center", ncol=min(6, len(unique)), fontsize=8)
    figure.text(0.99, 0.01, "marker size: forget ratio (sizes in rows: smallest)", ha="right", fontsize=8)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)
