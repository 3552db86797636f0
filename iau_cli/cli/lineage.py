"""iau lineage CHECKPOINT"""

from __future__ import annotations

from typing import Any

from iau_cli.cli.common import CheckpointArg, JsonOpt, OverwriteOpt, Publish, QuietOpt, check_output_paths, emit

NAME = "lineage"


def command(
    checkpoint: CheckpointArg,
    overwrite: OverwriteOpt = False,
    json_target: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Print a checkpoint's whole history (train or import, then each unlearn and ledger refresh) from its metadata."""
    from iau_cli.errors import CheckpointError
    from iau_cli.io.checkpoint import CheckpointMeta, read_metadata
    from iau_cli.io.files import file_sha256

    check_output_paths({"--json": json_target}, checkpoint=checkpoint, overwrite=overwrite)
    metadata = read_metadata(checkpoint)
    if "iau.format" not in metadata:
        raise CheckpointError(f"{checkpoint}: a plain safetensors file without iau metadata has no lineage")
    meta = CheckpointMeta.from_metadata(metadata, str(checkpoint), need_keys=False)  # history needs no key
    data = {
        "checkpoint": str(checkpoint),
        "sha256": file_sha256(checkpoint),
        "events": meta.lineage,
        "forgotten_ids": len(meta.forgotten),
        "forgotten_ids_keyed": bool(meta.forgotten.keyed),
        "data_fingerprint": meta.data.get("fingerprint", {}).get("sha256"),
    }
    emit(
        _report(data),
        data,
        Publish(json_target, None, None, quiet, overwrite),
        inputs={"checkpoint": checkpoint},
    )


def _report(data: dict[str, Any]) -> Any:
    from iau_cli.cli.report import Report, Table

    rows = []
    for index, event in enumerate(data["events"]):
        ids = event.get("ids", event.get("rows", ""))
        what = event.get("method", "") or (f"seed {event['seed']}" if "seed" in event else "")
        parent = event.get("parent_sha256") or event.get("data_sha256") or event.get("source_sha256") or ""
        rows.append([str(index), str(event.get("event", "?")), str(event.get("time", "")), str(ids), what, str(parent)])
    columns = ["#", "event", "time (UTC)", "ids / rows", "method", "parent file (or data) sha256"]
    notes = [
        f"{data['forgotten_ids']} forgotten id(s) recorded as {'keyed' if data['forgotten_ids_keyed'] else 'salted'} "
        "hashes; the file's sha256 is " + data["sha256"]
    ]
    return Report(
        title=f"iau lineage {data['checkpoint']}", tables=[Table("Events", columns, rows, align="llllll")], notes=notes
    )
