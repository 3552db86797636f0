"""``unlearn``: forget the listed sample ids and write a new checkpoint with its lineage event.

The input checkpoint is never modified. Nothing is written unless every check passes: ids
resolved (unknown ids are an error unless allowed), the update finite, the output free (or
``overwrite``) and not locked by a concurrent run.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iau_cli import __version__
from iau_cli.cli.report import clean_json
from iau_cli.config import RunConfig, to_dict
from iau_cli.core import distributed
from iau_cli.core.gradients import GradDict, trainable
from iau_cli.core.methods import MethodName, get_method
from iau_cli.core.methods.base import UnlearnContext
from iau_cli.core.metrics import predict
from iau_cli.core.references import lookup_targets
from iau_cli.errors import DataChangedError, IdsError, UnlearningError
from iau_cli.io.checkpoint import CheckpointMeta, params_sha256, save_checkpoint, utc_now
from iau_cli.io.files import Outputs, check_writable, default_output
from iau_cli.io.forgotten import ENUMERABLE_WARNING
from iau_cli.io.ids import ForgetRequest, short_id
from iau_cli.io.rowprint import masked
from iau_cli.progress import Progress, no_progress
from iau_cli.recipes.ledger import carried_ledger, compute_ledger, ledger_state, relative_drift
from iau_cli.recipes.train import Restored, restore

UNKNOWN_EXAMPLES = 5


@dataclass
class UnlearnRequest:
    """Everything ``unlearn`` needs; the CLI fills it from flags."""

    checkpoint: str
    forget: ForgetRequest
    out: str | None = None
    method: str = MethodName.IAU.value
    options: dict[str, Any] = field(default_factory=dict)
    config: RunConfig | None = None
    allow_missing: bool = False
    trust_code: bool = False
    allow_data_change: bool = False
    device: str = "auto"
    overwrite: bool = False
    ledger_refresh: str = "later"  # "later": carry the ledger forward (stale); "now": recompute it
    max_test_drop: float = 0.02
    batch_size: int = 512
    fallback: str = "none"  # "retrain": retrain instead when the method's self-check fails


@dataclass
class IdCounts:
    """How the requested ids resolved."""

    requested: int
    duplicates: int
    found: int
    unknown: int
    unknown_examples: list[str]
    already_forgotten: int
    validation_only: int
    forgotten_now: int
    test_rows: int = 0  # held-out test rows requested: never learned, recorded so they may be deleted


@dataclass
class Figures:
    forget_accuracy: float
    forget_loss: float
    test_accuracy: float
    test_loss: float


@dataclass
class UnlearnResult:
    """The outcome of ``iau unlearn``: ids, method, timings, before/after figures, output."""

    checkpoint: str
    parent_sha256: str
    out: str
    out_sha256: str
    changed: bool
    method: str
    options: dict[str, Any]
    ids: IdCounts
    retain_rows: int
    before: Figures | None
    after: Figures | None
    seconds: dict[str, float]
    ledger: dict[str, Any]
    details: dict[str, Any]
    message: str
    weights_moved: bool = False
    warnings: list[dict[str, str]] = field(default_factory=list)
    """Each {"code", "message"}; codes (stable, for scripts): heldout_accuracy_drop,
    self_check_failed (``check`` says which), ids_enumerable."""
    ids_digest: str = ""  # salted digest of the ids forgotten now (as in the lineage event)
    data_sha256: str = ""  # the data files' fingerprint this run read
    forgotten_ids: list[str] = field(default_factory=list, repr=False)  # clear ids: --forgotten-ids only
    outcomes: list[tuple[str, str]] = field(default_factory=list, repr=False)  # clear ids: --outcomes only
    # The method's self-check (details.check.code of the rule that ran first): ok,
    # targets_not_reached, heldout_accuracy_drop; "none" when the method has no self-check.
    check: str = "none"
    fell_back: bool = False  # the self-check failed and --fallback retrain retrained instead

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["forgotten_ids"]  # the JSON may travel further than the ids file it was asked for
        del data["outcomes"]
        return data


def resolve_ids(
    restored: Restored, request: ForgetRequest, allow_missing: bool
) -> tuple[list[str], IdCounts, list[int], list[str]]:
    """(training ids to forget now, counts, their row indices, test-split ids to record).

    An id forgotten before is skipped whether or not its row is still in the data (a retention job
    deletes forgotten rows; the same request repeated after that is not an unknown id). An id of a
    held-out test row was never learned: it is recorded (so that its row may be deleted from the
    data too) and nothing is updated for it. Any other id is unknown: an error unless
    ``allow_missing``.
    """
    index = restored.data.train.row_index()
    test_index = restored.data.test.row_index()
    forgotten = restored.meta.forgotten
    already = [i for i in request.ids if forgotten.contains(i)]
    fresh = [i for i in request.ids if not forgotten.contains(i)]
    unknown = [i for i in fresh if i not in index and i not in test_index]
    if unknown and not allow_missing:
        shown = ", ".join(repr(short_id(i)) for i in unknown[:UNKNOWN_EXAMPLES])
        more = f" and {len(unknown) - UNKNOWN_EXAMPLES} more" if len(unknown) > UNKNOWN_EXAMPLES else ""
        hint = (
            f"; check that the ids come from the id column {restored.config.data.id_column!r}"
            if len(unknown) == len(request.ids)
            else ""
        )
        raise IdsError(
            f"{request.source}: {len(unknown)} of {len(request.ids)} id(s) are not rows of this model's data "
            f"(neither training nor test rows): {shown}{more}{hint}; pass --allow-missing to skip them"
        )
    new_ids = [i for i in fresh if i in index]
    test_ids = [i for i in fresh if i in test_index]
    counts = IdCounts(
        requested=len(request.ids),
        duplicates=request.duplicates,
        found=len([i for i in request.ids if i in index]),
        unknown=len(unknown),
        unknown_examples=[short_id(i) for i in unknown[:UNKNOWN_EXAMPLES]],
        already_forgotten=len(already),
        validation_only=0,
        forgotten_now=len(new_ids),
        test_rows=len(test_ids),
    )
    return new_ids, counts, [index[i] for i in new_ids], test_ids


OUTCOMES = ("erased", "test_row", "already_forgotten", "not_found")


def id_outcomes(restored: Restored, request: ForgetRequest) -> list[tuple[str, str]]:
    """Per requested id (once each, in request order), what this run does with it: ``erased`` (a
    training row, forgotten now), ``test_row`` (a held-out row, never learned, recorded now),
    ``already_forgotten`` (recorded by an earlier request), ``not_found`` (no row of the data)."""
    index, test_index = restored.data.train.row_index(), restored.data.test.row_index()
    forgotten = restored.meta.forgotten

    def outcome(sample_id: str) -> str:
        if forgotten.contains(sample_id):
            return "already_forgotten"
        if sample_id in index:
            return "erased"
        return "test_row" if sample_id in test_index else "not_found"

    return [(i, outcome(i)) for i in request.ids]


def _figures(restored: Restored, model: torch.nn.Module, forget_rows: np.ndarray, batch_size: int) -> Figures:
    """Forget-row and held-out figures; held-out = the evaluation half of the test split (methods
    calibrate on the other half, see ``Split.halves``)."""
    forget = predict(model, restored.data.train, forget_rows, restored.device, batch_size=batch_size)
    evaluation = restored.data.test.halves()[1]
    test = predict(model, restored.data.test, evaluation, restored.device, batch_size=batch_size)
    return Figures(forget.accuracy, forget.loss, test.accuracy, test.loss)


@dataclass
class RowPlan:
    """The rows of a request: forget (learned rows to unlearn), retain, and validation."""

    forget: np.ndarray
    retain: np.ndarray
    val: np.ndarray


def plan_rows(restored: Restored, new_rows: list[int]) -> RowPlan:
    """Retain = rows the model learns from − this request − everything forgotten before."""
    partition = restored.partition()
    learn_set = set(partition.learn.tolist())
    forget = np.array(sorted(r for r in new_rows if r in learn_set), dtype=np.int64)
    return RowPlan(
        forget=forget,
        retain=np.setdiff1d(partition.learn, forget),
        val=np.setdiff1d(partition.val, np.array(new_rows, dtype=np.int64)),
    )


def build_context(
    restored: Restored,
    rows: RowPlan,
    ledger_info: dict[str, Any],
    *,
    model: torch.nn.Module | None = None,
    batch_size: int = 512,
    progress: Progress = no_progress,
) -> UnlearnContext:
    """A method's view of the request; the retain gradient comes from the ledger when usable."""
    ids = restored.data.train.ids
    targets, source = lookup_targets(
        restored.meta.references, restored.checkpoint.reference_tensors, [ids[r] for r in rows.forget]
    )
    return UnlearnContext(
        chain=chain_since_training(restored.meta.lineage),
        forget_targets=targets,
        targets_source=source,
        model=model if model is not None else restored.model,
        data=restored.data,
        config=restored.config,
        forget_rows=rows.forget,
        retain_rows=rows.retain,
        val_rows=rows.val,
        device=restored.device,
        batch_size=batch_size,
        progress=progress,
        retain_source=_ledger_source(restored, restored.partition().learn, ledger_info),
    )


def chain_since_training(lineage: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the unlearn events since the last training or retrain ran (oldest first): the chain a
    new request extends. A retrain (or a fallback to one), a training or an import starts a new
    chain; events that leave the weights as they are (a ledger refresh) are passed over."""
    retraining = {name.value for name in MethodName if get_method(name).retrains}
    chain: list[dict[str, Any]] = []
    for event in reversed(lineage):
        if event.get("event") == "ledger-refresh":
            continue
        if event.get("event") != "unlearn" or event.get("method") in retraining:
            break
        ran = event.get("ran")
        chain.append(ran if isinstance(ran, dict) else {})
    return chain[::-1]


def unlearn(
    request: UnlearnRequest, *, progress: Progress = no_progress, outputs: Outputs | None = None
) -> UnlearnResult:
    """Forget ``request.forget`` from ``request.checkpoint`` and write the result to ``request.out``.

    With ``outputs`` the checkpoint is only staged there (its output lock held) for the caller to
    publish together with its other outputs; without, it is published before this returns.
    """
    if outputs is None:
        with Outputs() as own:
            result = unlearn(request, progress=progress, outputs=own)
            if distributed.is_main():
                own.publish()
        return result
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    spec = get_method(request.method)
    options = spec.parse_options(request.options)
    out = Path(request.out) if request.out else default_output(request.checkpoint)
    if out.resolve() == Path(request.checkpoint).resolve():
        raise UnlearningError(f"{out}: the output would replace the input checkpoint; choose another --out")
    check_writable(out, overwrite=request.overwrite)
    if request.ledger_refresh not in ("later", "now"):
        raise UnlearningError(f"--ledger-refresh {request.ledger_refresh!r}: expected later or now")
    if request.fallback not in ("none", "retrain"):
        raise UnlearningError(f"--fallback {request.fallback!r}: expected none or retrain")

    if distributed.is_main():
        outputs.lock(out)
    progress("unlearn · loading model and data", 0, 5)
    try:
        restored = restore(
            request.checkpoint,
            config=request.config,
            trust_code=request.trust_code,
            allow_data_change=request.allow_data_change,
            device=request.device,
            progress=progress,
        )
    except DataChangedError as exc:
        raise _deleted_too_early(exc, request.forget) from None
    new_ids, counts, new_rows, test_ids = resolve_ids(restored, request.forget, request.allow_missing)
    rows = plan_rows(restored, new_rows)
    counts.validation_only = len(new_rows) - len(rows.forget)
    if len(new_ids) and len(rows.retain) == 0:
        raise IdsError(
            f"{request.forget.source}: the request would forget every training row; nothing would be "
            "left to learn from (train a new model instead)"
        )
    seconds["load"] = time.perf_counter() - started

    outcomes = id_outcomes(restored, request.forget)
    if not new_ids and not test_ids:
        result = _unchanged(request, restored, out, counts, seconds, started, rows.retain, outputs)
        result.outcomes = outcomes
        return result

    model_before = {k: p.detach().clone() for k, p in trainable(restored.model).items()}
    progress("unlearn · measuring the model before", 1, 5)
    evaluate_started = time.perf_counter()
    before = _figures(restored, restored.model, rows.forget, request.batch_size)
    seconds["evaluate"] = time.perf_counter() - evaluate_started
    ledger_info: dict[str, Any] = {}
    context = build_context(restored, rows, ledger_info, batch_size=request.batch_size, progress=progress)
    progress(f"unlearn · running {spec.name.value} on {len(rows.forget)} row(s)", 2, 5)
    update_started = time.perf_counter()
    if len(rows.forget) and ledger_info["usable"] and request.ledger_refresh == "later":
        # Snapshot at θ*, before the method moves anything: the child's ledger is the retain sum
        # *at these parameters* (ledger − forget rows: one pass over the forget rows).
        context.retain_grad_sum()
    output = spec.run(context, options) if len(rows.forget) else None
    check = (output.details.get("check") or {}).get("code", "none") if output is not None else "none"
    fell_back = check not in ("ok", "none") and request.fallback == "retrain" and not spec.retrains
    if fell_back:
        progress(f"unlearn · self-check {check}: retraining instead (--fallback retrain)", 2, 5)
        first = {"method": spec.name.value, "options": to_dict(options), "ran": output.details}
        seconds["fallback_first_attempt"] = time.perf_counter() - update_started
        first_gradients = context.seconds_gradients
        spec = get_method(MethodName.RETRAIN)
        options = spec.parse_options({})
        context = build_context(restored, rows, {}, batch_size=request.batch_size, progress=progress)
        context.seconds_gradients = first_gradients
        output = spec.run(context, options)
        output.details["fallback_from"] = first
    model = output.model if output is not None else restored.model
    seconds["gradients"] = context.seconds_gradients
    seconds["update"] = time.perf_counter() - update_started - context.seconds_gradients
    if not all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()):
        raise UnlearningError(
            f"{request.checkpoint}: method {spec.name.value} produced NaN or infinite parameters; "
            "nothing written (try a smaller step_size)"
        )
    progress("unlearn · measuring the model after", 3, 5)
    evaluate_started = time.perf_counter()
    after = _figures(restored, model, rows.forget, request.batch_size)
    seconds["evaluate"] += time.perf_counter() - evaluate_started
    moved = any(not torch.equal(model_before[k], p.detach()) for k, p in trainable(model).items())
    warnings = _utility_warnings(before, after, request.max_test_drop)
    if check not in ("ok", "none") and not fell_back:
        message = (output.details.get("check") or {}).get("message", "")
        text = f"self-check {check}: {message}; rerun with --fallback retrain to retrain instead"
        warnings.append({"code": "self_check_failed", "message": text})
    if not restored.meta.forgotten.private:
        warnings.append({"code": "ids_enumerable", "message": ENUMERABLE_WARNING})

    progress("unlearn · writing", 4, 5)
    write_started = time.perf_counter()
    ran = output.details if output is not None else {}
    meta, ledger_tensors = _next_meta(
        restored,
        request,
        spec.name.value,
        options,
        ran,
        new_ids,
        test_ids,
        model,
        model_before,
        context,
        ledger_info,
        progress,
    )
    sha = ""
    if distributed.is_main():
        sha = save_checkpoint(
            out,
            model.state_dict(),
            meta,
            ledger_tensors=ledger_tensors,
            reference_tensors=restored.checkpoint.reference_tensors,  # the table is never edited
            overwrite=request.overwrite,
            outputs=outputs,
        )
    distributed.barrier()
    seconds["write"] = time.perf_counter() - write_started
    seconds["total"] = time.perf_counter() - started
    progress("unlearn · done", 5, 5)
    if not len(rows.forget):
        message = (
            f"recorded {len(new_ids) + len(test_ids)} id(s) of rows the model never learned from (validation or "
            "test rows) as forgotten; no update needed"
        )
    elif moved:
        message = f"forgot {len(new_ids)} id(s) with {spec.name.value}" + (
            f" (the first method's self-check failed: {check}; --fallback retrain)" if fell_back else ""
        )
    else:
        why = (output.details.get("stopped") if output is not None else None) or "the method took no step"
        message = (
            f"recorded {len(new_ids)} id(s) as forgotten; the weights did not move ({why}): the rows already "
            "look like held-out rows to this model"
        )
    return UnlearnResult(
        checkpoint=str(request.checkpoint),
        parent_sha256=restored.checkpoint.sha256,
        out=str(out),
        out_sha256=sha,
        changed=True,  # a new event (and ids) recorded; weights_moved says whether the weights moved
        method=spec.name.value,
        options=to_dict(options),
        ids=counts,
        retain_rows=int(len(rows.retain)),
        before=before,
        after=after,
        seconds=seconds,
        ledger=ledger_info,
        details=output.details if output is not None else {},
        message=message,
        weights_moved=moved,
        warnings=warnings,
        ids_digest=meta.lineage[-1]["ids_digest"],
        data_sha256=restored.data.fingerprint["sha256"],
        forgotten_ids=new_ids + test_ids,
        outcomes=outcomes,
        check=check,
        fell_back=fell_back,
    )


def _deleted_too_early(error: DataChangedError, request: ForgetRequest) -> DataChangedError:
    """When requested ids are missing from changed data, the likely story is a row deleted from the
    data store before it was unlearned: say so, and what to do."""
    data = error.data
    if data is None:
        return error
    index, test_index = data.train.row_index(), data.test.row_index()  # type: ignore[attr-defined]
    forgotten = error.forgotten
    gone = [
        i
        for i in request.ids
        if i not in index and i not in test_index and not (forgotten is not None and forgotten.contains(i))  # type: ignore[attr-defined]
    ]
    if not gone:
        return error
    shown = ", ".join(repr(short_id(i)) for i in gone[:UNKNOWN_EXAMPLES])
    return DataChangedError(
        f"{error}; {len(gone)} requested id(s) are not in the data now ({shown}): a row deleted from the data "
        "before it was unlearned cannot be forgotten or verified — restore it, run iau unlearn, and only then "
        "delete the forgotten rows (README: Nightly retention job)"
    )


def _utility_warnings(before: Figures, after: Figures, max_drop: float) -> list[dict[str, str]]:
    """A deletion that costs more held-out accuracy than ``max_drop`` says so (a retention job can
    then fall back to ``--method retrain``)."""
    drop = before.test_accuracy - after.test_accuracy
    if drop <= max_drop:
        return []
    message = (
        f"held-out accuracy fell {100 * drop:.1f} points ({100 * before.test_accuracy:.1f}% → "
        f"{100 * after.test_accuracy:.1f}%), more than the {100 * max_drop:.1f} allowed by --max-test-drop; "
        f"consider --method retrain for this request"
    )
    return [{"code": "heldout_accuracy_drop", "message": message}]


def _unchanged(
    request: UnlearnRequest,
    restored: Restored,
    out: Path,
    counts: IdCounts,
    seconds: dict[str, float],
    started: float,
    retain_rows: np.ndarray,
    outputs: Outputs,
) -> UnlearnResult:
    """Nothing new to forget: the output is a byte-identical copy, so scripts can chain paths."""
    write_started = time.perf_counter()
    if distributed.is_main():
        outputs.stage_copy(restored.checkpoint.path, out, overwrite=request.overwrite)
    seconds["write"] = time.perf_counter() - write_started
    seconds["total"] = time.perf_counter() - started
    return UnlearnResult(
        checkpoint=str(request.checkpoint),
        parent_sha256=restored.checkpoint.sha256,
        out=str(out),
        out_sha256=restored.checkpoint.sha256,
        changed=False,
        method=request.method,
        options={},
        ids=counts,
        retain_rows=int(len(retain_rows)),
        before=None,
        after=None,
        seconds=seconds,
        ledger={},
        details={},
        ids_digest=restored.meta.forgotten.list_digest([]),
        data_sha256=restored.data.fingerprint["sha256"],
        message=(
            "nothing to forget: the request is empty"
            if counts.requested == 0
            else f"nothing to forget: {counts.already_forgotten} id(s) already forgotten"
        )
        + (f", {counts.unknown} not rows of the data (skipped: --allow-missing)" if counts.unknown else "")
        + "; the output is an unchanged copy"
        + (
            " (it keeps the old data fingerprint: iau ledger refresh --allow-data-change --out NEW records the "
            "data as it is now)"
            if request.allow_data_change
            else ""
        ),
    )


KEYED_NO_LEDGER = (
    "none: under an operator key a ledger over the rows left would name the forgotten ones by differencing "
    "(docs/RELIABILITY.md: threat model); one-step rules recompute the retain gradient"
)


def _ledger_source(restored: Restored, learn_rows: np.ndarray, info: dict[str, Any]) -> Any:
    """The retain gradient from the ledger when it is fresh (computed at these very parameters);
    otherwise one pass over the retain rows. A stale ledger is never used: how far the parameters
    moved says nothing about how wrong the sum is (at θ* the retain sum is a small difference of
    large terms — a relative drift of 1e-2 left it 95% off, measured), so no honest limit exists."""
    state = ledger_state(restored.checkpoint, restored.model, len(learn_rows))
    usable = state.status == "fresh"
    info.update(status=state.status, detail=state.reason, usable=usable)

    def source(ctx: UnlearnContext) -> tuple[GradDict, str]:
        if not usable:
            from iau_cli.core.gradients import loss_grad_sum

            ctx.progress("retain gradient", 0, 1)
            retain, _ = loss_grad_sum(ctx.model, ctx.data.train, ctx.retain_rows, ctx.device, batch_size=ctx.batch_size)
            ctx.progress("retain gradient", 1, 1)
            info["path"] = "recompute"
            return retain, f"recomputed over {len(ctx.retain_rows)} retain rows ({state.reason})"
        forget = ctx.forget_grad_sum()
        retain = {k: restored.checkpoint.ledger_tensors[k].to(ctx.device) - forget[k] for k in forget}
        info["path"] = "ledger"
        return retain, f"ledger − forget rows ({state.reason})"

    return source


def _next_meta(
    restored: Restored,
    request: UnlearnRequest,
    method: str,
    options: Any,
    ran: dict[str, Any],
    new_ids: list[str],
    test_ids: list[str],
    model: torch.nn.Module,
    model_before: GradDict,
    context: UnlearnContext,
    ledger_info: dict[str, Any],
    progress: Progress,
) -> tuple[CheckpointMeta, GradDict | None]:
    """The child checkpoint's metadata (lineage event, forgotten hashes) and ledger."""
    meta = restored.meta
    index = restored.data.train.row_index()
    forgotten = dataclasses.replace(
        meta.forgotten,
        hashes=set(meta.forgotten.hashes),
        keyed={kid: set(group) for kid, group in meta.forgotten.keyed.items()},
    )
    ids_digest = forgotten.list_digest(new_ids + test_ids)  # every id this event records
    event = {
        "event": "unlearn",
        "time": utc_now(),
        "iau_version": __version__,
        "method": method,
        "options": to_dict(options),
        "ran": clean_json(ran),  # what the method resolved and did: learning rate, steps taken, why it stopped
        "ids": len(new_ids),
        "ids_digest": ids_digest,
        # What deleting these rows from the data store does to its row digest (iau_cli.io.rowprint);
        # masked under the operator key when there is one.
        "rows_removed": masked(forgotten, restored.data.train.row_digest([index[i] for i in new_ids]), ids_digest),
        "parent_sha256": restored.checkpoint.sha256,
        "parent_params_sha256": restored.checkpoint.params_digest(),
        "params_sha256": params_sha256(model.state_dict()),
    }
    if test_ids:
        test_index = restored.data.test.row_index()
        event["test_ids"] = len(test_ids)
        test_digest = restored.data.test.row_digest([test_index[i] for i in test_ids])
        event["test_rows_removed"] = masked(forgotten, test_digest, ids_digest + "/test")
    forgotten.add(new_ids + test_ids)
    event["forgotten_sha256"] = forgotten.digest()  # binds the record to the lineage (checked at load)
    new_meta = dataclasses.replace(meta, lineage=[*meta.lineage, event], forgotten=forgotten, version=__version__)
    learn_rows = context.retain_rows  # the rows the child learns from
    if forgotten.holds_keyed_ids:
        # The sum over the rows left, beside the model and the data, names the rows that are not in
        # it: total gradient − ledger = Σ of the forgotten rows' gradients, a subset-sum anyone can
        # solve. Under an operator key the child keeps no ledger (the default rule needs none).
        ledger_info["next"] = KEYED_NO_LEDGER
        return dataclasses.replace(new_meta, ledger=None), None
    if request.ledger_refresh == "now" or get_method(method).retrains:
        ledger_meta, tensors = compute_ledger(model, restored.data, learn_rows, restored.device, progress=progress)
        ledger_info["next"] = "fresh (recomputed at the new parameters)"
        return dataclasses.replace(new_meta, ledger=ledger_meta), tensors
    if context.retain_sum_computed is None:
        ledger_info["next"] = "none (run iau ledger refresh to make the next request cheap)"
        return dataclasses.replace(new_meta, ledger=None), None
    # The retain sum at θ* (from a fresh ledger or a full pass: exact) is the ledger of the child's
    # rows at the parent's parameters: fresh for the child when the weights did not move, stale
    # (and then not used, see _ledger_source) when they did.
    step = relative_drift(model_before, {k: p.detach() for k, p in trainable(model).items()})
    ledger_meta, tensors = carried_ledger(
        context.retain_sum_computed, len(learn_rows), restored.checkpoint.params_digest(), step, exact=True
    )
    if step == 0:
        ledger_info["next"] = "fresh (the weights did not move, so the retain sum at θ* is the child's)"
    else:
        ledger_info["next"] = (
            f"stale (carried at the parent's parameters; they moved {step:.1e} relative): the next request "
            "recomputes the retain gradient unless the ledger is refreshed"
        )
    return dataclasses.replace(new_meta, ledger=ledger_meta), tensors
