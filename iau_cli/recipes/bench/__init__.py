"""``bench``: methods × request sizes (fractions or row counts) × seeds on the same data, with the
same seeds, in one run; each cell one request or a chain of requests forgotten in sequence.

Originals (with and without gradient restriction) and retrained references are trained once per
seed and cached under the output folder; every finished cell is appended to ``runs.jsonl`` at
once, so a second run resumes and an interrupted run keeps what finished.

The package: :mod:`.spec` (what to run), :mod:`.store` (content keys of cells and cached models),
:mod:`.cells` (one cell, measured, and a chain of requests), :mod:`.run` (the grid, resumable),
:mod:`.summary` (figures and targets), :mod:`.chart` (the optional PNG), :mod:`.per_example` (the
per-example U-LiRA test, run by ``benchmarks/per_example.py``).
"""

from iau_cli.recipes.bench.chart import plot, require_matplotlib
from iau_cli.recipes.bench.per_example import PerExampleResult, per_example_test
from iau_cli.recipes.bench.run import BenchResult, run_bench
from iau_cli.recipes.bench.spec import (
    LISTED,
    ORIGINAL,
    BenchConfig,
    MethodEntry,
    RequestSize,
    Workload,
    load_bench_config,
    workload_config,
    workload_inputs,
)
from iau_cli.recipes.bench.summary import summarize, targets, validate_shape

__all__ = [
    "LISTED",
    "ORIGINAL",
    "BenchConfig",
    "BenchResult",
    "MethodEntry",
    "PerExampleResult",
    "RequestSize",
    "Workload",
    "load_bench_config",
    "per_example_test",
    "plot",
    "require_matplotlib",
    "run_bench",
    "summarize",
    "targets",
    "validate_shape",
    "workload_config",
    "workload_inputs",
]
