"""What a bench runs: workloads, methods, ratios and seeds (the YAML config), and the files it reads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from iau_cli.config import (
    BUILTIN_PREFIX,
    PRESETS,
    Checked,
    RunConfig,
    from_dict,
    help_field,
    load_run_config,
    preset,
    read_yaml_mapping,
)
from iau_cli.core.methods import MethodName
from iau_cli.errors import ConfigError
from iau_cli.io.data import NOISY_FLIPPED_IDS

BUILTIN_FORGET = {"builtin:noisy-flipped": NOISY_FLIPPED_IDS}
LISTED = 0.0
"""The "ratio" of cells whose forget set is a workload's listed ids rather than a random fraction."""


@dataclass(frozen=True)
class RequestSize:
    """How many rows one request forgets: a fraction of the rows the original learned from
    (``ratio``), a number of rows (``rows``), or a workload's listed ids (``ratio`` = LISTED)."""

    ratio: float | None = None
    rows: int | None = None

    @property
    def listed(self) -> bool:
        return self.rows is None and self.ratio == LISTED

    def count(self, learned: int) -> int:
        """Rows per request when the original learned from ``learned`` rows."""
        if self.rows is not None:
            return self.rows
        return max(1, round(float(self.ratio or 0.0) * learned))

    def key(self) -> Any:
        """What a cell's key records: the ratio (as before sizes existed, so old keys stay valid)
        or the row count."""
        return self.ratio if self.rows is None else {"rows": self.rows}

    def entropy(self) -> list[int]:
        """The random draw's seed material beside the bench seed (a ratio's is what it was before
        sizes existed, so a ratio cell draws the same rows as before)."""
        return [round(float(self.ratio or 0.0) * 1e6)] if self.rows is None else [0, self.rows]


@dataclass(frozen=True)
class MethodEntry(Checked):
    """One column of the grid: a registered method with options, on the GR or the plain original."""

    label: str = help_field("Name shown in the table.")
    method: str = help_field("Registered method name.")
    options: dict[str, Any] = help_field("Method options.", default_factory=dict)
    original: Literal["gr", "plain"] = help_field(
        "gr: the recipe's model; plain: the same recipe with gr_alpha 0.", default="gr"
    )

    def check(self) -> list[str]:
        known = [ORIGINAL] + [m.value for m in MethodName]
        if self.method not in known:
            return [f"method: {self.method!r} is not one of {', '.join(known)}"]
        return []


@dataclass(frozen=True)
class Workload:
    """A named run config: a built-in workload (``builtin:digits-mlp``, …) or a YAML path."""

    name: str = help_field("Name shown in the table.")
    config: str = help_field(
        "builtin:digits-mlp, builtin:digits-lenet, builtin:purchase-mlp, builtin:noisy-mlp, "
        "builtin:noisyimages-lenet, builtin:mixed-mlp, or a run-config YAML path."
    )
    forget: str | None = help_field(
        "Forget these ids (a file, or builtin:noisy-flipped) instead of random fractions: a cleanup workload, "
        "judged by how much of retraining's test-accuracy gain a method recovers.",
        default=None,
    )


ORIGINAL = "original"
"""A pseudo-method for the table: the original model, untouched (what doing nothing scores)."""

DEFAULT_METHODS = [
    MethodEntry("original (no unlearning)", ORIGINAL),
    MethodEntry("retrain", "retrain"),
    MethodEntry("retrain (another seed)", "retrain", {"seed": 1000}),
    MethodEntry("iau", "iau"),
    MethodEntry("iau cleanup", "iau", {"purpose": "cleanup"}),
    MethodEntry("iau adam-sign", "iau", {"rule": "adam-sign"}),
    MethodEntry("iau no-correction", "iau", {"correction": 0.0}),
    MethodEntry("iau no-GR model", "iau", {}, "plain"),
    MethodEntry("finetune", "finetune"),
    MethodEntry("gradient-ascent", "gradient-ascent"),
    MethodEntry("neggrad-plus", "neggrad-plus"),
    MethodEntry("influence exact", "influence", {"solver": "exact"}),
    MethodEntry("influence cg", "influence", {"solver": "cg"}),
    MethodEntry("influence lissa", "influence", {"solver": "lissa"}),
    MethodEntry("fisher", "fisher"),
]


@dataclass(frozen=True)
class BenchConfig(Checked):
    """The grid: workloads × methods × forget ratios × seeds."""

    workloads: list[Workload] = help_field(
        "Workloads to run.",
        default_factory=lambda: [
            Workload("digits-mlp", "builtin:digits-mlp"),
            Workload("purchase-mlp", "builtin:purchase-mlp"),
            Workload("noisy-mlp", "builtin:noisy-mlp", forget="builtin:noisy-flipped"),
        ],
    )
    methods: list[MethodEntry] = help_field("Methods to compare.", default_factory=lambda: list(DEFAULT_METHODS))
    ratios: list[float] = help_field(
        "Request sizes as fractions of the rows the original learned from.", default_factory=lambda: [0.05]
    )
    sizes: list[int] = help_field(
        "Request sizes as row counts (down to a handful: [2, 5, 30]); cells beside the ratios'.",
        default_factory=list,
    )
    chain: int = help_field(
        "Requests per cell, forgotten in sequence, each from the previous request's output; the final model is "
        "judged against one retrained without all of them. 1: one request. A listed forget set is one request.",
        default=1,
    )
    seeds: int = help_field("Seeds per cell (each seed: its own original, forget set and retrained model).", default=1)

    def requests(self) -> list[RequestSize]:
        """The request sizes of the random (not listed) cells: the ratios, then the sizes."""
        return [RequestSize(ratio=r) for r in self.ratios] + [RequestSize(rows=n) for n in self.sizes]

    def check(self) -> list[str]:
        problems = []
        if not self.workloads or not self.methods:
            problems.append("workloads and methods must not be empty")
        names = [w.name for w in self.workloads]
        if len(set(names)) != len(names):
            problems.append("workloads: names must be unique (cached models are kept by name)")
        if any(not 0 < r < 1 for r in self.ratios):
            problems.append("ratios: each must be between 0 and 1")
        if any(n < 1 for n in self.sizes):
            problems.append("sizes: each must be at least 1 row")
        if len(set(self.sizes)) != len(self.sizes) or len(set(self.ratios)) != len(self.ratios):
            problems.append("ratios and sizes: each value at most once")
        if not self.requests() and any(not w.forget for w in self.workloads):
            problems.append(
                "ratios and sizes: at least one request size is needed for a workload without a forget list"
            )
        if self.chain < 1:
            problems.append("chain: must be at least 1 request")
        elif any(r * self.chain >= 1 for r in self.ratios):
            problems.append(
                f"ratios: {self.chain} requests of each ratio must leave rows to learn from (ratio × chain < 1)"
            )
        if self.seeds < 1:
            problems.append("seeds: must be at least 1")
        labels = [m.label for m in self.methods]
        if len(set(labels)) != len(labels):
            problems.append("methods: labels must be unique")
        return problems


def load_bench_config(path: str | os.PathLike[str] | None) -> tuple[BenchConfig, Path]:
    """The bench config from YAML (relative workload paths resolve from its folder), or the default."""
    if path is None:
        return BenchConfig(), Path.cwd()
    path = Path(path)
    mapping = read_yaml_mapping(
        path, "bench config", "a mapping with workloads, methods, ratios, sizes, chain and seeds"
    )
    return from_dict(BenchConfig, mapping, source=str(path)), path.resolve().parent


def workload_config(workload: Workload, base: Path) -> RunConfig:
    if workload.config.startswith(BUILTIN_PREFIX):
        name = workload.config[len(BUILTIN_PREFIX) :]
        if name not in PRESETS:
            raise ConfigError(f"workload {workload.name}: unknown {workload.config!r}; built-in: {', '.join(PRESETS)}")
        return preset(name)
    path = Path(workload.config)
    return load_run_config(path if path.is_absolute() else base / path)


def workload_inputs(config: BenchConfig, base: Path) -> dict[str, str]:
    """Every file a bench reads (workload configs, their data, forget lists): outputs must spare them."""
    inputs: dict[str, str] = {}
    for workload in config.workloads:
        if not workload.config.startswith(BUILTIN_PREFIX):
            path = Path(workload.config)
            inputs[f"workload {workload.name}'s config"] = str(path if path.is_absolute() else base / path)
        run_config = workload_config(workload, base)
        for split in ("train", "test"):
            value = getattr(run_config.data, split)
            if value and not value.startswith(BUILTIN_PREFIX):
                inputs[f"workload {workload.name}'s {split} data"] = value
        if workload.forget and workload.forget not in BUILTIN_FORGET:
            path = Path(workload.forget)
            inputs[f"workload {workload.name}'s forget list"] = str(path if path.is_absolute() else base / path)
    return inputs
