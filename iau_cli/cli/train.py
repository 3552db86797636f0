"""iau train CONFIG.yaml --out model.safetensors"""

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
    SetOpt,
    check_output_paths,
    emit,
    progress_sink,
)

NAME = "train"


def command(
    config: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="Run config: data, model, train sections.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (.safetensors).")],
    overrides: SetOpt = None,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = "auto",
    json_target: JsonOpt = None,
    report: ReportOpt = None,
    report_format: ReportFormatOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a model from a YAML config and write a self-describing checkpoint."""
    from iau_cli.config import load_run_config

    outputs = {"--out": out, "--json": json_target, "--report": report}
    check_output_paths(outputs, config=config, overwrite=overwrite, report_format=report_format)
    run_config = load_run_config(config, overrides)  # config errors fail before torch is imported
    check_output_paths(outputs, config=config, run_config=run_config, overwrite=overwrite)  # its data too

    from iau_cli.core import distributed
    from iau_cli.io.files import Outputs
    from iau_cli.recipes.train import make_trained, write_checkpoint

    # This command owns its outputs: guarded above, locked for the run, staged and published together.
    with Outputs() as staged, progress_sink(not quiet) as progress:
        if distributed.is_main():
            staged.lock(out)  # a second run to the same --out fails at once instead of racing this one
        result = make_trained(run_config, device=device, progress=progress)
        assert result.child is not None
        result.out, result.sha256 = str(out), write_checkpoint(result.child, out, staged, overwrite=overwrite)
        from iau_cli.cli.reports import report_for

        emit(
            report_for(result),
            result.to_dict(),
            Publish(json_target, report, report_format, quiet, overwrite),
            outputs=staged,
            inputs={"config": config},
        )
