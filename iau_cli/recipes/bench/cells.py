"""One bench cell: a method on one (workload, request size, chain, seed), timed and measured against the
retrained reference."""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iau_cli.config import (
    BUILTIN_PREFIX,
    RunConfig,
)
from iau_cli.core.gradients import per_sample_grads
from iau_cli.core.methods import MethodName, MethodSpec, get_method, retrains
from iau_cli.core.methods.base import MethodOutput, UnlearnContext
from iau_cli.core.metrics import predict, tug_of_war
from iau_cli.core.models import nonfinite
from iau_cli.errors import ConfigError, IauError
from iau_cli.io.files import clean_json
from iau_cli.io.ids import ForgetRequest, read_forget_ids
from iau_cli.progress import Progress
from iau_cli.recipes.audit import AuditRequest, AuditRows, heldout_pool, model_figures
from iau_cli.recipes.bench.spec import BUILTIN_FORGET, ORIGINAL, MethodEntry, RequestSize, Workload
from iau_cli.recipes.bench.store import recipe_digest, with_seed
from iau_cli.recipes.train import Restored, restore, train
from iau_cli.recipes.unlearn import RowPlan, build_context, plan_rows


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

    layer = torch.nn.Linear(2, 2)
    torch.optim.Adam(layer.parameters()).step()
    torch.optim.SGD(layer.parameters(), lr=0.1).step()
    per_sample_grads(layer, torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))


def retrain_first(methods: list[MethodEntry]) -> list[MethodEntry]:
    return sorted(methods, key=lambda m: not retrains(m.method))


@dataclass
class ChainPlan:
    """The requests of one cell, in order, and what the final model is judged on.

    ``steps[k]`` is request k's view (forget = its rows, retain = learned rows − every request up
    to k); ``so_far[k]`` the learned rows of requests 1..k; ``rows`` the union's view.
    """

    steps: list[RowPlan]
    so_far: list[np.ndarray]
    rows: RowPlan


def chain_plan(restored: Restored, requests: list[list[int]]) -> ChainPlan:
    """Each request's rows as ``plan_rows`` sees them once every earlier request is forgotten too."""
    steps, so_far, union = [], [], np.zeros(0, dtype=np.int64)
    for request in requests:
        union = np.union1d(union, np.asarray(request, dtype=np.int64))
        rows = plan_rows(restored, union.tolist())
        so_far.append(rows.forget)
        steps.append(dataclasses.replace(rows, forget=np.intersect1d(rows.forget, request)))
    return ChainPlan(steps=steps, so_far=so_far, rows=plan_rows(restored, union.tolist()))


@dataclass
class ChainOutcome:
    """What a method did over a chain: the final model, each step's figures, time and memory."""

    model: torch.nn.Module
    steps: list[dict[str, Any]]
    seconds: float
    peak_mb: float
    details: list[dict[str, Any]]
    diverged_at: int | None = None


def held_out_accuracy(restored: Restored, model: torch.nn.Module) -> float:
    """Accuracy on the evaluation half of the test split (what the bench's "test" column measures)."""
    return predict(model, restored.data.test, restored.data.test.halves()[1], restored.device).accuracy


def _step_figures(restored: Restored, model: torch.nn.Module, plan: ChainPlan, step: int) -> dict[str, Any]:
    train = restored.data.train
    return {
        "step": step + 1,
        "rows": int(len(plan.steps[step].forget)),
        "test_accuracy": held_out_accuracy(restored, model),
        "forget_accuracy": predict(model, train, plan.steps[step].forget, restored.device).accuracy,
        "forgotten_accuracy": predict(model, train, plan.so_far[step], restored.device).accuracy,
    }


def timed_run(spec: MethodSpec, context: UnlearnContext, options: Any) -> tuple[MethodOutput, float, float]:
    """A method's output, its wall time and its peak memory (MiB) on a prepared context."""
    with PeakMemory(context.device) as memory:
        started = time.perf_counter()
        output = spec.run(context, options)
        seconds = time.perf_counter() - started
    return output, seconds, memory.peak_bytes / 2**20


def run_chain(restored: Restored, plan: ChainPlan, entry: MethodEntry) -> ChainOutcome:
    """Forget ``plan``'s requests in sequence with a method that does not retrain (or, for
    ``original``, not at all), each from the previous step's output, measuring after each step.

    Each step sees the steps before it as its chain (what ``iau unlearn`` reads from the lineage), so
    a rule's chain self-checks judge it as they would a retention job's request. Step 1 may take the
    retain gradient from the checkpoint's ledger, as ``iau unlearn`` does. A
    later step may not: the ledger is the sum at the original's parameters over the rows it learned,
    and after a step moved the weights and shrank the rows it is neither, so the sum is recomputed
    (as ``iau unlearn`` does on a chained request whose ledger went stale).
    """
    untouched = entry.method == ORIGINAL
    spec = None if untouched else get_method(entry.method)
    options = None if spec is None else spec.parse_options(entry.options)
    model, steps, details = restored.model, [], []
    seconds, peak = (float("nan"), float("nan")) if untouched else (0.0, 0.0)
    before = held_out_accuracy(restored, model)
    for step, rows in enumerate(plan.steps):
        step_seconds = float("nan")
        if spec is not None:
            context = build_context(restored, rows, model=copy.deepcopy(model) if step == 0 else model)
            if step > 0:  # the requests before this one, as `iau unlearn` reads them from the lineage
                context = dataclasses.replace(context, retain_source=None, chain=[*context.chain, *details])
            output, step_seconds, step_peak = timed_run(spec, context, options)
            model, seconds, peak = output.model, seconds + step_seconds, max(peak, step_peak)
            details.append(clean_json(output.details))  # e.g. a solver's residual, the rule's steps
            if nonfinite(model.state_dict()):
                return ChainOutcome(model, steps, seconds, peak, details, diverged_at=step + 1)
        figures = _step_figures(restored, model, plan, step)
        figures.update(seconds=step_seconds, test_drop=before - figures["test_accuracy"])
        before = figures["test_accuracy"]
        steps.append(figures)
    return ChainOutcome(model, steps, seconds, peak, details)


def retrain_context(restored: Restored, rows: RowPlan) -> UnlearnContext:
    """A context for retraining without ``rows.forget`` (the original's weights are left alone)."""
    return build_context(restored, rows, model=copy.deepcopy(restored.model))


@dataclass
class _Plan:
    chain: ChainPlan
    audit_rows: AuditRows
    reference: torch.nn.Module
    retrain_seconds: float
    reference_figures: Any
    retrain_details: dict[str, Any]


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
        self._plans: dict[tuple[str, RequestSize, int], _Plan] = {}
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

    def requests(self, restored: Restored, size: RequestSize, chain: int = 1) -> list[list[int]]:
        """The rows of each of ``chain`` requests: disjoint random draws from the learned rows, the
        first the very rows a one-request cell of this size forgets (or the listed rows: one request)."""
        if size.listed:
            return [self.listed_rows(restored)]
        learn = restored.partition().learn
        count = size.count(len(learn))
        if chain * count >= len(learn):
            raise ConfigError(
                f"workload {self.workload.name}: {chain} request(s) of {count} row(s) need {chain * count} of the "
                f"{len(learn)} rows the original learned from, and one must be left; lower sizes, ratios or chain"
            )
        drawn, remaining = [], learn
        for step in range(chain):
            rng = np.random.default_rng([self.seed, *size.entropy(), *([step] if step else [])])
            chosen = rng.choice(remaining, size=count, replace=False)
            drawn.append(sorted(chosen.tolist()))
            remaining = np.setdiff1d(remaining, chosen)
        return drawn

    def listed_rows(self, restored: Restored) -> list[int]:
        """The rows of the workload's forget list (every id must be a training row)."""
        source = self.workload.forget or ""
        path = BUILTIN_FORGET.get(source) or (Path(source) if Path(source).is_absolute() else self.base / source)
        if source.startswith(BUILTIN_PREFIX) and source not in BUILTIN_FORGET:
            raise ConfigError(f"workload {self.workload.name}: unknown forget list {source!r}")
        request = read_forget_ids(path)
        places = restored.data.locate(request.ids)
        unknown = [i for i in request.ids if places[i] != "train"]
        if unknown:
            raise ConfigError(f"workload {self.workload.name}: {len(unknown)} forget id(s) are not training rows")
        return sorted(restored.data.train.row_index()[i] for i in request.ids)

    def plan(self, kind: str, size: RequestSize, chain: int = 1) -> _Plan:
        """The requests, audit rows, and the model retrained without all of them (with its time and
        figures) for one original kind, request size and chain: shared by every method's cell."""
        if (kind, size, chain) not in self._plans:
            restored = self.original(kind)
            plan = chain_plan(restored, self.requests(restored, size, chain))
            rows = plan.rows
            audit_rows = AuditRows(
                forget=rows.forget,
                retain=rows.retain,
                nonmember=heldout_pool(restored.data.test),
            )
            retrain = get_method(MethodName.RETRAIN)
            context = retrain_context(restored, rows)
            started = time.perf_counter()
            retrained = retrain.run(context, retrain.parse_options({}))
            seconds = time.perf_counter() - started
            reference = retrained.model
            figures, _ = model_figures(restored, reference, audit_rows, self.audit_request)
            details = clean_json(retrained.details)
            self._plans[(kind, size, chain)] = _Plan(plan, audit_rows, reference, seconds, figures, details)
        return self._plans[(kind, size, chain)]

    def cell(self, entry: MethodEntry, size: RequestSize, chain: int = 1) -> dict[str, Any]:
        """One method on one request size: its final model against the model retrained without
        every request, and (methods that do not retrain) its figures after each request.

        Time counts every request; RTE = ``chain`` × one retrain's time / that (each request would
        need a retrain of its own). A retrain row's time is ``chain`` × its one retrain's."""
        # Long on purpose: one cell's life (refusals, the chain or the single run, divergence, figures
        # against the shared reference) reads best in order.
        restored = self.original(entry.original)
        plan = self.plan(entry.original, size, chain)
        rows = plan.chain.rows
        run: dict[str, Any] = {
            "workload": self.workload.name,
            "label": entry.label,
            "method": entry.method,
            "options": entry.options,
            "original": entry.original,
            "ratio": size.ratio,
            "size": size.rows,
            "chain": chain,
            "seed": self.seed,
            "request_rows": int(len(plan.chain.steps[0].forget)),
            "forget_rows": int(len(rows.forget)),
        }
        reference, t_retrain = plan.reference, plan.retrain_seconds
        steps: list[dict[str, Any]] | None = None
        try:
            if retrains(entry.method) and not entry.options:
                model, seconds, peak = reference, chain * t_retrain, float("nan")
                run["details"] = plan.retrain_details
            elif retrains(entry.method):
                spec = get_method(entry.method)
                options = spec.parse_options(entry.options)
                output, once, peak = timed_run(spec, retrain_context(restored, rows), options)
                model, seconds = output.model, chain * once
                run["details"] = clean_json(output.details)
            else:
                outcome = run_chain(restored, plan.chain, entry)
                if outcome.details:
                    run["details"] = outcome.details[-1]
                    if chain > 1:
                        run["step_details"] = outcome.details
                if outcome.diverged_at is not None:
                    where = f" at request {outcome.diverged_at} of {chain}" if chain > 1 else ""
                    run.update(status=f"diverged (NaN/Inf parameters){where}", steps=outcome.steps)
                    return run
                model, seconds, peak, steps = outcome.model, outcome.seconds, outcome.peak_mb, outcome.steps
        except IauError as exc:
            run.update(status=f"refused: {exc}")
            return run
        if nonfinite(model.state_dict()):
            run.update(status="diverged (NaN/Inf parameters)")
            return run
        figures, _ = model_figures(restored, model, plan.audit_rows, self.audit_request)
        ref_figures = plan.reference_figures
        run.update(
            status="ok",
            seconds=seconds,
            retrain_seconds=t_retrain,
            rte=chain * t_retrain / seconds if seconds > 0 else float("nan"),
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
        if steps is not None:
            run.update(steps=steps, max_step_test_drop=max(s["test_drop"] for s in steps))
        return run
