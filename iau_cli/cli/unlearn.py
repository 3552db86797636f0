"""iau unlearn CHECKPOINT --forget ids.txt [--out new.safetensors]"""

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
from iau_cli.core.methods import MethodName, options_help

NAME = "unlearn"
EPILOG = (
    "\b\nMethod options (-O KEY=VALUE; auto = chosen from the recipe or the request):\n"
    + options_help(width=74)
    + "\n\n\b\nExit codes: 0 done (also when nothing was new to forget), 2 bad input\n"
    "(nothing written), 130 interrupted. With --json, a failure writes\n"
    '{"error": {"kind", "message"}}.'
)


def command(
    checkpoint: CheckpointArg,
    forget: Annotated[
        str, typer.Option("--forget", "-f", metavar="IDS|-", help="File of sample ids (one per line), or - for stdin.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output checkpoint [default: CHECKPOINT.unlearned.safetensors].")
    ] = None,
    method: Annotated[
        MethodName,
        typer.Option(
            "--method",
            "-m",
            metavar="METHOD",
            help=f"Unlearning method: {', '.join(m.value for m in MethodName)} (options below).",
        ),
    ] = MethodName.IAU,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-O", metavar="KEY=VALUE", help="Method option, e.g. -O rule=adam-sign -O step_size=1e-3."
        ),
    ] = None,
    purpose: Annotated[
        str | None,
        typer.Option(
            "--purpose",
            metavar="erase|cleanup",
            help="Why the rows go (iau): erase (deletion requests; the default) or cleanup (mislabeled or "
            "poisoned rows, whose removal should raise accuracy). Same as -O purpose=….",
        ),
    ] = None,
    max_test_drop: Annotated[
        float,
        typer.Option("--max-test-drop", help="Warn (report and JSON) when held-out accuracy falls more than this."),
    ] = 0.02,
    fallback: Annotated[
        str,
        typer.Option(
            "--fallback",
            metavar="none|retrain",
            help="retrain: when the method's self-check fails (JSON check: targets_not_reached or "
            "heldout_accuracy_drop), retrain without the rows instead of writing its model.",
        ),
    ] = "none",
    config: ConfigOpt = None,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing", help="Skip ids that are not training rows (exit 0 if none are).")
    ] = False,
    forgotten_ids: Annotated[
        Path | None,
        typer.Option(
            "--forgotten-ids",
            metavar="PATH",
            help="Write the ids this run recorded as forgotten (training and test rows: the rows to delete, and "
            "the list to audit); empty if none.",
        ),
    ] = None,
    outcomes: Annotated[
        Path | None,
        typer.Option(
            "--outcomes",
            metavar="PATH",
            help="Write what happened to each requested id, for replying to requesters: id, outcome (erased, "
            "test_row, already_forgotten, not_found), request_sha256; CSV, or JSON lines for a .jsonl name.",
        ),
    ] = None,
    allow_data_change: AllowDataChangeOpt = False,
    trust_checkpoint_code: TrustOpt = False,
    ledger_refresh: Annotated[
        str,
        typer.Option(
            "--ledger-refresh",
            metavar="later|now",
            help="now: recompute the gradient ledger at the new parameters (one pass over the data).",
        ),
    ] = "later",
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    json_target: JsonOpt = None,
    report: ReportOpt = None,
    report_format: ReportFormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Forget the listed sample ids and write a new checkpoint with the event in its lineage."""
    # typer declares every flag in the signature; the body guards the outputs, reads the ids, builds
    # the request, runs and publishes.
    from iau_cli.config import load_run_config

    # Outputs, then bad ids, options or config fail here, before torch is imported.
    from iau_cli.io.files import default_output
    from iau_cli.io.ids import read_forget_ids

    # The default --out is an output like any other: guard it too.
    outputs = {
        "--out": out or default_output(checkpoint),
        "--json": json_target,
        "--report": report,
        "--forgotten-ids": forgotten_ids,
        "--outcomes": outcomes,
    }
    guard = {"checkpoint": checkpoint, "ids": forget, "config": config, "overwrite": overwrite}
    check_output_paths(outputs, **guard, report_format=report_format)
    forget_request = read_forget_ids(forget, allow_empty=allow_missing)
    options = _method_options(method, option, purpose)
    run_config = load_run_config(config) if config else None
    if run_config is not None:  # now its data files are known inputs too
        check_output_paths(outputs, **guard, run_config=run_config)

    from iau_cli.core import distributed
    from iau_cli.io.files import Outputs
    from iau_cli.recipes.unlearn import UnlearnRequest, make_unlearned, write

    request = UnlearnRequest(
        checkpoint=str(checkpoint),
        forget=forget_request,
        out=str(outputs["--out"]),
        method=method.value,
        options=options,
        config=run_config,
        allow_missing=allow_missing,
        trust_code=trust_checkpoint_code,
        allow_data_change=allow_data_change,
        device=device,
        overwrite=overwrite,
        ledger_refresh=ledger_refresh,
        max_test_drop=max_test_drop,
        fallback=fallback,
    )
    # This command owns its outputs: guarded above, locked for the run, staged and published together.
    with Outputs() as staged, progress_sink(not quiet) as progress:
        if distributed.is_main():
            staged.lock(outputs["--out"])  # a second run to the same --out fails at once instead of racing
        result = write(make_unlearned(request, progress=progress), staged, overwrite=overwrite)
        from iau_cli.cli.reports import report_for

        emit(
            report_for(result),
            result.to_dict(),
            Publish(json_target, report, report_format, quiet, overwrite),
            outputs=staged,
            inputs={
                "checkpoint": (checkpoint, result.parent_sha256),  # hashed when it was read
                "ids": (forget_request.source, forget_request.sha256),
                "config": config,
            },
            files=_id_files(result, forgotten_ids, outcomes, forget_request.sha256),
        )


def _method_options(method: MethodName, option: list[str] | None, purpose: str | None) -> dict[str, Any]:
    """The ``-O key=value`` options, with ``--purpose`` (an option of the iau method) among them."""
    from iau_cli.config import parse_key_values
    from iau_cli.errors import ConfigError

    options = parse_key_values(option or [], source="--option")
    if purpose is not None:
        if method is not MethodName.IAU:
            raise ConfigError(f"--purpose is an option of --method iau, not of {method.value}")
        if purpose not in ("erase", "cleanup"):
            raise ConfigError(f"--purpose {purpose!r}: expected erase or cleanup")
        options["purpose"] = purpose
    return options


def _id_files(result: Any, forgotten_ids: Path | None, outcomes: Path | None, request_sha256: str) -> dict | None:
    """The clear-id outputs asked for: --forgotten-ids (one id per line) and --outcomes."""
    from iau_cli.io.ids import format_ids

    files: dict[str, tuple[Path, str]] = {}
    if forgotten_ids:
        files["--forgotten-ids"] = (forgotten_ids, format_ids(result.forgotten_ids))
    if outcomes:
        files["--outcomes"] = (outcomes, format_outcomes(result.outcomes, request_sha256, outcomes.suffix == ".jsonl"))
    return files or None


def format_outcomes(outcomes: list[tuple[str, str]], request_sha256: str, jsonl: bool) -> str:
    import csv
    import io
    import json

    if jsonl:
        lines = [json.dumps({"id": i, "outcome": o, "request_sha256": request_sha256}) for i, o in outcomes]
        return "".join(line + "\n" for line in lines)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "outcome", "request_sha256"])
    writer.writerows([i, o, request_sha256] for i, o in outcomes)
    return buffer.getvalue()
