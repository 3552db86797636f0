"""``bench``: methods × forget ratios × seeds on the same data, with the same seeds, in one run.

Originals (with and without gradient restriction) and retrained references are trained once per
seed and cached under the output folder; every finished cell is appended to ``runs.jsonl`` at
once, so a second run resumes and an interrupted run keeps what finished.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from iau_cli import __version__, distributed
from iau_cli.audit import AuditRequest, AuditRows, balanced_nonmembers, model_figures
from iau_cli.config import (
    BUILTIN_PREFIX,
    ModelConfig,
    RunConfig,
    TrainConfig,
    from_dict,
    help_field,
    load_run_config,
    read_yaml_mapping,
    to_dict,
)
from iau_cli.data import NOISY_FLIPPED_IDS, builtin_config
from iau_cli.errors import ConfigError, IauError, OutputError
from iau_cli.ids import ForgetRequest, read_forget_ids
from iau_cli.methods import MethodName, get_method
from iau_cli.metrics import tug_of_war
from iau_cli.progress import Progress, no_progress
from iau_cli.report import clean_json
from iau_cli.runs import Restored, default_run_config, noisy_run_config, purchase_run_config, restore, train
from iau_cli.unlearning import build_context, plan_rows


def lenet_run_config() -> RunConfig:
    """LeNet-5 on the built-in digits as 1×32×32 images (``sample_configs/digits_lenet.yaml``)."""
    return RunConfig(
        data=builtin_config("digits", shape=[1, 8, 8], resize=[32, 32], mean=0.5, std=0.5),
        model=ModelConfig(name="lenet5"),
        train=TrainConfig(epochs=30, gr_alpha=0.005),
    )


BUILTIN_WORKLOADS: dict[str, Callable[[], RunConfig]] = {
    "digits-mlp": default_run_config,
    "digits-lenet": lenet_run_config,
    "purchase-mlp": purchase_run_config,
    "noisy-mlp": noisy_run_config,
}
BUILTIN_FORGET = {"builtin:noisy-flipped": NOISY_FLIPPED_IDS}
LISTED = 0.0
"""The "ratio" of cells whose forget set is a workload's listed ids rather than a random fraction."""


@dataclass(frozen=True)
class MethodEntry:
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
    """A named run config: ``builtin:digits-mlp``, ``builtin:digits-lenet`` or a YAML path."""

    name: str = help_field("Name shown in the table.")
    config: str = help_field(
        "builtin:digits-mlp, builtin:digits-lenet, builtin:purchase-mlp, builtin:noisy-mlp, or a run-config YAML path."
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
class BenchConfig:
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
        "Forget-set sizes as fractions of the training rows.", default_factory=lambda: [0.05]
    )
    seeds: int = help_field("Seeds per cell (each seed: its own original, forget set and retrained model).", default=1)

    def check(self) -> list[str]:
        problems = []
        if not self.workloads or not self.methods:
            problems.append("workloads and methods must not be empty")
        names = [w.name for w in self.workloads]
        if len(set(names)) != len(names):
            problems.append("workloads: names must be unique (cached models are kept by name)")
        if any(not 0 < r < 1 for r in self.ratios):
            problems.append("ratios: each must be between 0 and 1")
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
    mapping = read_yaml_mapping(path, "bench config", "a mapping with workloads, methods, ratios and seeds")
    return from_dict(BenchConfig, mapping, source=str(path)), path.resolve().parent


def workload_config(workload: Workload, base: Path) -> RunConfig:
    if workload.config.startswith(BUILTIN_PREFIX):
        name = workload.config[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN_WORKLOADS:
            raise ConfigError(
                f"workload {workload.name}: unknown {workload.config!r}; built-in: {', '.join(BUILTIN_WORKLOADS)}"
            )
        return BUILTIN_WORKLOADS[name]()
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


def _key(workload: str, run_config: RunConfig, entry: MethodEntry, ratio: float, seed: int) -> str:
    text = json.dumps([workload, to_dict(run_config), dataclasses.asdict(entry), ratio, seed], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _recipe_digest(config: RunConfig) -> str:
    text = json.dumps([to_dict(config), __version__], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _with_seed(config: RunConfig, seed: int, plain: bool = False) -> RunConfig:
    train_config = dataclasses.replace(config.train, seed=seed, gr_alpha=0.0 if plain else config.train.gr_alpha)
    return dataclasses.replace(config, train=train_config)


def _warm_up() -> None:
    """Pay one-time costs before any timing: torch.optim and torch.func initialize torch._dynamo
    on first use (about a second), which would otherwise land on whichever method runs first."""
    from iau_cli.gradients import per_sample_grads

    layer = torch.nn.Linear(2, 2)
    torch.optim.Adam(layer.parameters()).step()
    torch.optim.SGD(layer.parameters(), lr=0.1).step()
    per_sample_grads(layer, torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))


def run_bench(
    config: BenchConfig,
    out: str | os.PathLike[str],
    *,
    base: Path | None = None,
    device: str = "auto",
    progress: Progress = no_progress,
) -> BenchResult:
    """Run the grid, resuming from ``out/runs.jsonl``; returns every run and the per-seed summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "runs.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if log_path.exists():
        for number, line in enumerate(log_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if line.strip():
                try:
                    run = json.loads(line)
                    done[run["key"]] = run
                except (ValueError, KeyError, TypeError):
                    raise OutputError(
                        f"{log_path}: line {number} is not a bench run; this is not a bench folder of iau's "
                        "(delete runs.jsonl to start over, or choose another --out)"
                    ) from None
    base = base or Path.cwd()
    plans = [(w, workload_config(w, base)) for w in config.workloads]
    _warm_up()
    runs: list[dict[str, Any]] = []
    skipped = 0
    cells = sum(1 if w.forget else len(config.ratios) for w, _ in plans)
    total = cells * config.seeds * len(config.methods)
    finished = 0
    interrupted = False
    try:
        for workload, run_config in plans:
            for seed in range(config.seeds):
                grid = _SeedGrid(
                    workload, run_config, seed, out / workload.name / f"seed-{seed}", device, progress, base
                )
                for ratio in [LISTED] if workload.forget else config.ratios:
                    for entry in _retrain_first(config.methods):
                        key = _key(workload.name, run_config, entry, ratio, seed)
                        if key in done:
                            runs.append(done[key])
                            skipped += 1
                        else:
                            run = grid.cell(entry, ratio)
                            run["key"] = key
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


def _retrains(method: str) -> bool:
    """Whether a bench entry's method retrains from scratch (a capability of its spec)."""
    return method != ORIGINAL and get_method(method).retrains


def _retrain_first(methods: list[MethodEntry]) -> list[MethodEntry]:
    return sorted(methods, key=lambda m: not _retrains(m.method))


@dataclass
class _Plan:
    rows: Any
    audit_rows: AuditRows
    reference: torch.nn.Module
    retrain_seconds: float
    reference_figures: Any


class _SeedGrid:
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
            config = _with_seed(self.config, self.seed, plain=kind == "plain")
            # Named by what made it (recipe, data config, seed, iau version): a changed workload
            # trains a new original instead of reusing a stale one; a changed data file is refused
            # by the fingerprint check when the cached model is restored.
            path = self.folder / f"original-{kind}-{_recipe_digest(config)}.safetensors"
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
            elif _retrains(entry.method) and not entry.options:
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


METRICS = (
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
)


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, min and max over seeds for each (workload, ratio, method label)."""
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["workload"], run["ratio"], run["label"]), []).append(run)
    summary = []
    for (workload, ratio, label), group in groups.items():
        ok = [r for r in group if r.get("status") == "ok"]
        entry: dict[str, Any] = {
            "workload": workload,
            "ratio": ratio,
            "label": label,
            "method": group[0]["method"],
            "seeds": len(ok),
            "status": "ok" if ok else group[0].get("status", "failed"),
        }
        for metric in METRICS:
            source = metric.removesuffix("_abs")  # |gap| per seed, so gaps of opposite signs cannot cancel
            values = [r[source] for r in ok if r.get(source) is not None and not _nan(r[source])]
            if metric != source:
                values = [abs(v) for v in values]
            entry[metric] = (
                {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}
                if values
                else None
            )
        summary.append(entry)
    return summary


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def targets(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The removal targets for IAU's default (issue 11), per workload and forget set, on means over
    seeds. Random forget fractions judge ``iau`` (erase): forget accuracy within max(2 points, 2·SE)
    of the retrained model's, ≥ 80% of the original's loss-attack AUC gap closed, test accuracy within
    1 point of the retrained model's, Tug-of-War ≥ 0.95 and above doing nothing and every method but
    retraining. Listed (mislabeled) rows judge ``iau cleanup``: ≥ 60% of retraining's test-accuracy
    gain recovered. Both: RTE ≥ 20."""
    found = []
    for entry in summary:
        listed = entry["ratio"] == LISTED
        if entry["status"] != "ok" or entry["label"] != ("iau cleanup" if listed else "iau"):
            continue
        same = [
            s
            for s in summary
            if s["workload"] == entry["workload"] and s["ratio"] == entry["ratio"] and s["status"] == "ok"
        ]
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
        if original is not None and original["mia_gap"]["mean"] > 0:
            closed = 1 - mean["mia_gap_abs"] / original["mia_gap"]["mean"]  # overshooting closes nothing
            found.append(_target(entry, "≥ 80% of the AUC gap closed", f"{closed:.0%}", closed >= 0.8))
        test_gap, test_gap_abs = mean["test_gap"], mean["test_gap_abs"]
        value = f"{100 * test_gap:+.1f} pt (mean |gap| {100 * test_gap_abs:.1f})"
        found.append(_target(entry, "test acc within 1 pt", value, test_gap_abs <= 0.01))
        tow = mean["tow"]
        rivals = [s for s in same if not _retrains(s["method"]) and s is not entry and s["tow"]]
        best = max(rivals, key=lambda s: s["tow"]["mean"], default=None)
        best_tow = best["tow"]["mean"] if best is not None else float("-inf")
        value = f"{tow:.3f}" + (f" (best other: {best['label']} {best_tow:.3f})" if best is not None else "")
        found.append(_target(entry, "ToW ≥ 0.95 and above the rest", value, tow >= 0.95 and tow >= best_tow))
    return found


def _target(entry: dict[str, Any], target: str, value: str, met: bool) -> dict[str, Any]:
    return {"workload": entry["workload"], "ratio": entry["ratio"], "target": target, "value": value, "met": bool(met)}


JSON_SHAPE: dict[str, Any] = {
    "out": str,
    "config": dict,
    "runs": [{"key": str, "workload": str, "label": str, "method": str, "ratio": float, "seed": int, "status": str}],
    "summary": [{"workload": str, "ratio": float, "label": str, "method": str, "seeds": int, "status": str}],
    "targets": [{"workload": str, "ratio": float, "target": str, "value": str, "met": bool}],
    "interrupted": bool,
    "skipped": int,
}
"""The documented shape of ``iau bench --json``: required keys and their types (lists hold records)."""


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
    if isinstance(shape, list):
        if not isinstance(data, list):
            return [f"{where}: expected a list"]
        return [p for i, item in enumerate(data) for p in validate_shape(item, shape[0], f"{where}[{i}]")]
    if shape is float:
        ok = isinstance(data, (int, float)) and not isinstance(data, bool)
    else:
        ok = isinstance(data, shape) and not (shape is int and isinstance(data, bool))
    return [] if ok else [f"{where}: expected {shape.__name__}, got {type(data).__name__}"]


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
            size = 30 + 400 * s["ratio"]
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
    figure.text(0.99, 0.01, "marker size: forget ratio", ha="right", fontsize=8)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)
