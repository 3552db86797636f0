"""iau ledger show|refresh CHECKPOINT"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iau_cli.cli.common import (
    AllowDataChangeOpt,
    CheckpointArg,
    DeviceOpt,
    JsonOpt,
    OverwriteOpt,
    Publish,
    QuietOpt,
    TrustOpt,
    boundary,
    check_output_paths,
    emit,
    progress_sink,
)

NAME = "ledger"

app = typer.Typer(help="The gradient ledger that makes a request cost what its forget rows cost.", no_args_is_help=True)


def show(
    checkpoint: CheckpointArg,
    allow_data_change: AllowDataChangeOpt = False,
    trust_checkpoint_code: TrustOpt = False,
    overwrite: OverwriteOpt = False,
    json_target: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Say whether the checkpoint's ledger is fresh, stale (and how far) or absent."""
    from iau_cli.recipes.ledger import show_ledger

    check_output_paths({"--json": json_target}, checkpoint=checkpoint, overwrite=overwrite)
    result = show_ledger(str(checkpoint), trust_code=trust_checkpoint_code, allow_data_change=allow_data_change)
    from iau_cli.cli.reports import report_for

    emit(
        report_for(result),
        result.to_dict(),
        Publish(json_target, None, None, quiet, overwrite),
        inputs={"checkpoint": checkpoint},
    )


def refresh(
    checkpoint: CheckpointArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write (never the input checkpoint).")],
    overwrite: OverwriteOpt = False,
    allow_data_change: AllowDataChangeOpt = False,
    trust_checkpoint_code: TrustOpt = False,
    device: DeviceOpt = "auto",
    json_target: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Recompute the ledger at the checkpoint's parameters (one pass over its training rows) into a new file."""
    check_output_paths({"--out": out, "--json": json_target}, checkpoint=checkpoint, overwrite=overwrite)
    from iau_cli.core import distributed
    from iau_cli.io.files import Outputs
    from iau_cli.recipes.ledger import make_refreshed
    from iau_cli.recipes.train import write_checkpoint

    # This command owns its outputs: guarded above, locked for the run, staged and published together.
    with Outputs() as staged, progress_sink(not quiet) as progress:
        if distributed.is_main():
            staged.lock(out)
        result = make_refreshed(
            str(checkpoint),
            device=device,
            trust_code=trust_checkpoint_code,
            allow_data_change=allow_data_change,
            progress=progress,
        )
        assert result.child is not None
        result.out = str(out)
        write_checkpoint(result.child, out, staged, overwrite=overwrite)
        from iau_cli.cli.reports import report_for

        emit(
            report_for(result),
            result.to_dict(),
            Publish(json_target, None, None, quiet, overwrite),
            outputs=staged,
            inputs={"checkpoint": (checkpoint, result.child.meta.lineage[-1]["parent_sha256"])},  # hashed when read
        )


app.command("show")(boundary(show))
app.command("refresh")(boundary(refresh))
