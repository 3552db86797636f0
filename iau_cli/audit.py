"""``audit``: did the deletion work? Utility, membership inference, closeness to a retrained
reference, lineage, and a verdict with thresholds.

Membership inference compares the audited ids (members, if the deletion failed) with an equal
number of held-out test rows drawn class by class in the same proportions (non-members). Every
attack is scored so that *higher means "more member-like"*; an AUC of 0.5 means the forget rows are
indistinguishable from rows the model never saw.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from iau_cli.config import RunConfig
from iau_cli.data import Split
from iau_cli.errors import CheckpointError, IdsError
from iau_cli.gradients import per_sample_grad_norms
from iau_cli.ids import ForgetRequest, short_id
from iau_cli.metrics import Predictions, auc, mean_kl_js, predict, tpr_at_fpr, tug_of_war
from iau_cli.progress import Progress, no_progress
from iau_cli.report import Histogram
from iau_cli.runs import Restored, restore
from iau_cli.training import RowPartition, train_model

LOW_FPRS = (0.01, 0.001)


@dataclass(frozen=True)
class Thresholds:
    """When a deletion passes. ``None`` margins are derived from the sample sizes (see README)."""

    mia_margin: float | None = None
    accuracy_margin: float | None = None
    max_test_drop: float = 0.02
    min_tow: float = 0.95


@dataclass
class AuditRequest:
    checkpoint: str
    forget: ForgetRequest
    reference: str | None = None
    original: str | None = None
    config: RunConfig | None = None
    trust_code: bool = False
    allow_data_change: bool = False
    allow_missing: bool = False
    device: str = "auto"
    thresholds: Thresholds = field(default_factory=Thresholds)
    accept_inconclusive: bool = False
    shadow_models: int = 0
    folds: int = 5
    seed: int = 0
    batch_size: int = 512


@dataclass
class MiaFigures:
    """Membership-inference figures for one model (forget rows vs held-out rows)."""

    members: int
    non_members: int
    loss_auc: float
    challenge_accuracy: float
    indiscernibility: float
    tpr_at_fpr: dict[str, float]
    grad_norm_auc: float = float("nan")
    lira_auc: float | None = None
    lira_tpr_at_fpr: dict[str, float] | None = None


@dataclass
class ModelFigures:
    """Utility and membership figures of one model on the audited rows."""

    accuracy: dict[str, float]
    loss: dict[str, float]
    mia: MiaFigures
    test_rows: int = 0
    """Rows behind the held-out ("test") figures: the evaluation half of the test split."""


@dataclass
class Check:
    """One check of the verdict. ``status``: pass, fail, inconclusive (the check could not have
    failed here: too few rows, a limit at or beyond 100%, or the original model passes it too) or
    not checked. ``passed`` is True / False for pass / fail and None otherwise."""

    name: str
    passed: bool | None
    value: float | str | None
    threshold: str
    detail: str
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            self.status = {True: "pass", False: "fail", None: "not checked"}[self.passed]


@dataclass
class AuditResult:
    checkpoint: str
    ids: dict[str, int]
    model: ModelFigures
    reference: ModelFigures | None
    original: ModelFigures | None
    comparison: dict[str, float]
    lineage: list[dict[str, Any]]
    checks: list[Check]
    notes: list[str]
    seconds: float
    passed: bool
    per_sample: list[dict[str, Any]] = field(default_factory=list, repr=False)
    ids_digest: str = ""  # the audited ids, digested with the checkpoint's salt (as its lineage events are)
    figures: list[Histogram] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("per_sample")
        data.pop("figures")
        return data


def balanced_nonmembers(member_labels: np.ndarray, test: Split, seed: int) -> np.ndarray:
    """Rows of the test split's evaluation half (never its calibration half, which unlearning
    methods may tune on) with the members' class counts, as far as the half allows."""
    pool = test.halves()[1]
    pool_labels = test.labels[pool]
    rng = np.random.default_rng(seed)
    chosen = []
    for label, count in zip(*np.unique(member_labels, return_counts=True)):
        candidates = pool[pool_labels == label]
        chosen.append(rng.choice(candidates, size=min(count, len(candidates)), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def challenge_attack(member_losses: np.ndarray, nonmember_losses: np.ndarray, folds: int, seed: int) -> float:
    """k-fold accuracy of a logistic regression on per-sample losses (balanced classes)."""
    n = min(len(member_losses), len(nonmember_losses))
    if n < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    members = rng.choice(member_losses, size=n, replace=False)
    others = rng.choice(nonmember_losses, size=n, replace=False)
    features = np.log(np.concatenate([members, others]).astype(np.float64) + 1e-12)
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    order = rng.permutation(2 * n)
    features, labels = features[order], labels[order]
    folds = max(2, min(folds, n))
    correct = 0
    for fold in range(folds):
        test_mask = np.arange(2 * n) % folds == fold
        weight, bias = _fit_logistic(features[~test_mask], labels[~test_mask])
        predicted = (features[test_mask] * weight + bias) > 0
        correct += int((predicted == labels[test_mask].astype(bool)).sum())
    return correct / (2 * n)


def _fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 200) -> tuple[float, float]:
    """One-feature logistic regression (standardized feature, L-BFGS in torch)."""
    mean, std = float(x.mean()), float(x.std()) or 1.0
    xt = torch.tensor((x - mean) / std, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    params = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = xt * params[0] + params[1]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt) + 1e-4 * params[0] ** 2
        loss.backward()
        return loss

    optimizer.step(closure)
    w, b = params.detach().tolist()
    return w / std, b - w * mean / std


def indiscernibility(accuracy: float) -> float:
    return 1.0 - abs(accuracy - 0.5) / 0.5


def auc_null_se(n_members: int, n_nonmembers: int) -> float:
    """Standard error of the AUC when both groups come from one distribution (Mann–Whitney)."""
    if n_members == 0 or n_nonmembers == 0:
        return float("nan")
    return math.sqrt((n_members + n_nonmembers + 1) / (12.0 * n_members * n_nonmembers))


def _mia(member: Predictions, nonmember: Predictions, folds: int, seed: int) -> MiaFigures:
    challenge = challenge_attack(member.losses, nonmember.losses, folds, seed)
    return MiaFigures(
        members=len(member.losses),
        non_members=len(nonmember.losses),
        loss_auc=auc(-member.losses, -nonmember.losses),
        challenge_accuracy=challenge,
        indiscernibility=indiscernibility(challenge) if not math.isnan(challenge) else float("nan"),
        tpr_at_fpr={f"{f:g}": tpr_at_fpr(-member.losses, -nonmember.losses, f) for f in LOW_FPRS},
    )


@dataclass
class AuditRows:
    """The rows an audit scores: forget rows (train split), retain rows, non-member test rows."""

    forget: np.ndarray
    retain: np.ndarray
    nonmember: np.ndarray


def model_figures(
    restored: Restored, model: torch.nn.Module, rows: AuditRows, request: AuditRequest, probs: bool = False
) -> tuple[ModelFigures, Predictions, Predictions]:
    """Accuracy, loss and membership figures of ``model`` (and its forget / non-member predictions)."""
    device = restored.device
    forget = predict(model, restored.data.train, rows.forget, device, batch_size=request.batch_size, keep_probs=probs)
    retain = predict(model, restored.data.train, rows.retain, device, batch_size=request.batch_size)
    # Held-out figures on the evaluation half of the test split (see ``Split.halves``).
    evaluation = restored.data.test.halves()[1]
    test = predict(model, restored.data.test, evaluation, device, batch_size=request.batch_size)
    position = np.searchsorted(evaluation, rows.nonmember)
    nonmember = Predictions(test.losses[position], test.correct[position])
    mia = _mia(forget, nonmember, request.folds, request.seed)
    # Gradient-norm attack: members were fit, so their per-sample gradients tend to be smaller.
    member_norms = per_sample_grad_norms(model, restored.data.train, rows.forget, device)
    nonmember_norms = per_sample_grad_norms(model, restored.data.test, rows.nonmember, device)
    mia.grad_norm_auc = auc(-member_norms, -nonmember_norms)
    figures = ModelFigures(
        accuracy={"forget": forget.accuracy, "retain": retain.accuracy, "test": test.accuracy},
        loss={"forget": forget.loss, "retain": retain.loss, "test": test.loss},
        mia=mia,
        test_rows=len(evaluation),
    )
    return figures, forget, nonmember


def lineage_checks(restored: Restored, audited_ids: list[str]) -> list[Check]:
    """Every audited id recorded as forgotten; parent-hash chain consistent up to these weights."""
    forgotten = restored.meta.forgotten
    missing = [i for i in audited_ids if not forgotten.contains(i)]
    checks = [
        Check(
            "ids recorded as forgotten",
            not missing,
            f"{len(audited_ids) - len(missing)}/{len(audited_ids)}",
            "all",
            "every id's salted hash is in the checkpoint"
            if not missing
            else f"{len(missing)} id(s) never forgotten by this model, e.g. {', '.join(missing[:5])}",
        )
    ]
    problems = []
    lineage = restored.meta.lineage
    for index in range(1, len(lineage)):
        event, previous = lineage[index], lineage[index - 1]
        parent = event.get("parent_params_sha256")
        if event.get("event") == "unlearn" and parent != previous.get("params_sha256"):
            problems.append(f"event {index} does not continue event {index - 1}")
    current = restored.checkpoint.params_digest()
    last = next((e for e in reversed(lineage) if "params_sha256" in e), None)
    if last is None or last["params_sha256"] != current:
        problems.append("the weights differ from those the last lineage event recorded")
    checks.append(
        Check(
            "lineage chain",
            not problems,
            f"{len(lineage)} event(s)",
            "consistent",
            "; ".join(problems) if problems else "each event continues its parent; weights match the last event",
        )
    )
    return checks


def audit(request: AuditRequest, *, progress: Progress = no_progress) -> AuditResult:
    """Audit a checkpoint's deletion of ``request.forget``."""
    started = time.perf_counter()
    restored = restore(
        request.checkpoint,
        config=request.config,
        trust_code=request.trust_code,
        allow_data_change=request.allow_data_change,
        device=request.device,
        progress=progress,
    )
    index = restored.data.train.row_index()
    test_index = restored.data.test.row_index()
    # Test rows the checkpoint recorded as forgotten (a request named them; the model never learned
    # them): nothing to measure, and no error — they are part of the deletion being audited.
    recorded_test = [i for i in request.forget.ids if i in test_index and restored.meta.forgotten.contains(i)]
    unknown = [i for i in request.forget.ids if i not in index and i not in recorded_test]
    if unknown and (not request.allow_missing or len(unknown) == len(request.forget.ids)):
        why = "; pass --allow-missing to audit the others" if len(unknown) < len(request.forget.ids) else ""
        gone = [i for i in unknown if i not in test_index and restored.meta.forgotten.contains(i)]
        held_out = [i for i in unknown if i in test_index]
        detail = ""
        if gone:
            detail += (
                f"; {len(gone)} were forgotten and their rows are no longer in the data (audit before deleting "
                "forgotten rows from the data store)"
            )
        if held_out:
            detail += f"; {len(held_out)} are test rows, which the model never learned"
        raise IdsError(
            f"{request.forget.source}: {len(unknown)} id(s) are not training rows of this model's data, "
            f"e.g. {', '.join(repr(short_id(i)) for i in unknown[:5])}{detail}{why}"
        )
    audited = [i for i in request.forget.ids if i in index]
    if not audited:
        raise IdsError(
            f"{request.forget.source}: no training rows to audit ({len(recorded_test)} recorded test row(s), which the "
            "model never learned, and nothing else)"
        )
    forget_rows = np.array(sorted(index[i] for i in audited), dtype=np.int64)
    learn = restored.partition(exclude=set(audited)).learn
    nonmember = balanced_nonmembers(restored.data.train.labels[forget_rows], restored.data.test, request.seed)
    rows = AuditRows(forget=forget_rows, retain=learn, nonmember=nonmember)
    progress("audit: the audited model", 0, 1)
    scored, model_forget, model_nonmember = model_figures(restored, restored.model, rows, request, probs=True)
    progress("audit: the audited model", 1, 1)
    figures = [
        Histogram(
            "Loss of forget rows vs held-out rows (audited model)",
            "cross-entropy loss (log scale: log10(loss + 1e-6))",
            {"forget rows": _log_losses(model_forget.losses), "held-out rows": _log_losses(model_nonmember.losses)},
        )
    ]
    checks = lineage_checks(restored, audited)
    notes: list[str] = []
    if len(nonmember) < 100:
        notes.append(f"TPR at 1% FPR needs ≥ 100 non-member rows to mean anything; there are {len(nonmember)}")
    elif len(nonmember) < 1000:
        notes.append(f"TPR at 0.1% FPR needs ≥ 1,000 non-member rows to mean anything; there are {len(nonmember)}")
    if len(nonmember) < len(forget_rows):
        notes.append("the test split has fewer rows of some classes than the forget set; non-members are fewer")

    reference = original = None
    comparison: dict[str, float] = {}
    lira_targets = [(scored, restored.model)]
    if request.reference:
        progress("audit: the retrained reference", 0, 1)
        ref = _other(request.reference, restored, request, "reference")
        reference, ref_forget, _ = model_figures(restored, ref, rows, request, probs=True)
        progress("audit: the retrained reference", 1, 1)
        lira_targets.append((reference, ref))
        kl, js = mean_kl_js(model_forget.probs, ref_forget.probs)  # type: ignore[arg-type]
        comparison = {
            "tug_of_war": tug_of_war(scored.accuracy, reference.accuracy),
            **{f"{s}_accuracy_gap": scored.accuracy[s] - reference.accuracy[s] for s in ("forget", "retain", "test")},
            "mia_auc_gap": scored.mia.loss_auc - reference.mia.loss_auc,
            "forget_kl": kl,
            "forget_js": js,
        }
    if request.original:
        progress("audit: the original", 0, 1)
        _check_ancestor(request.original, restored)
        orig = _other(request.original, restored, request, "original")
        original, orig_forget, orig_nonmember = model_figures(restored, orig, rows, request)
        lira_targets.append((original, orig))
        figures.insert(
            0,
            Histogram(
                "Loss of forget rows vs held-out rows (original, before the deletion)",
                "cross-entropy loss (log scale: log10(loss + 1e-6))",
                {"forget rows": _log_losses(orig_forget.losses), "held-out rows": _log_losses(orig_nonmember.losses)},
            ),
        )
        progress("audit: the original", 1, 1)
    if request.shadow_models:
        _lira(restored, rows, request, lira_targets, progress)
    values = [v for figure in figures for series in figure.series.values() for v in series if math.isfinite(v)]
    if values:  # before and after on one axis, so the eye compares like with like
        figures = [dataclasses.replace(f, x_range=(min(values), max(values))) for f in figures]
    cleanup = _cleanup_lineage(restored, restored.meta.forgotten.list_digest(audited + recorded_test))
    if cleanup:
        notes.append(
            "audited as a cleanup (the lineage's event for exactly these ids ran --purpose cleanup): their labels are "
            "taken to be wrong, so forget figures below the retrained model's are what the cleanup wants, not a failure"
        )
    checks += verdict_checks(scored, reference, original, request.thresholds, cleanup=cleanup)
    inconclusive = any(c.status == "inconclusive" for c in checks)
    passed = all(c.passed is not False for c in checks) and (request.accept_inconclusive or not inconclusive)
    per_sample = [
        {
            "id": restored.data.train.ids[row],
            "label": int(restored.data.train.labels[row]),
            "loss": float(loss),
            "correct": bool(correct),
            "membership_score": float(-loss),
            "nonmember_rank": float(np.mean(model_nonmember.losses > loss)) if len(model_nonmember.losses) else None,
        }
        for row, loss, correct in zip(forget_rows, model_forget.losses, model_forget.correct)
    ]
    return AuditResult(
        checkpoint=str(request.checkpoint),
        ids={
            "audited": len(audited),
            "duplicates": request.forget.duplicates,
            "unknown_skipped": len(unknown),
            "test_rows_recorded": len(recorded_test),
        },
        ids_digest=restored.meta.forgotten.list_digest(audited + recorded_test),
        figures=figures,
        model=scored,
        reference=reference,
        original=original,
        comparison=comparison,
        lineage=restored.meta.lineage,
        checks=checks,
        notes=notes,
        seconds=time.perf_counter() - started,
        passed=passed,
        per_sample=per_sample,
    )


def _check_ancestor(path: str, restored: Restored) -> None:
    """``--original`` must be a checkpoint this one descends from (its file's sha256 is a parent in
    the lineage); anything else would make the before/after comparison meaningless."""
    from iau_cli.checkpoint import file_sha256

    try:
        digest = file_sha256(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the --original checkpoint ({exc.strerror})") from None
    parents = {event.get("parent_sha256") for event in restored.meta.lineage}
    if digest not in parents:
        raise CheckpointError(
            f"{path}: --original is not an ancestor of {restored.checkpoint.path} (its sha256 {digest[:12]}… is no "
            "parent in the lineage); pass the checkpoint the deletion started from"
        )


def _other(path: str, restored: Restored, request: AuditRequest, role: str) -> torch.nn.Module:
    """Load a comparison model; it must be the same architecture on the same data."""
    other = restore(
        path, config=request.config, trust_code=request.trust_code, allow_data_change=True, device=restored.device
    )
    if other.data.fingerprint["sha256"] != restored.data.fingerprint["sha256"]:
        raise CheckpointError(f"{path}: the {role} model was trained on different data than {request.checkpoint}")
    return other.model


def _cleanup_lineage(restored: Restored, ids_digest: str) -> bool:
    """Whether the audited ids are exactly one cleanup event's (mislabeled or poisoned rows): the
    event recorded ``ran.purpose`` cleanup and the digest of these very ids. An erasure, or a
    cleanup of other rows in the same lineage, is audited as an erasure."""
    for event in restored.meta.lineage:
        ran = event.get("ran")
        if event.get("event") == "unlearn" and isinstance(ran, dict) and event.get("ids_digest") == ids_digest:
            return ran.get("purpose") == "cleanup"
    return False


def verdict_checks(
    model: ModelFigures,
    reference: ModelFigures | None,
    original: ModelFigures | None,
    thresholds: Thresholds,
    *,
    cleanup: bool = False,
) -> list[Check]:
    """Removal and utility checks. Margins default to two standard errors of the figure at hand.

    The removal checks are two-sided (rows *less* member-like than rows the model never saw are
    over-forgotten, which is detectable too), and inconclusive when they could not have failed: the
    upper limit reaches 100%, or (with ``--original``) the original model passes them as well.
    """
    mia = model.mia
    se = auc_null_se(mia.members, mia.non_members)
    margin = thresholds.mia_margin if thresholds.mia_margin is not None else max(0.02, 2 * se)
    target = reference.mia.loss_auc if reference is not None else 0.5
    target_label = "retrained model" if reference else "chance"
    checks = [
        _two_sided(
            "membership (loss AUC)",
            mia.loss_auc,
            target,
            margin,
            f"{target_label} {target:.3f} ± {margin:.3f}",
            original.mia.loss_auc if original is not None else None,
            "the forget rows score as members less than rows the model never saw (over-forgotten)",
            below_ok=cleanup,
        )
    ]
    n_forget = max(mia.members, 1)
    if reference is not None:
        target_acc = reference.accuracy["forget"]
        label = "retrained model's forget accuracy"
        # The same rows under two models: the forget rows' binomial error bounds the difference.
        inverse_rows = 1 / n_forget
    else:
        target_acc = model.accuracy["test"]
        label = "held-out accuracy (what a model that never saw the rows gets)"
        # Two samples (forget rows, held-out rows): the difference carries both errors.
        inverse_rows = 1 / n_forget + 1 / max(model.test_rows, 1) if model.test_rows else 1 / n_forget
    variance = max(target_acc * (1 - target_acc), 0.25 / n_forget)
    acc_se = math.sqrt(variance * inverse_rows)
    acc_margin = thresholds.accuracy_margin if thresholds.accuracy_margin is not None else max(0.01, 2 * acc_se)
    checks.append(
        _two_sided(
            "forget accuracy",
            model.accuracy["forget"],
            target_acc,
            acc_margin,
            f"{label} {target_acc:.3f} ± {acc_margin:.3f}",
            original.accuracy["forget"] if original is not None else None,
            "the forget rows are predicted worse than rows the model never saw (over-forgotten)",
            ceiling=1.0,
            below_ok=cleanup,
        )
    )
    baseline = original if original is not None else reference
    if baseline is not None:
        drop = baseline.accuracy["test"] - model.accuracy["test"]
        checks.append(
            Check(
                "test accuracy kept",
                drop <= thresholds.max_test_drop,
                model.accuracy["test"],
                f"≥ {baseline.accuracy['test'] - thresholds.max_test_drop:.3f}",
                f"{'original' if original is not None else 'retrained'} {baseline.accuracy['test']:.3f} − "
                f"{thresholds.max_test_drop:.3f}; "
                + ("ok" if drop <= thresholds.max_test_drop else f"lost {drop - thresholds.max_test_drop:.2g} more"),
            )
        )
    else:
        checks.append(
            Check("test accuracy kept", None, model.accuracy["test"], "—", "pass --original or --reference to check")
        )
    if reference is not None:
        tow = tug_of_war(model.accuracy, reference.accuracy)
        checks.append(
            Check(
                "Tug-of-War vs retrained",
                tow >= thresholds.min_tow,
                tow,
                f"≥ {thresholds.min_tow:.3f}",
                "ok" if tow >= thresholds.min_tow else f"short by {thresholds.min_tow - tow:.2g}",
            )
        )
    return checks


def _two_sided(
    name: str,
    value: float,
    target: float,
    margin: float,
    where: str,
    original: float | None,
    below: str,
    *,
    ceiling: float | None = None,
    below_ok: bool = False,
) -> Check:
    """Fail when ``value`` lies more than ``margin`` from ``target``, on either side. A value inside
    the range passes, unless the check could not have failed on the side that matters: the upper
    limit reaches ``ceiling`` (even a model that kept every row would pass), or the original
    model's ``original`` value passes it too; then it is inconclusive."""
    low, high = target - margin, target + margin
    threshold = f"{low:.3f} … {high:.3f}"
    if value > high:
        return Check(name, False, value, threshold, f"{where}; over by {value - high:.2g}")
    if value < low and below_ok:  # a cleanup: rows whose labels are wrong may end below retraining's
        return Check(name, True, value, threshold, f"{where}; under by {low - value:.2g}: ok for a cleanup")
    if value < low:
        if original is not None and original < low and value >= original - margin:
            # The rows were already there before the deletion: harder than the average held-out
            # row (for example rows the original never fit), which this check cannot tell apart
            # from over-forgetting. Only a drop below the original would be the deletion's doing.
            detail = (
                f"{where}; under by {low - value:.2g}, but the original model was as low ({original:.3f}): these rows "
                "are harder than the average held-out row, not over-forgotten by the deletion; audit against "
                "--reference to compare with a retrained model"
            )
            return Check(name, None, value, threshold, detail, status="inconclusive")
        return Check(name, False, value, threshold, f"{where}; under by {low - value:.2g}: {below}")
    if ceiling is not None and high >= ceiling:
        detail = (
            f"{where}: the upper limit reaches {ceiling:.0%}, so even a model that kept every row passes; "
            "audit against --reference, or with more rows"
        )
        return Check(name, None, value, threshold, detail, status="inconclusive")
    if original is not None and low <= original <= high:
        detail = (
            f"{where}: the original model ({original:.3f}) passes it too, so passing it is no evidence of "
            f"forgetting (the smallest effect it could detect is {margin:.3f})"
        )
        return Check(name, None, value, threshold, detail, status="inconclusive")
    return Check(name, True, value, threshold, f"{where}; ok")


def _lira(
    restored: Restored,
    rows: AuditRows,
    request: AuditRequest,
    targets: list[tuple[ModelFigures, torch.nn.Module]],
    progress: Progress,
) -> None:
    """Offline LiRA: shadow models trained on random halves of the retain rows never see the
    audited rows; a row's score is how far the audited model's confidence on it lies above the
    shadow models' (a per-row Gaussian fitted to the logit-scaled confidence)."""
    k = request.shadow_models
    rng = np.random.default_rng(request.seed + 1)
    forget_phi, test_phi = [], []
    for shadow in range(k):
        half = np.sort(rng.choice(rows.retain, size=len(rows.retain) // 2, replace=False))
        config = dataclasses.replace(
            restored.config, train=dataclasses.replace(restored.config.train, seed=request.seed * 1000 + shadow)
        )
        model, _ = train_model(
            config,
            restored.data,
            RowPartition(learn=half, val=np.zeros(0, dtype=np.int64)),
            restored.device,
            allow_import=True,
        )
        forget_phi.append(_phi(model, restored, restored.data.train, rows.forget, request))
        test_phi.append(_phi(model, restored, restored.data.test, rows.nonmember, request))
        progress("shadow models", shadow + 1, k)
    forget_phi_arr, test_phi_arr = np.stack(forget_phi), np.stack(test_phi)
    # With few shadows a per-row variance is noisy; use one variance pooled over all rows (as LiRA does for small k).
    pooled_std = float(np.concatenate([forget_phi_arr, test_phi_arr], axis=1).std(axis=0, ddof=0).mean()) + 1e-6
    for figures, model in targets:
        f_obs = _phi(model, restored, restored.data.train, rows.forget, request)
        t_obs = _phi(model, restored, restored.data.test, rows.nonmember, request)
        f_score = (f_obs - forget_phi_arr.mean(0)) / pooled_std
        t_score = (t_obs - test_phi_arr.mean(0)) / pooled_std
        figures.mia.lira_auc = auc(f_score, t_score)
        figures.mia.lira_tpr_at_fpr = {f"{f:g}": tpr_at_fpr(f_score, t_score, f) for f in LOW_FPRS}


def _phi(model: torch.nn.Module, restored: Restored, split: Any, rows: np.ndarray, request: AuditRequest) -> np.ndarray:
    """Logit-scaled confidence in the true class, log(p / (1 − p)), per row (from the logits)."""
    predictions = predict(model, split, rows, restored.device, batch_size=request.batch_size, keep_margins=True)
    return predictions.margins  # type: ignore[return-value]


def per_sample_csv(result: AuditResult) -> str:
    """One row per audited id: id, label, loss, correct, membership score, non-member rank."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["id", "label", "loss", "correct", "membership_score", "nonmember_rank"])
    writer.writeheader()
    writer.writerows(result.per_sample)
    return buffer.getvalue()


def _log_losses(losses: np.ndarray) -> list[float]:
    return np.log10(np.asarray(losses, dtype=np.float64) + 1e-6).tolist()
