"""Reports: how each command's result reads, for the terminal, Markdown, HTML and text.

The library returns results as plain data (dataclasses with ``to_dict``); this module — the one
place where they are rendered — turns each into a neutral :class:`iau_cli.cli.report.Report`, which
``iau_cli.cli.render`` draws with Rich and ``Report.to_markdown``/``to_html`` write to files.
Imported only once a command has run (it imports the library, and so torch).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from iau_cli.cli.report import Histogram, Report, Table, fmt, pct
from iau_cli.recipes.audit import AuditResult
from iau_cli.recipes.bench import LISTED, BenchResult
from iau_cli.recipes.bench.summary import cell_of
from iau_cli.recipes.demo import DemoResult, Story
from iau_cli.recipes.ledger import LedgerResult
from iau_cli.recipes.train import TrainResult
from iau_cli.recipes.unlearn import UnlearnResult

_READINGS = {
    "forget": "should match the retrained model's (lower than the original's when rows were memorized)",
    "retain": "utility on the rows kept: higher is better",
    "test": "utility on rows never trained on: higher is better",
    "auc": "can loss tell forget rows from unseen rows? 0.5 = cannot tell (the goal); 1 = always",
    "grad": "the same, from per-row gradient size; 0.5 = cannot tell",
    "challenge": "an attacker guessing member/non-member pairs; 50% = coin toss (the goal)",
    "indiscern": "1 = forget rows look exactly like unseen rows; 0 = fully told apart",
    "tpr": "share of forget rows an attacker flags at that false-alarm rate; lower is better",
    "lira": "likelihood-ratio attack with shadow models; 0.5 = cannot tell",
}


def request_label(cell: dict[str, Any], rows: dict[str, float] | None = None) -> str:
    """A bench cell's request: "5% (72 rows)", "2 rows", "the listed rows"; a chain's
    "3 requests of 5% (72 rows) each, in sequence"."""
    ratio, size, chain = cell["ratio"], cell.get("size"), cell.get("chain", 1)
    count = f"{rows['mean']:,.0f} rows" if rows and rows.get("mean") is not None else ""
    if size is not None:
        what = f"{size:,} row" + ("s" if size != 1 else "")
    elif ratio == LISTED:
        what = "the listed rows" + (f" ({count})" if count else "")
    else:
        what = f"{ratio:.0%}" if ratio >= 0.01 else f"{ratio:.2%}"
        what += f" ({count})" if count else ""
    return what if chain == 1 else f"{chain} requests of {what} each, in sequence"


def _cell_order(cell: tuple[str, float | None, int | None, int]) -> tuple[Any, ...]:
    workload, ratio, size, chain = cell
    return (workload, chain, ratio is None, ratio or 0.0, size or 0)


def spread(values: dict[str, float] | None, digits: int) -> str:
    if not values or values.get("mean") is None or (isinstance(values["mean"], float) and math.isnan(values["mean"])):
        return "—"
    mean, low, high = values["mean"], values["min"], values["max"]
    if digits == 0:
        return f"{mean:,.0f}" if round(low) == round(high) else f"{mean:,.0f} ({low:,.0f}–{high:,.0f})"
    if math.isclose(low, high):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def _takeaway(story: Story) -> str:
    """One plain sentence: what unlearning moved, next to what retraining gives."""
    by_name = {row.model.split(" ")[0]: row for row in story.rows}
    original, unlearned, retrained = by_name["original"], by_name["unlearned"], by_name["retrained"]
    return (
        f"forget accuracy {original.forget_accuracy:.1%} → {unlearned.forget_accuracy:.1%} "
        f"(retrained {retrained.forget_accuracy:.1%}); test accuracy {original.test_accuracy:.1%} → "
        f"{unlearned.test_accuracy:.1%} (retrained {retrained.test_accuracy:.1%})"
    )


def audit_report(result: AuditResult) -> Report:
    # Long on purpose: the report's tables in the order it reads (verdict, figures per model,
    # comparison, checks, lineage); each is a few rows of the same result.
    models = [("audited", result.model)]
    if result.original is not None:
        models.insert(0, ("original", result.original))
    if result.reference is not None:
        models.append(("retrained", result.reference))
    names = [n for n, _ in models]
    rows = []
    for split in ("forget", "retain", "test"):
        rows.append([f"{split} accuracy"] + [pct(m.accuracy[split]) for _, m in models] + [_READINGS[split]])
    for split in ("forget", "test"):
        rows.append([f"{split} loss"] + [fmt(m.loss[split]) for _, m in models] + [""])
    rows.append(["MIA loss AUC"] + [fmt(m.mia.loss_auc, 3) for _, m in models] + [_READINGS["auc"]])
    rows.append(["MIA gradient-norm AUC"] + [fmt(m.mia.grad_norm_auc, 3) for _, m in models] + [_READINGS["grad"]])
    rows.append(
        ["MIA challenge accuracy"] + [pct(m.mia.challenge_accuracy) for _, m in models] + [_READINGS["challenge"]]
    )
    rows.append(["indiscernibility"] + [fmt(m.mia.indiscernibility, 3) for _, m in models] + [_READINGS["indiscern"]])
    for key in result.model.mia.tpr_at_fpr:
        rows.append(
            [f"members caught at {pct(float(key))} false alarms"]
            + [pct(m.mia.tpr_at_fpr[key]) for _, m in models]
            + [_READINGS["tpr"]]
        )
    if result.model.mia.lira_auc is not None:
        rows.append(
            ["LiRA AUC"]
            + [fmt(m.mia.lira_auc, 3) if m.mia.lira_auc is not None else "—" for _, m in models]
            + [_READINGS["lira"]]
        )
    tables = [Table("Figures", ["", *names, "how to read it"], rows, align="l" + "r" * len(names) + "l")]
    if result.comparison:
        tables.append(
            Table("Against the retrained reference", ["", ""], [[k, fmt(v)] for k, v in result.comparison.items()])
        )
    check_rows = [
        [
            c.name,
            "FAIL" if c.status == "fail" else c.status,
            fmt(c.value),
            c.threshold,
            c.detail,
        ]
        for c in result.checks
    ]
    tables.append(Table("Checks", ["check", "result", "value", "threshold", "detail"], check_rows, align="llrrl"))
    if result.per_row:
        shares = result.per_row
        tables.append(
            Table(
                f"Per row, against {shares['shadow_models']} shadow models that never saw these rows",
                ["rows", "below every shadow", "above every shadow"],
                [
                    ["forget", pct(shares["forget_below"]), pct(shares["forget_above"])],
                    [
                        "held-out (what a retrained model shows)",
                        pct(shares["heldout_below"]),
                        pct(shares["heldout_above"]),
                    ],
                ],
                align="lrr",
            )
        )
    history = [
        [str(i), e.get("event", "?"), e.get("time", ""), str(e.get("ids", "")), e.get("method", "")]
        for i, e in enumerate(result.lineage)
    ]
    tables.append(Table("Lineage", ["#", "event", "time", "ids", "method"], history, align="rllrl"))
    failed = [c.name for c in result.checks if c.status == "fail"]
    unsure = [c.name for c in result.checks if c.status == "inconclusive"]
    if failed:
        status = f"FAIL: {', '.join(failed)}"
    elif unsure and not result.passed:
        status = f"INCONCLUSIVE: {', '.join(unsure)} (--accept-inconclusive to pass on the other checks)"
    else:
        status = "PASS: the deletion passed every check" + (f" (inconclusive: {', '.join(unsure)})" if unsure else "")
    ids = result.ids
    notes = [
        f"{ids['audited']} audited id(s) against {result.model.mia.non_members} held-out test rows "
        f"(weighted to the forget rows' classes); {result.seconds:.1f} s",
        f"statistical checks held together to a false-alarm rate of {result.alpha:g} (Holm): a model truly "
        "retrained without the rows fails them with at most that probability",
        *result.notes,
    ]
    return Report(
        title=f"iau audit {result.checkpoint}",
        tables=tables,
        notes=notes,
        status=status,
        figures=loss_histograms(result.losses),
    )


def bench_report(result: BenchResult) -> Report:
    # Long on purpose: one table per (workload, request size, chain) cell group, then the notes that
    # explain the columns.
    tables = []
    for cell in sorted({cell_of(s) for s in result.summary}, key=_cell_order):
        workload, chain = cell[0], cell[3]
        same = [s for s in result.summary if cell_of(s) == cell]
        rows = []
        for s in same:
            if s["status"] != "ok":
                rows.append([s["label"], s["status"].split(":")[0] + " (see JSON)"] + [""] * (9 + (chain > 1)))
                continue
            row = [
                s["label"],
                spread(s["seconds"], 3),
                spread(s["rte"], 0),
                spread(s["peak_mb"], 1),
                spread(s["forget_accuracy"], 3),
                spread(s["retain_accuracy"], 3),
                spread(s["test_accuracy"], 3),
                spread(s["mia_auc"], 3),
                spread(s["indiscernibility"], 3),
                spread(s["tow"], 3),
                spread(s["forget_gap"], 3),
            ]
            if chain > 1:
                row.append(spread(s.get("max_step_test_drop"), 3))
            rows.append(row)
        seeds = max((s["seeds"] for s in result.summary if s["workload"] == workload), default=0)
        rows_seen = next((s["request_rows"] for s in same if s.get("request_rows")), None)
        what = request_label(same[0], rows_seen)
        columns = ["method", "time s", "RTE", "peak MB", "forget", "retain", "test", "MIA AUC", "indisc.", "ToW"]
        columns.append("|f gap|")
        if chain > 1:
            columns.append("max step drop")
        tables.append(Table(f"{workload}, forget {what}: mean (min–max) over {seeds} seed(s)", columns, rows))
        if chain > 1:
            tables.append(_steps_table(workload, what, same))
    if result.targets:
        target_rows = [
            [t["workload"], request_label(t), t["target"], t["value"], "met" if t["met"] else "NOT met"]
            for t in result.targets
        ]
        tables.append(
            Table(
                "Targets (IAU default)",
                ["workload", "forget", "target", "value", "result"],
                target_rows,
                align="lrlll",
            )
        )
    notes = [
        "time: the method's own wall time (gradients + update), every request of a chain counted; "
        "RTE = retrain time × requests / method time (each request would need a retrain of its own)",
        "ToW = Π over forget/retain/test of (1 − |acc − retrained model's acc|)",
        "|f gap| = |forget acc − retrained model's forget acc|",
        "peak MB: resident memory above the level before the method ran (CPU) or the CUDA allocator's peak",
    ]
    if any(cell[3] > 1 for cell in map(cell_of, result.summary)):
        notes.append(
            "chains: forget, retain and ToW are the final model's over every request, against a model retrained "
            "without all of them; a retrain row's time is requests × one retrain; max step drop = the largest "
            "held-out accuracy lost by one request"
        )
    ran = [s for s in result.summary if s.get("epochs_run")]
    if ran:
        listed = "; ".join(f"{s['workload']} {s['label']}: {spread(s['epochs_run'], 0)}" for s in ran[:6])
        notes.append(
            "epochs each retrain ran, mean (min–max): " + listed + ". With train.val_fraction > 0 every retrain "
            "stops early at its own epoch, and its time follows the epochs it ran"
        )
    if result.skipped:
        notes.append(f"{result.skipped} cell(s) reused from {result.out}/runs.jsonl")
    if result.interrupted:
        notes.append("interrupted: the table shows the cells that finished; run again to resume")
    return Report(title="iau bench", tables=tables, notes=notes)


def _steps_table(workload: str, what: str, summary: list[dict[str, Any]]) -> Table:
    """Each request of a chain: the held-out accuracy after it and what it cost, per method."""
    rows = []
    for s in summary:
        for step in s.get("steps") or []:
            rows.append(
                [
                    s["label"] if step["step"] == 1 else "",
                    str(step["step"]),
                    spread(step["rows"], 0),
                    spread(step["seconds"], 3),
                    spread(step["test_accuracy"], 3),
                    spread(step["test_drop"], 3),
                    spread(step["forget_accuracy"], 3),
                    spread(step["forgotten_accuracy"], 3),
                ]
            )
    columns = ["method", "request", "rows", "time s", "test", "test drop", "forget (this)", "forget (so far)"]
    return Table(f"{workload}, forget {what}: after each request", columns, rows)


def demo_report(result: DemoResult) -> Report:
    tables = []
    notes = []
    for story in result.stories:
        rows = [
            [r.model, pct(r.forget_accuracy), pct(r.retain_accuracy), pct(r.test_accuracy), fmt(r.mia_auc, 3)]
            for r in story.rows
        ]
        tables.append(
            Table(
                f"{story.name}: {story.summary}",
                ["model", "forget acc.", "retain acc.", "test acc.", "forget MIA AUC"],
                rows,
            )
        )
        timing = ", ".join(f"{k} {v:.2f} s" for k, v in story.seconds.items())
        tables.append(Table(f"{story.name}: reproduce", ["command"], [[c] for c in story.commands], align="l"))
        notes.append(f"{story.name}: {_takeaway(story)}")
        notes.append(f"{story.name}: {timing or 'all steps reused'}; audit of the unlearned model: {story.verdict}")
    notes.append("MIA AUC 0.5 = the forget rows look like rows the model never saw")
    if result.reused:
        notes.append(f"reused from {result.workdir}: {', '.join(result.reused)} (delete the folder to start over)")
    return Report(title="iau demo", tables=tables, notes=notes)


def ledger_report(result: LedgerResult) -> Report:
    from iau_cli.cli.report import Report, Table, fmt

    rows = [
        ["checkpoint", result.checkpoint],
        ["ledger", f"{result.status}: {result.detail}"],
        ["rows covered", fmt(result.rows)],
        ["relative parameter drift", fmt(result.drift)],
    ]
    if result.out:
        rows += [["written", result.out], ["seconds", f"{result.seconds:.2f}"]]
    return Report(title="iau ledger", tables=[Table("Gradient ledger", ["", ""], rows)])


def train_report(result: TrainResult) -> Report:
    rows = [
        ["train (learned rows)", fmt(result.rows_learned), pct(result.train_accuracy), fmt(result.train_loss)],
        ["test", fmt(result.rows_test), pct(result.test_accuracy), fmt(result.test_loss)],
    ]
    run = [
        ["model", f"{result.model} ({result.parameters:,} parameters)"],
        ["epochs", f"{result.epochs_run} (best {result.best_epoch})"],
        ["gradient restriction α", fmt(result.gr_alpha)],
        ["time", f"{result.seconds:.1f} s ({result.samples_per_second:,.0f} samples/s)"],
        ["checkpoint", result.out],
        ["sha256", result.sha256[:16] + "…"],
        ["data sha256", result.data_sha256[:16] + "…"],
    ]
    if result.features is not None:
        shown = ", ".join(result.features[:12]) + (
            f", … ({len(result.features)} in all)" if len(result.features) > 12 else ""
        )
        run.insert(1, ["features", shown])
    notes = []
    if result.dropped_columns:
        notes.append(
            f"not used as features: {', '.join(result.dropped_columns)} — iau reads numeric columns only "
            "(data.feature_columns chooses which)"
        )
    return Report(
        title="iau train",
        tables=[Table("Run", ["", ""], run), Table("Accuracy", ["split", "rows", "accuracy", "loss"], rows)],
        notes=notes,
    )


def _detail(value: Any) -> str:
    """A method detail for a report cell: nested records as ``key value`` pairs (a list of runs
    one after another), not a Python repr; the JSON keeps the structure."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_detail(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return " | ".join(_detail(v) for v in value) if value else "—"
    return fmt(value)


def unlearn_report(result: UnlearnResult) -> Report:
    ids = result.ids
    id_rows = [
        ["requested", fmt(ids.requested) + (f" (+{ids.duplicates} duplicate lines)" if ids.duplicates else "")],
        ["found in training rows", fmt(ids.found)],
        ["unknown (skipped)", fmt(ids.unknown) + (f": {', '.join(ids.unknown_examples)}" if ids.unknown else "")],
        ["already forgotten (skipped)", fmt(ids.already_forgotten)],
        ["forgotten now", fmt(ids.forgotten_now)],
        ["retain rows", fmt(result.retain_rows)],
    ]
    if ids.validation_only:
        id_rows.insert(5, ["held out for validation (no update)", fmt(ids.validation_only)])
    if ids.test_rows:
        id_rows.insert(5, ["test rows, never learned (recorded, no update)", fmt(ids.test_rows)])
    tables = [Table("Ids", ["", ""], id_rows)]
    if result.before is not None and result.after is not None:
        b, a = result.before, result.after
        tables.append(
            Table(
                "Before → after",
                ["", "before", "after"],
                [
                    ["forget accuracy", pct(b.forget_accuracy), pct(a.forget_accuracy)],
                    ["forget loss", fmt(b.forget_loss), fmt(a.forget_loss)],
                    ["test accuracy", pct(b.test_accuracy), pct(a.test_accuracy)],
                    ["test loss", fmt(b.test_loss), fmt(a.test_loss)],
                ],
            )
        )
    method_rows = [["method", result.method]]
    method_rows += [[k, fmt(v)] for k, v in result.options.items() if v is not None]
    for k, v in result.details.items():  # a detail named like an option is what the method resolved it to
        if k not in result.options:
            method_rows.append([k, _detail(v)])
        elif v != result.options[k]:
            method_rows.append([f"{k} (ran)", _detail(v)])
    if result.ledger:
        method_rows.append(
            ["retain gradient", result.ledger.get("path", "not needed") + f" ({result.ledger.get('detail', '')})"]
        )
        method_rows.append(["next ledger", result.ledger.get("next", "—")])
    tables.append(Table("Method", ["", ""], method_rows))
    tables.append(Table("Time (s)", ["step", "seconds"], [[k, f"{v:.3f}"] for k, v in result.seconds.items()]))
    notes = [
        *(f"WARNING: {w['message']}" for w in result.warnings),
        result.message,
        f"wrote {result.out} (sha256 {result.out_sha256[:16]}…), parent {result.parent_sha256[:16]}…",
    ]
    return Report(title="iau unlearn", tables=tables, notes=notes)


def report_for(result: Any) -> Report:
    """The report of any command's result."""
    for kind, build in _BUILDERS:
        if isinstance(result, kind):
            return build(result)
    raise TypeError(f"no report for {type(result).__name__}")  # a bug: every result type is listed


_BUILDERS: list[tuple[type, Any]] = [
    (AuditResult, audit_report),
    (BenchResult, bench_report),
    (DemoResult, demo_report),
    (LedgerResult, ledger_report),
    (TrainResult, train_report),
    (UnlearnResult, unlearn_report),
]


def loss_histograms(losses: dict[str, dict[str, list[float]]]) -> list[Histogram]:
    """One histogram per model of its forget and held-out rows' losses (log scale), every one on the
    same axis, so the eye compares before and after like with like."""
    logged = {
        model: {
            group: np.log10(np.asarray(values, dtype=np.float64) + 1e-6).tolist() for group, values in groups.items()
        }
        for model, groups in losses.items()
    }
    values = [v for groups in logged.values() for series in groups.values() for v in series if math.isfinite(v)]
    shared = (min(values), max(values)) if values else None
    return [
        Histogram(
            f"Loss of forget rows vs held-out rows ({model})",
            "cross-entropy loss (log scale: log10(loss + 1e-6))",
            groups,
            x_range=shared,
        )
        for model, groups in logged.items()
    ]
