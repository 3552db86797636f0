"""``unlearn``: forget the listed sample ids — the new checkpoint, with its lineage event.

The recipe (:func:`unlearn`) reads top to bottom: prepare (restore, resolve ids, plan rows) →
snapshot at θ* → run the method → build the child (pure) → the result. It writes nothing: the
child is returned, and the caller stages it (:func:`write`; the CLI, beside its other outputs,
after its one output guard). The input checkpoint is never modified; nothing is made unless
every check passes (ids resolved — unknown ids are an error unless allowed —, the update finite).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iau_cli import __version__
from iau_cli.config import RunConfig, to_dict
from iau_cli.core import distributed
from iau_cli.core.gradients import GradDict, loss_grad_sum, trainable
from iau_cli.core.ledger import carried_ledger, compute_ledger, ledger_state, relative_drift
from iau_cli.core.methods import MethodName, MethodSpec, get_method, retrains
from iau_cli.core.methods.base import MethodOutput, UnlearnContext
from iau_cli.core.metrics import predict
from iau_cli.core.models import nonfinite
from iau_cli.errors import DataChangedError, IdsError, UnlearningError
from iau_cli.io.checkpoint import NewCheckpoint, params_sha256, utc_now
from iau_cli.io.files import Outputs, check_writable, clean_json, default_output
from iau_cli.io.forgotten import ENUMERABLE_WARNING
from iau_cli.io.ids import ForgetRequest, short_id
from iau_cli.io.references import lookup_targets
from iau_cli.io.rowprint import masked
from iau_cli.progress import Progress, Stopwatch, no_progress
from iau_cli.recipes.train import Restored, restore_for, write_checkpoint

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
    child: NewCheckpoint | None = field(default=None, repr=False)  # what unlearn() made; write() writes it

    def to_dict(self) -> dict[str, Any]:
        # The clear ids stay out: the JSON may travel further than the ids file they were asked for.
        hidden = ("forgotten_ids", "outcomes", "child")
        plain = lambda value: dataclasses.asdict(value) if dataclasses.is_dataclass(value) else copy.deepcopy(value)  # noqa: E731
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in hidden}


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
    outcomes = id_outcomes(restored, request)
    unknown = [i for i, outcome in outcomes if outcome == "not_found"]
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
    new_ids = [i for i, outcome in outcomes if outcome == "erased"]
    test_ids = [i for i, outcome in outcomes if outcome == "test_row"]
    places = restored.data.locate(request.ids)
    counts = IdCounts(
        requested=len(request.ids),
        duplicates=request.duplicates,
        found=sum(place == "train" for place in places.values()),
        unknown=len(unknown),
        unknown_examples=[short_id(i) for i in unknown[:UNKNOWN_EXAMPLES]],
        already_forgotten=sum(outcome == "already_forgotten" for _, outcome in outcomes),
        validation_only=0,
        forgotten_now=len(new_ids),
        test_rows=len(test_ids),
    )
    index = restored.data.train.row_index()
    return new_ids, counts, [index[i] for i in new_ids], test_ids


OUTCOMES = ("erased", "test_row", "already_forgotten", "not_found")


def id_outcomes(restored: Restored, request: ForgetRequest) -> list[tuple[str, str]]:
    """Per requested id (once each, in request order), what this run does with it: ``erased`` (a
    training row, forgotten now), ``test_row`` (a held-out row, never learned, recorded now),
    ``already_forgotten`` (recorded by an earlier request), ``not_found`` (no row of the data)."""
    places, forgotten = restored.data.locate(request.ids), restored.meta.forgotten
    named = {"train": "erased", "test": "test_row", "neither": "not_found"}
    return [(i, "already_forgotten" if forgotten.contains(i) else named[places[i]]) for i in request.ids]


def measure(restored: Restored, model: torch.nn.Module, forget_rows: np.ndarray, batch_size: int) -> Figures:
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


@dataclass(frozen=True)
class LedgerInfo:
    """The parent's gradient ledger as this request found it: usable only when fresh (computed at
    these very parameters over these rows). A stale ledger is never used: how far the parameters
    moved says nothing about how wrong the sum is (at θ* the retain sum is a small difference of
    large terms — a relative drift of 1e-2 left it 95% off, measured), so no honest limit exists."""

    status: str
    detail: str
    usable: bool


def ledger_info(restored: Restored) -> LedgerInfo:
    state = ledger_state(restored.checkpoint, restored.model, len(restored.partition().learn))
    return LedgerInfo(state.status, state.reason, state.status == "fresh")


def build_context(
    restored: Restored,
    rows: RowPlan,
    *,
    ledger: LedgerInfo | None = None,
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
        retain_source=_ledger_source(restored, ledger or ledger_info(restored)),
    )


def chain_since_training(lineage: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the unlearn events since the last training or retrain ran (oldest first): the chain a
    new request extends. A retrain (or a fallback to one), a training or an import starts a new
    chain; events that leave the weights as they are (a ledger refresh) are passed over."""
    chain: list[dict[str, Any]] = []
    for event in reversed(lineage):
        if event.get("event") == "ledger-refresh":
            continue
        if event.get("event") != "unlearn" or retrains(event.get("method")):
            break
        ran = event.get("ran")
        chain.append(ran if isinstance(ran, dict) else {})
    return chain[::-1]


def _ledger_source(restored: Restored, ledger: LedgerInfo) -> Any:
    """The retain gradient: the ledger − the forget rows when the ledger is usable, else one pass
    over the retain rows."""

    def source(ctx: UnlearnContext) -> tuple[GradDict, str]:
        if not ledger.usable:
            ctx.progress("retain gradient", 0, 1)
            retain, _ = loss_grad_sum(ctx.model, ctx.data.train, ctx.retain_rows, ctx.device, batch_size=ctx.batch_size)
            ctx.progress("retain gradient", 1, 1)
            return retain, f"recomputed over {len(ctx.retain_rows)} retain rows ({ledger.detail})"
        forget = ctx.forget_grad_sum()
        retain = {k: restored.checkpoint.ledger_tensors[k].to(ctx.device) - forget[k] for k in forget}
        return retain, f"ledger − forget rows ({ledger.detail})"

    return source


# The recipe: prepare → snapshot at θ* → run the method → build the child → the result. The child
# is made, not written: the caller stages it (the CLI, with the run's other outputs; unlearn() below).


def make_unlearned(request: UnlearnRequest, *, progress: Progress = no_progress) -> UnlearnResult:
    """Forget ``request.forget`` from ``request.checkpoint``: the result, with the child checkpoint
    in ``result.child`` — nothing written (the CLI stages it with its other outputs; :func:`unlearn`
    writes it)."""
    clock = Stopwatch()
    with clock("load"):
        job = prepare(request, progress)
    if not job.new_ids and not job.test_ids:
        return unchanged(job, clock)
    with clock("evaluate"):
        snapshot = snapshot_at_start(job, progress)
    clock.carve("evaluate", snapshot.context.seconds_gradients, into="gradients")  # the child's ledger sum
    with clock("update"):
        ran = run_method(job, snapshot, progress)
    clock.carve("update", _gradient_seconds(snapshot, ran) - clock.seconds.get("gradients", 0.0), into="gradients")
    if nonfinite(ran.model.state_dict()):
        raise UnlearningError(
            f"{request.checkpoint}: method {ran.spec.name} produced NaN or infinite parameters; "
            "nothing written (try a smaller step_size)"
        )
    with clock("evaluate"):
        progress("unlearn · measuring the model after", 3, 5)
        after = measure(job.restored, ran.model, job.rows.forget, request.batch_size)
    with clock("write"):
        progress("unlearn · building the new checkpoint", 4, 5)
        child, ledger_next = build_child(job, snapshot, ran, progress)
    progress("unlearn · done", 5, 5)
    return result_of(job, snapshot, ran, after, child, ledger_next, clock)


def _gradient_seconds(snapshot: Snapshot, ran: Ran) -> float:
    """Seconds of gradient passes so far: the snapshot's context's, and a fallback's own."""
    contexts = {id(snapshot.context): snapshot.context, id(ran.context): ran.context}
    return sum(context.seconds_gradients for context in contexts.values())


@dataclass
class Job:
    """A request ready to run: the method, the model at θ* with its data, and how the ids resolved."""

    request: UnlearnRequest
    out: Path
    spec: MethodSpec
    options: Any
    restored: Restored
    new_ids: list[str]  # training ids forgotten now
    test_ids: list[str]  # held-out ids recorded now (never learned)
    counts: IdCounts
    rows: RowPlan
    outcomes: list[tuple[str, str]]


def prepare(request: UnlearnRequest, progress: Progress = no_progress) -> Job:
    """Options parsed, the checkpoint restored, the ids resolved to rows; bad input fails here."""
    spec = get_method(request.method)
    options = spec.parse_options(request.options)
    if request.ledger_refresh not in ("later", "now"):
        raise UnlearningError(f"--ledger-refresh {request.ledger_refresh!r}: expected later or now")
    if request.fallback not in ("none", "retrain"):
        raise UnlearningError(f"--fallback {request.fallback!r}: expected none or retrain")
    progress("unlearn · loading model and data", 0, 5)
    try:
        restored = restore_for(request, progress)
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
    out = Path(request.out) if request.out else default_output(request.checkpoint)
    outcomes = id_outcomes(restored, request.forget)
    return Job(request, out, spec, options, restored, new_ids, test_ids, counts, rows, outcomes)


@dataclass
class Snapshot:
    """The model at θ*, before the method moves anything: its parameters and figures, the method's
    view of the request (which holds the gradient sums once computed) and the parent's ledger."""

    params: GradDict
    before: Figures
    context: UnlearnContext
    ledger: LedgerInfo


def snapshot_at_start(job: Job, progress: Progress = no_progress) -> Snapshot:
    restored, request = job.restored, job.request
    progress("unlearn · measuring the model before", 1, 5)
    params = {k: p.detach().clone() for k, p in trainable(restored.model).items()}
    before = measure(restored, restored.model, job.rows.forget, request.batch_size)
    ledger = ledger_info(restored)
    context = build_context(restored, job.rows, ledger=ledger, batch_size=request.batch_size, progress=progress)
    if len(job.rows.forget) and ledger.usable and request.ledger_refresh == "later":
        # The child's ledger is the retain sum *at θ** (ledger − forget rows: one pass over the
        # forget rows), taken before the method moves anything.
        context.retain_grad_sum()
    return Snapshot(params, before, context, ledger)


@dataclass
class Ran:
    """What ran: the method (a retrain when the first one's self-check failed and ``--fallback
    retrain`` asked for it), its output, the self-check's code, and the model it left."""

    spec: MethodSpec
    options: Any
    output: MethodOutput | None  # None: no learned row to forget (validation or test rows only)
    context: UnlearnContext  # of the method that produced the model (the fallback's own)
    check: str = "none"
    fell_back: bool = False
    first_attempt_seconds: float | None = None  # a fallback's: what the method that failed its check took

    @property
    def model(self) -> torch.nn.Module:
        return self.output.model if self.output is not None else self.context.model

    @property
    def details(self) -> dict[str, Any]:
        return self.output.details if self.output is not None else {}


def run_method(job: Job, snapshot: Snapshot, progress: Progress = no_progress) -> Ran:
    if not len(job.rows.forget):
        return Ran(job.spec, job.options, None, snapshot.context)
    progress(f"unlearn · running {job.spec.name} on {len(job.rows.forget)} row(s)", 2, 5)
    started = time.perf_counter()
    output = job.spec.run(snapshot.context, job.options)
    first_seconds = time.perf_counter() - started
    check = (output.details.get("check") or {}).get("code", "none")
    if check in ("ok", "none") or job.request.fallback != "retrain" or job.spec.retrains:
        return Ran(job.spec, job.options, output, snapshot.context, check)
    progress(f"unlearn · self-check {check}: retraining instead (--fallback retrain)", 2, 5)
    first = {"method": job.spec.name, "options": to_dict(job.options), "ran": output.details}
    spec = get_method(MethodName.RETRAIN)
    options = spec.parse_options({})
    context = build_context(job.restored, job.rows, ledger=snapshot.ledger, batch_size=job.request.batch_size)
    output = spec.run(context, options)
    output.details["fallback_from"] = first
    return Ran(spec, options, output, context, check, fell_back=True, first_attempt_seconds=first_seconds)


def build_child(job: Job, snapshot: Snapshot, ran: Ran, progress: Progress = no_progress) -> tuple[NewCheckpoint, str]:
    """The child checkpoint (lineage event, forgotten hashes, ledger) and what its ledger is."""
    restored, meta = job.restored, job.restored.meta
    forgotten = dataclasses.replace(
        meta.forgotten,
        hashes=set(meta.forgotten.hashes),
        keyed={kid: set(group) for kid, group in meta.forgotten.keyed.items()},
    )
    event = _lineage_event(job, ran, forgotten)
    forgotten.add(job.new_ids + job.test_ids)
    event["forgotten_sha256"] = forgotten.digest()  # binds the record to the lineage (checked at load)
    child_meta = dataclasses.replace(meta, lineage=[*meta.lineage, event], forgotten=forgotten, version=__version__)
    ledger_meta, tensors, next_ledger = _child_ledger(job, snapshot, ran, forgotten.holds_keyed_ids, progress)
    child = NewCheckpoint(
        ran.model.state_dict(),
        dataclasses.replace(child_meta, ledger=ledger_meta),
        ledger_tensors=tensors,
        reference_tensors=restored.checkpoint.reference_tensors,  # the table is never edited
    )
    return child, next_ledger


def _lineage_event(job: Job, ran: Ran, forgotten: Any) -> dict[str, Any]:
    restored, new_ids, test_ids = job.restored, job.new_ids, job.test_ids
    ids_digest = forgotten.list_digest(new_ids + test_ids)  # every id this event records
    index = restored.data.train.row_index()
    event = {
        "event": "unlearn",
        "time": utc_now(),
        "iau_version": __version__,
        "method": ran.spec.name,
        "options": to_dict(ran.options),
        "ran": clean_json(ran.details),  # what the method resolved and did: learning rate, steps taken, why it stopped
        "ids": len(new_ids),
        "ids_digest": ids_digest,
        # What deleting these rows from the data store does to its row digest (iau_cli.io.rowprint);
        # masked under the operator key when there is one.
        "rows_removed": masked(forgotten, restored.data.train.row_digest([index[i] for i in new_ids]), ids_digest),
        "parent_sha256": restored.checkpoint.sha256,
        "parent_params_sha256": restored.checkpoint.params_digest(),
        "params_sha256": params_sha256(ran.model.state_dict()),
    }
    if test_ids:
        test_index = restored.data.test.row_index()
        event["test_ids"] = len(test_ids)
        test_digest = restored.data.test.row_digest([test_index[i] for i in test_ids])
        event["test_rows_removed"] = masked(forgotten, test_digest, ids_digest + "/test")
    return event


KEYED_NO_LEDGER = (
    "none: under an operator key a ledger over the rows left would name the forgotten ones by differencing "
    "(docs/RELIABILITY.md: threat model); one-step rules recompute the retain gradient"
)


def _child_ledger(
    job: Job, snapshot: Snapshot, ran: Ran, keyed: bool, progress: Progress
) -> tuple[dict[str, Any] | None, GradDict | None, str]:
    """(ledger metadata, tensors, what it is) for the child, which learns from the retain rows."""
    learn_rows = job.rows.retain
    if keyed:
        # The sum over the rows left, beside the model and the data, names the rows that are not in
        # it: total gradient − ledger = Σ of the forgotten rows' gradients, a subset-sum anyone can
        # solve. Under an operator key the child keeps no ledger (the default rule needs none).
        return None, None, KEYED_NO_LEDGER
    if job.request.ledger_refresh == "now" or ran.spec.retrains:
        restored = job.restored
        ledger_meta, tensors = compute_ledger(ran.model, restored.data, learn_rows, restored.device, progress=progress)
        return ledger_meta, tensors, "fresh (recomputed at the new parameters)"
    retain_sum = snapshot.context.retain_sum_computed
    if retain_sum is None:
        return None, None, "none (run iau ledger refresh to make the next request cheap)"
    # The retain sum at θ* (from a fresh ledger or a full pass: exact) is the ledger of the child's
    # rows at the parent's parameters: fresh for the child when the weights did not move, stale
    # (and then not used, see LedgerInfo) when they did.
    step = relative_drift(snapshot.params, {k: p.detach() for k, p in trainable(ran.model).items()})
    parent = job.restored.checkpoint.params_digest()
    ledger_meta, tensors = carried_ledger(retain_sum, len(learn_rows), parent, step)
    if step == 0:
        return ledger_meta, tensors, "fresh (the weights did not move, so the retain sum at θ* is the child's)"
    return (
        ledger_meta,
        tensors,
        f"stale (carried at the parent's parameters; they moved {step:.1e} relative): the next request "
        "recomputes the retain gradient unless the ledger is refreshed",
    )


def result_of(
    job: Job, snapshot: Snapshot, ran: Ran, after: Figures, child: NewCheckpoint, ledger_next: str, clock: Stopwatch
) -> UnlearnResult:
    request, restored = job.request, job.restored
    moved = any(not torch.equal(snapshot.params[k], p.detach()) for k, p in trainable(ran.model).items())
    warnings = _utility_warnings(snapshot.before, after, request.max_test_drop)
    if ran.check not in ("ok", "none") and not ran.fell_back:
        message = (ran.details.get("check") or {}).get("message", "")
        text = f"self-check {ran.check}: {message}; rerun with --fallback retrain to retrain instead"
        warnings.append({"code": "self_check_failed", "message": text})
    if not restored.meta.forgotten.private:
        warnings.append({"code": "ids_enumerable", "message": ENUMERABLE_WARNING})
    ledger: dict[str, Any] = {"status": snapshot.ledger.status, "detail": snapshot.ledger.detail}
    ledger["usable"] = snapshot.ledger.usable
    if snapshot.context.retain_sum_computed is not None:
        ledger["path"] = "ledger" if snapshot.ledger.usable else "recompute"
    ledger["next"] = ledger_next
    assert child.meta is not None
    return UnlearnResult(
        checkpoint=str(request.checkpoint),
        parent_sha256=restored.checkpoint.sha256,
        out=str(job.out),
        out_sha256="",  # known once written (write(), or the CLI's staging)
        changed=True,  # a new event (and ids) recorded; weights_moved says whether the weights moved
        method=ran.spec.name,
        options=to_dict(ran.options),
        ids=job.counts,
        retain_rows=int(len(job.rows.retain)),
        before=snapshot.before,
        after=after,
        seconds=clock.total()
        | ({} if ran.first_attempt_seconds is None else {"fallback_first_attempt": ran.first_attempt_seconds}),
        ledger=ledger,
        details=ran.details,
        message=_message(job, ran, moved),
        weights_moved=moved,
        warnings=warnings,
        ids_digest=child.meta.lineage[-1]["ids_digest"],
        data_sha256=restored.data.fingerprint["sha256"],
        forgotten_ids=job.new_ids + job.test_ids,
        outcomes=job.outcomes,
        check=ran.check,
        fell_back=ran.fell_back,
        child=child,
    )


def _message(job: Job, ran: Ran, moved: bool) -> str:
    new = len(job.new_ids)
    if not len(job.rows.forget):
        return (
            f"recorded {new + len(job.test_ids)} id(s) of rows the model never learned from (validation or "
            "test rows) as forgotten; no update needed"
        )
    if moved:
        return f"forgot {new} id(s) with {ran.spec.name}" + (
            f" (the first method's self-check failed: {ran.check}; --fallback retrain)" if ran.fell_back else ""
        )
    why = ran.details.get("stopped") or "the method took no step"
    return (
        f"recorded {new} id(s) as forgotten; the weights did not move ({why}): the rows already look like "
        "held-out rows to this model"
    )


def unchanged(job: Job, clock: Stopwatch) -> UnlearnResult:
    """Nothing new to forget: the child is a byte-identical copy, so scripts can chain paths."""
    request, restored, counts = job.request, job.restored, job.counts
    return UnlearnResult(
        checkpoint=str(request.checkpoint),
        parent_sha256=restored.checkpoint.sha256,
        out=str(job.out),
        out_sha256="",
        changed=False,
        method=request.method,
        options={},
        ids=counts,
        retain_rows=int(len(job.rows.retain)),
        before=None,
        after=None,
        seconds=clock.total(),
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
        outcomes=job.outcomes,
        child=NewCheckpoint(None, None, copy_of=Path(restored.checkpoint.path)),
    )


def write(result: UnlearnResult, outputs: Outputs | None = None, *, overwrite: bool = False) -> UnlearnResult:
    """Stage ``result.child`` at ``result.out`` in ``outputs`` (the caller publishes), or write it at
    once without; fills ``out_sha256`` and the write time."""
    assert result.child is not None, "the result of unlearn() carries its child"
    started = time.perf_counter()
    result.out_sha256 = write_checkpoint(result.child, result.out, outputs, overwrite=overwrite)
    if not result.changed:
        result.out_sha256 = result.parent_sha256  # a byte-identical copy (on every rank)
    took = time.perf_counter() - started
    result.seconds["write"] = result.seconds.get("write", 0.0) + took
    result.seconds["total"] += took
    return result


def unlearn(request: UnlearnRequest, *, progress: Progress = no_progress) -> UnlearnResult:
    """:func:`make_unlearned`, and the child written to ``request.out`` (default: beside the input):
    the library's own output owner. The output is refused before any work if it would replace the
    input or exists (without ``overwrite``), and its lock is held for the whole run."""
    out = Path(request.out) if request.out else default_output(request.checkpoint)
    if out.resolve() == Path(request.checkpoint).resolve():
        raise UnlearningError(f"{out}: the output would replace the input checkpoint; choose another --out")
    check_writable(out, overwrite=request.overwrite)
    with Outputs() as own:
        if distributed.is_main():
            own.lock(out)
        result = write(make_unlearned(request, progress=progress), own, overwrite=request.overwrite)
        if distributed.is_main():
            own.publish()
    return result


def _deleted_too_early(error: DataChangedError, request: ForgetRequest) -> DataChangedError:
    """When requested ids are missing from changed data, the likely story is a row deleted from the
    data store before it was unlearned: say so, and what to do."""
    data = error.data
    if data is None:
        return error
    places, forgotten = data.locate(request.ids), error.forgotten  # type: ignore[attr-defined]
    gone = [i for i in request.ids if places[i] == "neither" and not (forgotten is not None and forgotten.contains(i))]  # type: ignore[attr-defined]
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
