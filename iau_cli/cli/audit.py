"""iau audit CHECKPOINT --forget ids.txt [--reference RETRAINED] [--original ORIGINAL]"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from iau_cli.cli.common import (
    AllowDataChangeOpt,
    CheckpointArg,
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    OverwriteOpt,
    Publish,
    QuietOpt,
    ReportFormatOpt,
    ReportOpt,
    TrustOpt,
    check_output_paths,
    emit,
    progress_sink,
)

NAME = "audit"


def command(
    checkpoint: CheckpointArg,
    forget: Annotated[str, typer.Option("--forget", "-f", metavar="IDS|-", help="The ids that were to be forgotten.")],
    reference: Annotated[
        Path | None, typer.Option("--reference", metavar="RETRAINED", help="A model retrained without the ids.")
    ] = None,
    original: Annotated[
        Path | None, typer.Option("--original", metavar="ORIGINAL", help="The model before the deletion.")
    ] = None,
    per_sample: Annotated[
        Path | None, typer.Option("--per-sample", metavar="PATH", help="CSV of each forget row's membership score.")
    ] = None,
    shadow_models: Annotated[
        int,
        typer.Option(
            "--shadow-models",
            min=0,
            help="Thorough mode: k shadow models (retrains with other seeds): the per-row check, and the raw "
            "checks' witness; k trainings.",
        ),
    ] = 0,
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha",
            min=1e-6,
            max=0.5,
            help="Family-wise false-alarm rate: the chance that a model which truly never saw the rows fails any "
            "statistical check (Holm over the checks).",
        ),
    ] = 0.01,
    mia_margin: Annotated[
        float | None,
        typer.Option("--mia-margin", min=0.0, help="AUC differences this small never fail, however significant."),
    ] = None,
    accuracy_margin: Annotated[
        float | None,
        typer.Option("--accuracy-margin", min=0.0, help="Forget-accuracy differences this small never fail."),
    ] = None,
    max_test_drop: Annotated[
        float, typer.Option("--max-test-drop", min=0.0, help="Allowed test accuracy drop (tested with its own error).")
    ] = 0.02,
    min_tow: Annotated[
        float | None,
        typer.Option(
            "--min-tow", help="Also require this Tug-of-War against --reference (a fixed limit, outside alpha)."
        ),
    ] = None,
    accept_inconclusive: Annotated[
        bool,
        typer.Option(
            "--accept-inconclusive",
            help="Pass when the only checks that did not pass could not have told a model that kept the rows.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the non-member draw and the attacks.")] = 0,
    config: ConfigOpt = None,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing", help="Audit the ids that are training rows; skip the others.")
    ] = False,
    allow_data_change: AllowDataChangeOpt = False,
    trust_checkpoint_code: TrustOpt = False,
    device: DeviceOpt = "auto",
    json_target: JsonOpt = None,
    report: ReportOpt = None,
    report_format: ReportFormatOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Check a deletion: utility, membership inference, lineage; exit 0 pass, 1 fail or inconclusive, 2 bad input.

    A model truly retrained without the rows fails with probability at most --alpha (default 0.01)."""
    # typer declares every flag in the signature; the body guards the outputs, builds the request,
    # runs and publishes.
    from iau_cli.config import load_run_config
    from iau_cli.io.ids import read_forget_ids

    outputs = {"--json": json_target, "--report": report, "--per-sample": per_sample}
    others = {"--reference checkpoint": reference, "--original checkpoint": original}
    guard = {"checkpoint": checkpoint, "ids": forget, "config": config, "others": others, "overwrite": overwrite}
    check_output_paths(outputs, **guard, report_format=report_format)
    forget_request = read_forget_ids(forget)  # bad ids and config fail before torch is imported
    run_config = load_run_config(config) if config else None
    if run_config is not None:
        check_output_paths(outputs, **guard, run_config=run_config)

    from iau_cli.recipes.audit import AuditRequest, Thresholds, audit

    request = AuditRequest(
        checkpoint=str(checkpoint),
        forget=forget_request,
        reference=str(reference) if reference else None,
        original=str(original) if original else None,
        config=run_config,
        trust_code=trust_checkpoint_code,
        allow_data_change=allow_data_change,
        allow_missing=allow_missing,
        device=device,
        thresholds=Thresholds(alpha, mia_margin, accuracy_margin, max_test_drop, min_tow),
        accept_inconclusive=accept_inconclusive,
        shadow_models=shadow_models,
        seed=seed,
    )
    with progress_sink(not quiet) as progress:
        result = audit(request, progress=progress)
    from iau_cli.cli.reports import report_for

    emit(
        report_for(result),
        result.to_dict(),
        Publish(json_target, report, report_format, quiet, overwrite),
        inputs={
            "checkpoint": checkpoint,
            "ids": (forget_request.source, forget_request.sha256),
            "config": config,
            "reference": reference,
            "original": original,
        },
        files={"--per-sample": (per_sample, per_sample_csv(result))} if per_sample else None,
    )
    if not result.passed:
        raise typer.Exit(1)


def per_sample_csv(result: Any) -> str:
    """One row per audited id: id, label, loss, correct, membership score, non-member rank, shadow z."""
    import csv
    import io

    buffer = io.StringIO()
    fields = ["id", "label", "loss", "correct", "membership_score", "nonmember_rank", "shadow_z"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(result.per_sample)
    return buffer.getvalue()
