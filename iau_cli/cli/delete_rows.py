"""iau delete-rows DATA --forget ids.txt"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from iau_cli.cli.common import JsonOpt, OverwriteOpt, Publish, QuietOpt, check_output_paths, emit

NAME = "delete-rows"


def command(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="A csv, tsv, parquet or JSON-lines data file.")],
    forget: Annotated[
        str,
        typer.Option(
            "--forget", "-f", metavar="IDS|-", help="The ids whose rows to delete (unlearn's --forgotten-ids)."
        ),
    ],
    id_column: Annotated[str, typer.Option("--id-column", help="The column holding the ids.")] = "id",
    overwrite: OverwriteOpt = False,
    json_target: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Delete the rows of these ids from a data file, atomically (the file is replaced whole or not at all).

    Idempotent: ids whose rows are already gone are counted as absent, so a rerun finishes the job.
    Run it only after the model that forgot them is promoted (README: Nightly retention job)."""
    from iau_cli.io.ids import read_forget_ids

    check_output_paths({"--json": json_target}, ids=forget, others={"data file": data}, overwrite=overwrite)
    request = read_forget_ids(forget, allow_empty=True)
    from iau_cli.io.files import Outputs
    from iau_cli.recipes.delete_rows import plan_deletion

    # This command owns its outputs: the data file is replaced with the records, all or nothing.
    with Outputs() as staged:
        staged.lock(data)  # before the read: two runs cannot both filter the old content
        result = plan_deletion(data, request.ids, id_column=id_column)
        if result.write is not None:
            staged.stage(data, result.write, overwrite=True)
        emit(
            _report(result),
            result.to_dict(),
            Publish(json_target, None, None, quiet, overwrite),
            outputs=staged,
            inputs={"data": data, "ids": (request.source, request.sha256)},
        )


def _report(result: Any) -> Any:
    from iau_cli.cli.report import Report, Table, fmt

    rows = [
        ["data", f"{result.data} ({result.format})"],
        ["ids requested", fmt(result.requested)],
        ["rows deleted", fmt(result.deleted)],
        ["ids with no row (already deleted, or never there)", fmt(result.absent)],
        ["rows left", fmt(result.rows_left)],
    ]
    note = "the file was replaced atomically" if result.changed else "nothing to delete: the file is unchanged"
    return Report(title=f"iau delete-rows {result.data}", tables=[Table("Deletion", ["", ""], rows)], notes=[note])
