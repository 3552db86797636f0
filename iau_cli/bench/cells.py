"""One bench cell: a method on one (workload, ratio, seed), timed and measured against the retrained reference."""

from __future__ import annotations

import copy
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iau_cli.audit import AuditRequest, AuditRows, balanced_nonmembers, model_figures
from iau_cli.bench.spec import BUILTIN_FORGET, LISTED, ORIGINAL, MethodEntry, Workload, retrains
from iau_cli.bench.store import recipe_digest, with_seed
from iau_cli.config import (
    BUILTIN_PREFIX,
    RunConfig,
)
from iau_cli.errors import ConfigError, IauError
from iau_cli.ids import ForgetRequest, read_forget_ids
from iau_cli.methods import MethodName, get_method
from iau_cli.metrics import tug_of_war
from iau_cli.progress import Progress
from iau_cli.report import clean_json
from iau_cli.runs import Restored, restore, train
from iau_cli.unlearning import build_context, plan_rows


class PeakMemory:
    """Peak resident memory above the starting level while the block runs (sampled every 2 ms);
    on CUDA, the allocator's peak instead."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = self.rss()
        self._peak = self._base

        def sample() -> None:
            while not self._stop.wait(0.002):
                self._peak = max(self._peak, self.rss())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._base
            return
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self._peak, self.rss()) - self._base


def warm_up() -> None:
    """Pay one-time costs before any timing: torch.optim and torch.func initialize torch._dynamo
    on first use (about a second), which would otherwise land on whichever method runs first."""
    from iau_cli.gradients import per_sample_grads

    layer = torch.nn.Linear(2, 2)
    torch.optim.Adam(layer.parameters()).step()
    torch.optim.SGD(layer.parameters(), lr=0.1).step()
    per_sample_grads(layer, torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))


def retrain_first(methods: list[MethodEntry]) -> list[MethodEntry]:
    return sorted(methods, key=lambda m: not retrains(m.method))


@dataclass
class _Plan:
    rows: Any
    audit_rows: AuditRows
    reference: torch.nn.Module
    retrain_seconds: float
    reference_figures: Any


class SeedGrid:
    """Everything for one (workload, seed): originals, forget sets, references, cells."""

    def __init__(
        self,
        workload: Workload,
        config: RunConfig,
        seed: int,
        folder: Path,
        device: str,
        progress: Progress,
        base: Path,
    ) -> None:
        self.workload = workload
        self.base = base
        self.config = config
        self.seed = seed
        self.folder = folder
        self.device = device
        self.progress = progress
        self._restored: dict[str, Restored] = {}
        self._plans: dict[tuple[str, float], _Plan] = {}
        self.audit_request = AuditRequest(checkpoint="", forget=ForgetRequest([], 0, "bench"), seed=seed)

    def original(self, kind: str) -> Restored:
        if kind not in self._restored:
            self.folder.mkdir(parents=True, exist_ok=True)
            config = with_seed(self.config, self.seed, plain=kind == "plain")
            # Named by what made it (recipe, data config, seed, iau version): a changed workload
            # trains a new original instead of reusing a stale one; a changed data file is refused
            # by the fingerprint check when the cached model is restored.
            path = self.folder / f"original-{kind}-{recipe_digest(config)}.safetensors"
            if not path.exists():
                train(config, path, device=self.device, progress=self.progress)
            self._restored[kind] = restore(path, device=self.device)
        return self._restored[kind]

    def forget_rows(self, restored: Restored, ratio: float) -> list[int]:
        if ratio == LISTED:
            return self.listed_rows(restored)
        learn = restored.partition().learn
        rng = np.random.default_rng([self.seed, round(ratio * 1e6)])
        size = max(1, round(ratio * len(learn)))
        return sorted(rng.choice(learn, size=size, replace=False).tolist())

    def listed_rows(self, restored: Restored) -> list[int]:
        """The rows of the workload's forget list (every id must be a training row)."""
        source = self.workload.forget or ""
        path = BUILTIN_FORGET.get(source) or (Path(source) if Path(source).is_absolute() else self.base / source)
        if source.startswith(BUILTIN_PREFIX) and source not in BUILTIN_FORGET:
            raise ConfigError(f"workload {self.workload.name}: unknown forget list {source!r}")
        request = read_forget_ids(path)
        index = restored.data.train.row_index()
        unknown = [i for i in request.ids if i not in index]
        if unknown:
            raise ConfigError(f"workload {self.workload.name}: {len(unknown)} forget id(s) are not training rows")
        return sorted(index[i] for i in request.ids)

    def plan(self, kind: str, ratio: float) -> _Plan:
        """Rows, audit rows, and the model retrained without the forget rows (with its time and
        figures) for one original kind and ratio: shared by every method's cell."""
        if (kind, ratio) not in self._plans:
            restored = self.original(kind)
            rows = plan_rows(restored, self.forget_rows(restored, ratio))
            audit_rows = AuditRows(
                forget=rows.forget,
                retain=rows.retain,
                nonmember=balanced_nonmembers(restored.data.train.labels[rows.forget], restored.data.test, self.seed),
            )
            context = build_context(restored, rows, {}, model=copy.deepcopy(restored.model))
            retrain = get_method(MethodName.RETRAIN)
            started = time.perf_counter()
            reference = retrain.run(context, retrain.parse_options({})).model
            seconds = time.perf_counter() - started
            figures, _, _ = model_figures(restored, reference, audit_rows, self.audit_request)
            self._plans[(kind, ratio)] = _Plan(rows, audit_rows, reference, seconds, figures)
        return self._plans[(kind, ratio)]

    def cell(self, entry: MethodEntry, ratio: float) -> dict[str, Any]:
        restored = self.original(entry.original)
        plan = self.plan(entry.original, ratio)
        rows = plan.rows
        run: dict[str, Any] = {
            "workload": self.workload.name,
            "label": entry.label,
            "method": entry.method,
            "options": entry.options,
            "original": entry.original,
            "ratio": ratio,
            "seed": self.seed,
            "forget_rows": int(len(rows.forget)),
        }
        reference, t_retrain = plan.reference, plan.retrain_seconds
        try:
            if entry.method == ORIGINAL:
                model, seconds, peak = restored.model, float("nan"), float("nan")
            elif retrains(entry.method) and not entry.options:
                model, seconds, peak = reference, t_retrain, float("nan")
            else:
                spec = get_method(entry.method)
                options = spec.parse_options(entry.options)
                context = build_context(restored, rows, {}, model=copy.deepcopy(restored.model))
                with PeakMemory(restored.device) as memory:
                    started = time.perf_counter()
                    output = spec.run(context, options)
                    seconds = time.perf_counter() - started
                model, peak = output.model, memory.peak_bytes / 2**20
                run["details"] = clean_json(output.details)  # e.g. a solver's residual, the rule's steps
        except IauError as exc:
            run.update(status=f"refused: {exc}")
            return run
        if not all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()):
            run.update(status="diverged (NaN/Inf parameters)")
            return run
        figures, _, _ = model_figures(restored, model, plan.audit_rows, self.audit_request)
        ref_figures = plan.reference_figures
        run.update(
            status="ok",
            seconds=seconds,
            retrain_seconds=t_retrain,
            rte=t_retrain / seconds if seconds > 0 else float("nan"),
            peak_mb=peak,
            forget_accuracy=figures.accuracy["forget"],
            retain_accuracy=figures.accuracy["retain"],
            test_accuracy=figures.accuracy["test"],
            forget_loss=figures.loss["forget"],
            mia_auc=figures.mia.loss_auc,
            indiscernibility=figures.mia.indiscernibility,
            tow=tug_of_war(figures.accuracy, ref_figures.accuracy),
            forget_gap=abs(figures.accuracy["forget"] - ref_figures.accuracy["forget"]),
            reference_forget_accuracy=ref_figures.accuracy["forget"],
            mia_gap=figures.mia.loss_auc - ref_figures.mia.loss_auc,
            test_gap=figures.accuracy["test"] - ref_figures.accuracy["test"],
        )
        return run
