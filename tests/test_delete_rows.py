"""``iau delete-rows``: the supported last step of a retention job (atomic, idempotent)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .helpers import assert_bad_input, run_cli


def _ids(tmp_path: Path, ids: list[str]) -> Path:
    path = tmp_path / "gone.txt"
    path.write_text("".join(f"{i}\n" for i in ids))
    return path


def test_csv_rows_are_deleted_once_and_kept_rows_stay_as_they_were(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text('id,label,x,note\na,0,1.50,"has, comma"\nb,1,0.000001,x\nc,0,2,"two\nlines"\nd,1,3,y\n')
    done = run_cli("delete-rows", data, "-f", _ids(tmp_path, ["b", "c", "zz"]), "--json", "-", "-q")
    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["deleted"], result["absent"], result["rows_left"], result["changed"]) == (2, 1, 2, True)
    assert data.read_text() == 'id,label,x,note\na,0,1.50,"has, comma"\nd,1,3,y\n'  # values as written
    assert result["record"]["inputs"]["data"]["sha256"] != result["record"]["outputs"][str(data)]
    again = run_cli("delete-rows", data, "-f", _ids(tmp_path, ["b", "c", "zz"]), "--json", "-", "-q")
    assert again.exit_code == 0 and json.loads(again.stdout)["changed"] is False  # idempotent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gone.txt", "rows.csv"]  # no temp or lock left


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".tsv"])
def test_parquet_json_lines_and_tsv(tmp_path: Path, suffix: str) -> None:
    data = tmp_path / f"rows{suffix}"
    rows = [{"user": f"u{i}", "label": i % 2, "x": i * 0.5} for i in range(6)]
    if suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), data)
    elif suffix == ".jsonl":
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        data.write_text("user\tlabel\tx\n" + "".join(f"{r['user']}\t{r['label']}\t{r['x']}\n" for r in rows))
    done = run_cli("delete-rows", data, "-f", _ids(tmp_path, ["u1", "u4"]), "--id-column", "user", "-q")
    assert done.exit_code == 0, done.stderr
    if suffix == ".parquet":
        left = pq.read_table(data).column("user").to_pylist()
    elif suffix == ".jsonl":
        left = [json.loads(line)["user"] for line in data.read_text().splitlines()]
    else:
        left = [line.split("\t")[0] for line in data.read_text().splitlines()[1:]]
    assert left == ["u0", "u2", "u3", "u5"]


def test_bad_input_is_one_line_and_the_file_is_untouched(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("id,label\na,0\n")
    before = data.read_bytes()
    assert_bad_input(run_cli("delete-rows", data, "-f", _ids(tmp_path, ["a"]), "--id-column", "user"), "no id column")
    assert_bad_input(run_cli("delete-rows", tmp_path / "none.csv", "-f", _ids(tmp_path, ["a"])), "not found")
    (tmp_path / "rows.xlsx").write_bytes(b"x")
    assert_bad_input(run_cli("delete-rows", tmp_path / "rows.xlsx", "-f", _ids(tmp_path, ["a"])), "cannot delete rows")
    assert_bad_input(run_cli("delete-rows", data, "-f", _ids(tmp_path, ["a"]), "--json", data), "data file")
    assert data.read_bytes() == before


def test_after_the_deletion_the_model_s_next_request_accepts_the_data(tmp_path: Path) -> None:
    """The workflow it exists for: unlearn, delete-rows, and the next unlearn reads the data as is."""
    import numpy as np

    rng = np.random.default_rng(0)
    lines = ["id,label,a,b"] + [f"r{i},{i % 2},{rng.normal():.4f},{rng.normal():.4f}" for i in range(60)]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "run.yaml").write_text(
        "data:\n  train: rows.csv\n  test_fraction: 0.25\nmodel:\n  name: logreg\ntrain:\n  epochs: 2\n"
    )
    assert run_cli("train", tmp_path / "run.yaml", "--out", tmp_path / "m0.safetensors", "-q").exit_code == 0
    request = _ids(tmp_path, ["r0", "r1", "r2"])
    first = run_cli(
        "unlearn",
        tmp_path / "m0.safetensors",
        "-f",
        request,
        "-o",
        tmp_path / "m1.safetensors",
        "--forgotten-ids",
        tmp_path / "forgotten.txt",
        "-q",
    )
    assert first.exit_code == 0, first.stderr
    assert run_cli("delete-rows", tmp_path / "rows.csv", "-f", tmp_path / "forgotten.txt", "-q").exit_code == 0
    nxt = tmp_path / "next.txt"
    nxt.write_text("r5\n")
    second = run_cli("unlearn", tmp_path / "m1.safetensors", "-f", nxt, "-o", tmp_path / "m2.safetensors", "-q")
    assert second.exit_code == 0, second.stderr
