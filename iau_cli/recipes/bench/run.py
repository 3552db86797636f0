"""``run_bench``: the grid, resumed from ``runs.jsonl``."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iau_cli.config import (
    to_dict,
)
from iau_cli.core import distributed
from iau_cli.errors import OutputError
from iau_cli.io.files import clean_json
from iau_cli.progress import Progress, no_progress
from iau_cli.recipes.bench.cells import SeedGrid, retrain_first, warm_up
from iau_cli.recipes.bench.spec import LISTED, BenchConfig, RequestSize, workload_config
from iau_cli.recipes.bench.store import cell_key, method_revision
from iau_cli.recipes.bench.summary import summarize, targets


@dataclass
class BenchResult:
    out: str
    config: dict[str, Any]
    runs: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    targets: list[dict[str, Any]]
    interrupted: bool = False
    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_bench(
    config: BenchConfig,
    out: str | os.PathLike[str],
    *,
    base: Path | None = None,
    device: str = "auto",
    progress: Progress = no_progress,
) -> BenchResult:
    """Run the grid, resuming from ``out/runs.jsonl``; returns every run and the per-seed summary."""
    # Long on purpose: the grid loop with resume, Ctrl-C and per-cell publication shares one open
    # results file.
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "runs.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if log_path.exists():
        for number, line in enumerate(log_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if line.strip():
                try:
                    run = json.loads(line)
                    done[run["key"]] = {"size": None, "chain": 1, **run}  # written before sizes and chains
                except (ValueError, KeyError, TypeError):
                    raise OutputError(
                        f"{log_path}: line {number} is not a bench run; this is not a bench folder of iau's "
                        "(delete runs.jsonl to start over, or choose another --out)"
                    ) from None
    base = base or Path.cwd()
    plans = [(w, workload_config(w, base)) for w in config.workloads]
    warm_up()
    runs: list[dict[str, Any]] = []
    skipped = 0
    cells = sum(1 if w.forget else len(config.requests()) for w, _ in plans)
    total = cells * config.seeds * len(config.methods)
    finished = 0
    interrupted = False
    try:
        for workload, run_config in plans:
            for seed in range(config.seeds):
                grid = SeedGrid(
                    workload, run_config, seed, out / workload.name / f"seed-{seed}", device, progress, base
                )
                # A listed forget set is one request: chain applies to random requests.
                chain = 1 if workload.forget else config.chain
                for size in [RequestSize(ratio=LISTED)] if workload.forget else config.requests():
                    for entry in retrain_first(config.methods):
                        key = cell_key(workload.name, run_config, entry, size, seed, chain)
                        if key in done:
                            runs.append(done[key])
                            skipped += 1
                        else:
                            run = grid.cell(entry, size, chain)
                            run["key"] = key
                            run["revision"] = method_revision(entry)
                            runs.append(run)
                            if distributed.is_main():
                                with open(log_path, "a", encoding="utf-8") as handle:
                                    handle.write(json.dumps(clean_json(run)) + "\n")
                                    handle.flush()
                                    os.fsync(handle.fileno())
                        finished += 1
                        progress("bench", finished, total)
    except KeyboardInterrupt:
        interrupted = True
    summary = summarize(runs)
    return BenchResult(
        out=str(out),
        config=to_dict(config),
        runs=runs,
        summary=summary,
        targets=targets(summary),
        interrupted=interrupted,
        skipped=skipped,
    )
