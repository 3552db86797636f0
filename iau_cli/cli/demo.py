"""iau demo"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iau_cli.cli.common import (
    DeviceOpt,
    JsonOpt,
    OverwriteOpt,
    Publish,
    QuietOpt,
    ReportFormatOpt,
    ReportOpt,
    check_output_paths,
    emit,
    progress_sink,
)

NAME = "demo"
NO_ARGS_HELP = False


def command(
    workdir: Annotated[Path, typer.Option("--workdir", help="Where the demo's files go (reused when present).")] = Path(
        "iau-demo"
    ),
    device: DeviceOpt = "auto",
    json_target: JsonOpt = None,
    report: ReportOpt = None,
    report_format: ReportFormatOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """The whole story on the built-in workloads: erasure and label cleanup, each trained, unlearned,
    retrained for comparison and audited, with the commands that reproduce every step. Exit 0 when
    both audits pass, 1 when one does not."""
    from iau_cli.recipes.demo import run_demo

    check_output_paths({"--json": json_target, "--report": report}, overwrite=overwrite, report_format=report_format)
    with progress_sink(not quiet) as progress:
        result = run_demo(workdir, device=device, progress=progress)
    from iau_cli.cli.reports import report_for

    emit(
        report_for(result),
        result.to_dict(),
        Publish(json_target, report, report_format, quiet, overwrite),
    )
    if not result.passed:
        raise typer.Exit(1)
