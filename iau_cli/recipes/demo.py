"""``demo``: the whole story on the built-in workloads, in ./iau-demo/, reusing what is already there.

Two stories: *erasure* (a seeded 5% of the rows of ``builtin:purchase``, which the model memorizes,
are forgotten: membership shows, so does its removal) and *cleanup* (the 15% of ``builtin:noisy``'s
training rows whose labels were replaced are forgotten with ``--purpose cleanup``, so test accuracy
should recover). Each trains a model, unlearns the rows, retrains without them for comparison, and
audits the result. Every step is also printed as the ``iau`` command that reproduces it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iau_cli.config import RunConfig, preset, to_dict
from iau_cli.io.data import BUILTIN_DATASETS, NOISY_FLIPPED_IDS
from iau_cli.io.files import write_text_atomic
from iau_cli.io.ids import read_forget_ids
from iau_cli.progress import Progress, no_progress
from iau_cli.recipes.audit import AuditRequest, AuditResult, audit
from iau_cli.recipes.train import train
from iau_cli.recipes.unlearn import UnlearnRequest, unlearn

ERASURE_FRACTION = 0.05
DEMO_SEED = 7


@dataclass
class ModelRow:
    model: str
    forget_accuracy: float
    retain_accuracy: float
    test_accuracy: float
    mia_auc: float


@dataclass
class Story:
    name: str
    summary: str
    commands: list[str]
    rows: list[ModelRow]
    seconds: dict[str, float]
    verdict: str


@dataclass
class DemoResult:
    workdir: str
    stories: list[Story]
    reused: list[str] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    passed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_demo(workdir: str | Path = "iau-demo", *, device: str = "auto", progress: Progress = no_progress) -> DemoResult:
    """Run (or resume) both stories in ``workdir``."""
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    result = DemoResult(workdir=str(root), stories=[])
    erasure = _story(
        root / "erasure",
        "erasure",
        f"builtin:purchase, which the model memorizes: {ERASURE_FRACTION:.0%} of its training rows forgotten",
        preset("purchase-mlp"),
        _erasure_ids,
        "erase",
        device,
        progress,
        result,
    )
    result.stories.append(erasure)
    cleanup = _story(
        root / "cleanup",
        "cleanup",
        "builtin:noisy: the training rows whose labels were replaced, forgotten",
        preset("noisy-mlp"),
        _cleanup_ids,
        "cleanup",
        device,
        progress,
        result,
    )
    result.stories.append(cleanup)
    return result


def _story(
    folder: Path,
    name: str,
    summary: str,
    config: RunConfig,
    make_ids: Any,
    purpose: str,
    device: str,
    progress: Progress,
    result: DemoResult,
) -> Story:
    # Long on purpose: one story told in order (train, unlearn, retrain, audit, the commands to
    # repeat it).
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yaml"
    if not config_path.exists():
        import yaml

        write_text_atomic(config_path, yaml.safe_dump(to_dict(config), sort_keys=False))
    original = folder / "original.safetensors"
    unlearned = folder / "unlearned.safetensors"
    retrained = folder / "retrained.safetensors"
    ids_path = make_ids(folder)
    seconds: dict[str, float] = {}

    def step(path: Path, label: str, action: Any) -> None:
        if path.exists():
            result.reused.append(str(path))
            return
        started = time.perf_counter()
        action()
        seconds[label] = time.perf_counter() - started

    step(original, "train", lambda: train(config, original, device=device, progress=progress))
    forget = read_forget_ids(ids_path)

    def forget_with(method: str, out: Path, options: dict[str, Any]) -> None:
        request = UnlearnRequest(
            checkpoint=str(original), forget=forget, out=str(out), method=method, options=options, device=device
        )
        unlearn(request, progress=progress)

    step(unlearned, "unlearn", lambda: forget_with("iau", unlearned, {"purpose": purpose}))
    step(retrained, "retrain", lambda: forget_with("retrain", retrained, {}))
    audited = audit(
        AuditRequest(
            checkpoint=str(unlearned), forget=forget, reference=str(retrained), original=str(original), device=device
        ),
        progress=progress,
    )
    if name == "erasure":
        result.audit = audited.to_dict()
    result.passed = result.passed and audited.passed  # the exit code: every story's audit passed
    commands = [
        f"iau train {config_path} --out {original}",
        f"iau unlearn {original} --forget {ids_path} --purpose {purpose} --out {unlearned}",
        f"iau unlearn {original} --forget {ids_path} --method retrain --out {retrained}",
        f"iau audit {unlearned} --forget {ids_path} --reference {retrained} --original {original}",
    ]
    return Story(
        name=name,
        summary=summary,
        commands=commands,
        rows=_rows(audited),
        seconds=seconds,
        verdict=_verdict(audited),
    )


def _rows(audited: AuditResult) -> list[ModelRow]:
    rows = []
    for label, figures in (
        ("original", audited.original),
        ("unlearned (iau)", audited.model),
        ("retrained", audited.reference),
    ):
        if figures is None:
            continue
        acc = figures.accuracy
        rows.append(ModelRow(label, acc["forget"], acc["retain"], acc["test"], figures.mia.loss_auc))
    return rows


def _verdict(audited: AuditResult) -> str:
    if audited.passed:
        return "PASS"
    failed = [c for c in audited.checks if c.passed is False]
    return "FAIL (" + "; ".join(f"{c.name}: {c.detail}" for c in failed) + ")"


def _erasure_ids(folder: Path) -> Path:
    """A seeded fraction of the purchase training rows."""
    path = folder / "forget.txt"
    if not path.exists():
        import pyarrow.parquet as pq

        ids = pq.read_table(BUILTIN_DATASETS["purchase"]["train"], columns=["id"]).column("id").to_pylist()
        rng = np.random.default_rng(DEMO_SEED)
        chosen = sorted(rng.choice(ids, size=round(ERASURE_FRACTION * len(ids)), replace=False).tolist())
        header = f"# erasure: a seeded {ERASURE_FRACTION:.0%} of training rows (seed {DEMO_SEED})\n"
        write_text_atomic(path, header + "\n".join(chosen) + "\n")
    return path


def _cleanup_ids(folder: Path) -> Path:
    """The noisy workload's rows with replaced labels (shipped with it)."""
    path = folder / "forget.txt"
    if not path.exists():
        write_text_atomic(path, NOISY_FLIPPED_IDS.read_text(encoding="utf-8"))
    return path
