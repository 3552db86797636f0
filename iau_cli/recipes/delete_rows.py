"""``delete-rows``: remove rows from a data file by id — the retention job's last step, once a
model that forgot them is promoted. Atomic (the file is replaced whole, or not at all) and
idempotent (rows already gone are counted, not an error), so a rerun after a failure finishes.

CSV / TSV and JSON lines are filtered record by record and kept records are written back as read
(values are never re-parsed as numbers); parquet is filtered as a table. iau's later commands then
accept the file: the same rows, less rows of forgotten ids.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from iau_cli.errors import DataError
from iau_cli.io.files import Outputs

FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclass
class DeletionResult:
    data: str
    format: str
    id_column: str
    requested: int
    deleted: int
    absent: int  # requested ids no row had (deleted before, or never there)
    rows_left: int
    changed: bool
    write: Callable[[Path], None] | None = field(default=None, repr=False)
    """Writes the filtered file to a temporary path (None when nothing is deleted); not in the JSON."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "write"}


def plan_deletion(path: str | Path, ids: list[str] | set[str], *, id_column: str = "id") -> DeletionResult:
    """The rows of ``path`` whose ``id_column`` is in ``ids``, filtered out: the result, with the
    writer of the new file in ``result.write`` — nothing written (the caller, holding the file's
    output lock from before this read, stages it over ``path``: the CLI, or :func:`delete_rows`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found (or not a regular file)")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: cannot delete rows from a {path.suffix or 'suffix-less'} file; csv, tsv, parquet or jsonl"
        )
    wanted = set(ids)
    reader = {"csv": _filter_delimited, "tsv": _filter_delimited, "jsonl": _filter_jsonl, "parquet": _filter_parquet}
    write, deleted, left, seen = reader[fmt](path, wanted, id_column, fmt)
    result = DeletionResult(
        data=str(path),
        format=fmt,
        id_column=id_column,
        requested=len(wanted),
        deleted=deleted,
        absent=len(wanted - seen),
        rows_left=left,
        changed=deleted > 0,
        write=write if deleted else None,
    )
    return result


def delete_rows(path: str | Path, ids: list[str] | set[str], *, id_column: str = "id") -> DeletionResult:
    """Remove every row of ``path`` whose ``id_column`` is in ``ids``; the file is replaced
    atomically, under its output lock (taken before it is read, so two runs cannot both filter the
    old content)."""
    with Outputs() as own:
        own.lock(path)
        result = plan_deletion(path, ids, id_column=id_column)
        if result.write is not None:
            own.stage(Path(path), result.write, overwrite=True)
            own.publish()
    return result


def _filter_delimited(path: Path, wanted: set[str], id_column: str, fmt: str) -> tuple[Any, int, int, set[str]]:
    delimiter = "\t" if fmt == "tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle, delimiter=delimiter))
    if not rows:
        raise DataError(f"{path}: empty file (no header)")
    header, body = rows[0], rows[1:]
    if id_column not in header:
        raise DataError(f"{path}: no id column {id_column!r} in the header; pass --id-column")
    at = header.index(id_column)
    kept = [r for r in body if not (len(r) > at and r[at] in wanted)]
    seen = {r[at] for r in body if len(r) > at and r[at] in wanted}

    def write(temp: Path) -> None:
        with open(temp, "w", newline="", encoding="utf-8") as out:
            csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows([header, *kept])

    return write, len(body) - len(kept), len(kept), seen


def _filter_jsonl(path: Path, wanted: set[str], id_column: str, fmt: str) -> tuple[Any, int, int, set[str]]:
    kept, seen, deleted = [], set(), 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise DataError(f"{path}:{number}: not a JSON object per line (JSON lines)") from None
            if not isinstance(record, dict) or id_column not in record:
                raise DataError(f"{path}:{number}: no id field {id_column!r}; pass --id-column")
            if str(record[id_column]) in wanted:
                seen.add(str(record[id_column]))
                deleted += 1
            else:
                kept.append(line if line.endswith("\n") else line + "\n")

    def write(temp: Path) -> None:
        temp.write_text("".join(kept), encoding="utf-8")

    return write, deleted, len(kept), seen


def _filter_parquet(path: Path, wanted: set[str], id_column: str, fmt: str) -> tuple[Any, int, int, set[str]]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    if id_column not in table.column_names:
        raise DataError(f"{path}: no id column {id_column!r}; pass --id-column")
    as_text = pc.cast(table[id_column], pa.string())
    hit = pc.is_in(as_text, value_set=pa.array(sorted(wanted), type=pa.string()))
    hit = pc.fill_null(hit, False)
    seen = set(pc.filter(as_text, hit).to_pylist())
    kept = table.filter(pc.invert(hit))

    def write(temp: Path) -> None:
        pq.write_table(kept, temp)

    return write, table.num_rows - kept.num_rows, kept.num_rows, seen
