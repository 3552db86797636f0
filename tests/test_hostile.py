"""Issue 15: hostile and broken inputs. No output clobbers an input or an existing file, no run
half-publishes, no crafted checkpoint crashes iau or makes it allocate what the file does not
hold, training refuses garbage, reads are bounded. Each case: exit 2, one line, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iau_cli.io.checkpoint import load_checkpoint, read_metadata

from .conftest import digits_config, write_yaml
from .helpers import assert_bad_input, run_cli

PACKAGE = Path(__file__).resolve().parent.parent / "iau_cli"


def ids_file(tmp_path: Path, ids: list[str], name: str = "ids.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(ids) + "\n")
    return path


def craft(tmp_path: Path, source: Path, *, name: str = "crafted.safetensors", tensors=None, **metadata: object) -> Path:
    """A copy of ``source`` with some ``iau.*`` metadata values replaced (JSON-encoded unless str)."""
    from safetensors.torch import save_file

    meta = read_metadata(source)
    for key, value in metadata.items():
        meta[key.replace("__", ".")] = value if isinstance(value, str) else json.dumps(value)
    loaded = load_checkpoint(source)
    state = dict(tensors if tensors is not None else loaded.state_dict)
    state.update({"__iau_ledger__." + k: v for k, v in loaded.ledger_tensors.items()} if tensors is None else {})
    path = tmp_path / name
    save_file(state, str(path), metadata=meta)
    return path


def tiny_csv_model(tmp_path: Path) -> tuple[list[str], Path, Path]:
    """A 60-row CSV and a logistic regression trained on it: (CSV lines, CSV path, checkpoint)."""
    rows = ["id,label,a,b"] + [f"r{i},{i % 2},{i / 7:.3f},{(i * 3) % 5}" for i in range(60)]
    data = tmp_path / "rows.csv"
    data.write_text("\n".join(rows) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text("data:\n  train: rows.csv\nmodel:\n  name: logreg\ntrain:\n  epochs: 2\n")
    model = tmp_path / "m.safetensors"
    assert run_cli("train", config, "--out", model, "-q").exit_code == 0
    return rows, data, model


def unlearn_args(tmp_path: Path, checkpoint: Path, ids: list[str], *extra: object) -> list[object]:
    return ["unlearn", checkpoint, "-f", ids_file(tmp_path, ids), "-o", tmp_path / "u.safetensors", *extra]


# ------------------------------------------------------------------------------ outputs (finding 1, 2)


@pytest.mark.parametrize("flag", ["--json", "--report", "--forgotten-ids"])
def test_an_existing_side_output_needs_overwrite(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path, flag: str
) -> None:
    existing = tmp_path / "precious.txt"
    existing.write_text("keep me")
    result = run_cli(*unlearn_args(tmp_path, small_checkpoint, train_ids[:3], flag, existing))
    assert_bad_input(result, f"{flag} already exists", "--overwrite")
    assert existing.read_text() == "keep me" and not (tmp_path / "u.safetensors").exists()
    again = run_cli(*unlearn_args(tmp_path, small_checkpoint, train_ids[:3], flag, existing, "--overwrite", "-q"))
    assert again.exit_code == 0, again.stderr
    assert existing.read_text() != "keep me"


def test_audit_per_sample_may_not_replace_the_audited_checkpoint(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "t2.safetensors"
    target.write_bytes(small_checkpoint.read_bytes())
    ids = ids_file(tmp_path, train_ids[:3])
    result = run_cli("audit", target, "--forget", ids, "--per-sample", target, "--overwrite")
    assert_bad_input(result, "--per-sample would overwrite the checkpoint")
    assert target.read_bytes() == small_checkpoint.read_bytes()


def test_a_failing_side_output_publishes_nothing(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report that cannot be written (here: the disk fills while it is staged) leaves no
    checkpoint behind either, so a retry is not refused with 'already exists'."""
    from iau_cli.io import files

    real_stage = files.Outputs.stage

    def stage(self, path, write, **kwargs):  # noqa: ANN001
        if Path(path).suffix == ".md":
            raise files.OutputError(f"{path}: cannot write (no space left on device)")
        return real_stage(self, path, write, **kwargs)

    monkeypatch.setattr(files.Outputs, "stage", stage)
    result = run_cli(*unlearn_args(tmp_path, small_checkpoint, train_ids[:3], "--report", tmp_path / "r.md"))
    assert_bad_input(result, "no space left")
    assert not [p for p in tmp_path.iterdir() if p.name not in ("ids.txt",)]


def test_a_failed_publication_takes_back_what_it_published(tmp_path: Path) -> None:
    """Side outputs go first, the checkpoint last; if the checkpoint's name is taken meanwhile, the
    side outputs already published are removed and a replaced one is restored."""
    from iau_cli.errors import OutputError
    from iau_cli.io.files import Outputs

    old = tmp_path / "report.md"
    old.write_text("old report")
    with Outputs() as outputs:
        outputs.stage_text(tmp_path / "run.json", "{}")
        outputs.stage_text(old, "new report", overwrite=True)
        outputs.stage(tmp_path / "model.safetensors", lambda t: t.write_bytes(b"weights"), primary=True)
        (tmp_path / "model.safetensors").write_text("a concurrent writer got here first")
        with pytest.raises(OutputError, match="already exists"):
            outputs.publish()
    assert not (tmp_path / "run.json").exists()
    assert old.read_text() == "old report"
    assert (tmp_path / "model.safetensors").read_text() == "a concurrent writer got here first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "report.md"]


def test_safetensors_full_disk_error_is_one_line(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """safetensors reports a full disk as SafetensorError, not OSError."""
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args: object, **kwargs: object) -> None:
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    result = run_cli(*unlearn_args(tmp_path, small_checkpoint, train_ids[:3]))
    assert_bad_input(result, "u.safetensors: cannot write (no space left on device)")
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1))
    assert_bad_input(run_cli("train", config, "--out", tmp_path / "t.safetensors"), "no space left on device")
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".safetensors", ".tmp")]


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def test_a_real_full_disk_exits_2_for_train_and_unlearn(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    """On a real 4 KB tmpfs (needs root and mount rights; skipped otherwise)."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "4k"):
        pytest.skip("mounting a tmpfs needs root and mount rights")
    try:
        result = run_cli(*unlearn_args(tmp_path, small_checkpoint, train_ids[:3])[:-2], "-o", disk / "u.safetensors")
        assert_bad_input(result, "no space left on device")
        config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1, hidden=256))
        assert_bad_input(run_cli("train", config, "--out", disk / "t.safetensors"), "no space left on device")
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ------------------------------------------------------------------------- metadata (finding 4, 5)

CRAFTED = [
    ({"iau__forgotten": []}, "iau.forgotten is not a mapping"),
    ({"iau__data": []}, "iau.data is not a mapping"),
    ({"iau__data": None}, "iau.data is not a mapping"),
    ({"iau__model": []}, "iau.model is not a mapping"),
    ({"iau__model": None}, "iau.model is not a mapping"),
    ({"iau__lineage": {}}, "iau.lineage is not a list of events"),
    ({"iau__lineage": [1, 2]}, "a lineage event is malformed"),
    ({"iau__lineage": [{"event": "unlearn"}]}, "does not start with train or import"),
    ({"iau__format": "-7"}, "is not a version number"),
    ({"iau__ledger": [1]}, "iau.ledger is not a mapping"),
    ({"iau__ledger": {"count": "many", "params_sha256": "x"}}, "iau.ledger.count is not an integer"),
    ({"iau__forgotten": {"salt": "not hex at all!!", "hashes": ""}}, "corrupt"),
    ({"iau__forgotten": {"salt": "zz" * 16, "hashes": ""}}, "corrupt"),
    ({"iau__lineage": "[" * 100000 + "]" * 100000}, "nested too deeply"),
]


@pytest.mark.parametrize(("changes", "fragment"), CRAFTED)
def test_crafted_metadata_is_one_line_not_a_traceback(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path, changes: dict, fragment: str
) -> None:
    path = craft(tmp_path, small_checkpoint, **changes)
    result = run_cli(*unlearn_args(tmp_path, path, train_ids[:3]))
    assert_bad_input(result, str(path), fragment)
    assert not (tmp_path / "u.safetensors").exists()


def test_a_declared_model_larger_than_the_file_is_refused_without_building_it(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    """hidden 400,000 on 64 inputs would need ~100 MB of weights (plus Adam state); the file holds
    a few KB. Measured in a fresh process: refused, and its peak memory stays far below that."""
    meta = json.loads(read_metadata(small_checkpoint)["iau.model"])
    meta["args"] = {"hidden": [400_000]}
    train = json.loads(read_metadata(small_checkpoint)["iau.train"])
    path = craft(tmp_path, small_checkpoint, iau__model=meta, iau__train=train)
    probe = (
        "import resource, sys\n"
        "from iau_cli.cli.app import app\n"
        "sys.argv = ['iau'] + sys.argv[1:]\n"
        "try:\n    app(prog_name='iau')\n"
        "except SystemExit as e:\n"
        "    print('RC', e.code, 'PEAK_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    args = [str(a) for a in unlearn_args(tmp_path, path, train_ids[:3])]
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=300)
    assert "weights do not fit model 'mlp'" in done.stderr, done.stderr
    rc, peak = done.stdout.split()[-3], int(done.stdout.split()[-1])
    assert rc == "2"
    baseline = subprocess.run(
        [sys.executable, "-c", probe, *[str(a) for a in unlearn_args(tmp_path, small_checkpoint, train_ids[:3])]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    base_peak = int(baseline.stdout.split()[-1])
    assert peak < base_peak + 60, (peak, base_peak)  # the 400k-wide layer (≥ 100 MB) was never allocated


def test_integer_weights_are_refused_not_cast(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    state = {k: (v * 1000).to(torch.int64) for k, v in load_checkpoint(small_checkpoint).state_dict.items()}
    path = craft(tmp_path, small_checkpoint, tensors=state)
    assert_bad_input(run_cli(*unlearn_args(tmp_path, path, train_ids[:3])), "is stored as torch.int64", "not cast")


def test_ledger_tensors_of_the_wrong_shape_are_not_used(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    loaded = load_checkpoint(small_checkpoint)
    state = dict(loaded.state_dict)
    state.update({"__iau_ledger__." + k: torch.zeros(3) for k in loaded.ledger_tensors})
    path = craft(tmp_path, small_checkpoint, tensors=state)
    result = run_cli(*unlearn_args(tmp_path, path, train_ids[:3], "--json", "-", "-q"))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ledger"]["status"] == "mismatch"


def test_a_missing_fingerprint_is_an_error_unless_the_data_change_is_allowed(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    data = json.loads(read_metadata(small_checkpoint)["iau.data"])
    del data["fingerprint"]
    path = craft(tmp_path, small_checkpoint, iau__data=data)
    assert_bad_input(run_cli(*unlearn_args(tmp_path, path, train_ids[:3])), "records no data fingerprint")
    allowed = run_cli(*unlearn_args(tmp_path, path, train_ids[:3], "--allow-data-change", "-q"))
    assert allowed.exit_code == 0, allowed.stderr
    recorded = json.loads(read_metadata(tmp_path / "u.safetensors")["iau.data"])["fingerprint"]
    assert recorded["sha256"] and recorded["rows"]["train"]["count"] > 0  # the data as it is now


def test_nan_weights_in_the_input_are_blamed_on_the_input(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    state = dict(load_checkpoint(small_checkpoint).state_dict)
    first = sorted(state)[0]
    state[first] = state[first].clone()
    state[first].view(-1)[0] = float("nan")
    path = craft(tmp_path, small_checkpoint, tensors=state)
    result = run_cli(*unlearn_args(tmp_path, path, train_ids[:3]))
    assert_bad_input(result, str(path), "NaN or infinite weights")
    assert "step_size" not in result.stderr


def test_trusted_code_must_name_a_module_class_before_anything_is_called(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    marker = tmp_path / "called"
    meta = json.loads(read_metadata(small_checkpoint)["iau.model"])
    meta["name"] = "os:system"
    meta["args"] = {"command": f"touch {marker}"}
    path = craft(tmp_path, small_checkpoint, iau__model=meta)
    result = run_cli(*unlearn_args(tmp_path, path, train_ids[:3], "--trust-checkpoint-code"))
    assert_bad_input(result, "is not a torch.nn.Module class")
    assert not marker.exists()


# ------------------------------------------------------------------------------ training (finding 6)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("train.lr=inf", "train.lr: inf is not a finite number"),
        ("train.lr=.nan", "train.lr: nan is not a finite number"),
        ("data.std=.nan", "data.std: expected"),
        ("data.mean=[0.5, 0.5]", "data.mean has 2 values; give one per feature column (64) or one"),
        ("data.shape=[1, 7, 7]", "data.shape [1, 7, 7] holds 49 values but there are 64 feature columns"),
        ("data.resize=[16, 16]", "data.resize applies to images"),
        ("model.args={hidden: [-4]}", "args.hidden"),
    ],
)
def test_training_refuses_garbage_before_writing(tmp_path: Path, override: str, fragment: str) -> None:
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1))
    result = run_cli("train", config, "--out", tmp_path / "m.safetensors", "--set", override)
    assert_bad_input(result, fragment)
    assert not (tmp_path / "m.safetensors").exists()


def test_a_label_typo_does_not_build_a_million_class_model(tmp_path: Path) -> None:
    rows = ["id,label,a"] + [f"r{i},{i % 3},{i / 10}" for i in range(40)] + ["typo,1000000,0.5"]
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text("data:\n  train: rows.csv\nmodel:\n  name: logreg\ntrain:\n  epochs: 1\n")
    result = run_cli("train", config, "--out", tmp_path / "m.safetensors")
    assert_bad_input(result, "the largest label is 1,000,000 but there are only 4 distinct labels", "num_classes")
    config.write_text("data:\n  train: rows.csv\n  num_classes: 7\nmodel:\n  name: logreg\ntrain:\n  epochs: 1\n")
    assert_bad_input(run_cli("train", config, "--out", tmp_path / "m.safetensors"), "out of range for num_classes=7")


def test_training_that_diverges_writes_nothing(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=2, lr=1e30, optimizer="sgd"))
    result = run_cli("train", config, "--out", tmp_path / "m.safetensors")
    assert_bad_input(result, "NaN or infinite weights", "Lower train.lr")
    assert not (tmp_path / "m.safetensors").exists()


# ------------------------------------------------------------------------------ reads (finding 8)


def test_ids_reads_are_capped(small_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAU_MAX_IDS_BYTES", "1000")
    big = tmp_path / "big.txt"
    big.write_text("".join(f"id-{i}\n" for i in range(500)))
    args = ["unlearn", small_checkpoint, "-o", tmp_path / "u.safetensors", "-f"]
    assert_bad_input(run_cli(*args, big), "more than 1,000 bytes of ids", "IAU_MAX_IDS_BYTES")
    assert_bad_input(run_cli(*args, "/dev/zero"), "not a regular file")  # never read at all


def test_a_long_unknown_id_is_shortened_in_messages(small_checkpoint: Path, tmp_path: Path) -> None:
    long_id = "x" * 2_000_000
    result = run_cli("unlearn", small_checkpoint, "-f", ids_file(tmp_path, [long_id]), "-o", tmp_path / "u.safetensors")
    assert_bad_input(result, "(2,000,000 characters)")
    assert len(result.stderr) < 1000


# ------------------------------------------------------------------------------ finding 9


def test_usage_errors_are_one_line_from_the_real_entry_point(small_checkpoint: Path) -> None:
    for args, fragment in (
        (["unlearn", str(small_checkpoint), "--bogus"], "No such option: --bogus"),
        (["audit", str(small_checkpoint)], "Missing option '--forget'"),
        (["unlearn", str(small_checkpoint), "-f", "x", "--method", "bogus"], "'bogus' is not one of"),
    ):
        done = subprocess.run([sys.executable, "-m", "iau_cli", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("iau: error:") and fragment in lines[0], done.stderr
        assert "--help" in lines[0]


def test_ledger_commands_accept_allow_data_change(tmp_path: Path) -> None:
    rows, data, model = tiny_csv_model(tmp_path)
    data.write_text("\n".join(rows + ["new,1,0.5,0.5"]) + "\n")
    assert_bad_input(run_cli("ledger", "show", model), "--allow-data-change")
    assert run_cli("ledger", "show", model, "--allow-data-change", "-q").exit_code == 0
    refreshed = run_cli("ledger", "refresh", model, "--out", tmp_path / "r.safetensors", "--allow-data-change", "-q")
    assert refreshed.exit_code == 0, refreshed.stderr


def test_an_unreadable_csv_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text('id,label,a\n1,0,"unclosed\n2,1,3\n')
    config = tmp_path / "run.yaml"
    config.write_text("data:\n  train: bad.csv\nmodel:\n  name: logreg\n")
    done = subprocess.run(
        [sys.executable, "-m", "iau_cli", "train", str(config), "--out", str(tmp_path / "m.safetensors")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# ------------------------------------------------------------------------------ review findings


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"iau__format": "١"}, "is not a version number"),
        ({"iau__format": "9" * 5000}, "is not a version number"),
    ],
)
def test_odd_format_numbers_are_refused_briefly(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path, changes: dict, fragment: str
) -> None:
    path = craft(tmp_path, small_checkpoint, **changes)
    result = run_cli(*unlearn_args(tmp_path, path, train_ids[:3]))
    assert_bad_input(result, fragment)
    assert len(result.stderr) < 500


def test_crafted_lineage_fields_do_not_crash_the_audit(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    lineage = json.loads(read_metadata(small_checkpoint)["iau.lineage"])
    lineage[0]["time"] = ["not", "a", "time"]
    path = craft(tmp_path, small_checkpoint, iau__lineage=lineage)
    result = run_cli("audit", path, "--forget", ids_file(tmp_path, train_ids[:3]))
    assert_bad_input(result, "a lineage event's time is not text")


def test_a_crafted_since_event_is_corrupt_not_a_data_change(tmp_path: Path) -> None:
    rows, data, model = tiny_csv_model(tmp_path)
    meta = json.loads(read_metadata(model)["iau.data"])
    meta["fingerprint"]["since_event"] = True
    path = craft(tmp_path, model, iau__data=meta)
    data.write_text("\n".join(rows[:-1]) + "\n")
    assert_bad_input(run_cli("ledger", "show", path), "fingerprint is corrupt", "since_event")


def test_ctrl_c_and_a_closed_stdout_from_the_real_entry_point(small_checkpoint: Path, tmp_path: Path) -> None:
    """Ctrl-C → 130 and one line; a reader that went away → one line and 2, not a traceback."""
    import signal
    import time

    ids = ids_file(tmp_path, ["digit-0001"])
    slow = subprocess.Popen(
        [sys.executable, "-c", "import time, sys\nfrom iau_cli.cli import app\n"
         "import iau_cli.recipes.unlearn as u\norig = u.make_unlearned\n"
         "def slow(*a, **k):\n    print('STARTED', flush=True, file=sys.stderr); time.sleep(30)\n"
         "u.make_unlearned = slow\nsys.argv = ['iau'] + sys.argv[1:]\napp.main()\n",
         "unlearn", str(small_checkpoint), "-f", str(ids), "-o", str(tmp_path / "u.safetensors")],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert slow.stderr is not None
    deadline = time.time() + 60
    while "STARTED" not in slow.stderr.readline() and time.time() < deadline:
        pass
    slow.send_signal(signal.SIGINT)
    rest = slow.stderr.read()
    assert slow.wait(timeout=60) == 130 and rest.strip() == "iau: interrupted", rest

    reader = subprocess.Popen(
        [sys.executable, "-m", "iau_cli", "lineage", str(small_checkpoint), "--json", "-", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert reader.stdout is not None
    reader.stdout.close()  # the reader goes away before iau writes
    err = reader.stderr.read() if reader.stderr else ""
    assert reader.wait(timeout=60) == 2, err
    assert err.strip().splitlines() == [
        "iau: error: standard output was closed (broken pipe); files, if any, were written"
    ]


def test_the_error_json_is_written_when_another_output_fails_the_guard(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    (tmp_path / "r.md").write_text("an old report")
    result = run_cli(*unlearn_args(tmp_path, small_checkpoint, train_ids[:3], "--report", tmp_path / "r.md",
                                   "--json", tmp_path / "e.json"))  # fmt: skip
    assert_bad_input(result, "--report already exists")
    assert json.loads((tmp_path / "e.json").read_text())["error"]["kind"] == "output"
    assert (tmp_path / "r.md").read_text() == "an old report" and not (tmp_path / "u.safetensors").exists()


def test_a_torch_save_file_is_named_for_what_it_is_and_never_unpickled(tmp_path: Path) -> None:
    for name, payload in (("m.pt", {"w": torch.zeros(2)}), ("weights.bin", {"w": torch.ones(1)})):
        path = tmp_path / name
        torch.save(payload, path)  # a zip archive: read as bytes by iau, never loaded
        result = run_cli("unlearn", path, "-f", "-", input="a\n")
        assert_bad_input(result, "a PyTorch pickle (torch.save)", "weights_only=True", "--config")
    garbage = tmp_path / "junk.safetensors"
    garbage.write_bytes(b"not anything")
    assert_bad_input(run_cli("unlearn", garbage, "-f", "-", input="a\n"), "not a readable safetensors file")


def test_the_output_guard_has_no_gap_for_built_in_data_or_special_files(tmp_path: Path) -> None:
    """Findings 2 and 4 of the adversarial trial: the installed built-in dataset, a FIFO, a
    symlink to a device and a dangling symlink are never replaced, with --overwrite or not."""
    builtin = PACKAGE / "builtin" / "digits_train.parquet"
    before = builtin.read_bytes()
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1))
    out = tmp_path / "m.safetensors"
    refused = run_cli("train", config, "--out", out, "--json", builtin, "--overwrite")
    assert_bad_input(refused, "built-in data folder")
    assert builtin.read_bytes() == before and not out.exists()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "to-null").symlink_to("/dev/null")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for target, why in (
        (fifo, "not a regular file"),
        (tmp_path / "to-null", "not a regular file"),
        (tmp_path / "dangling", "symlink to nothing"),
    ):
        assert_bad_input(run_cli("train", config, "--out", out, "--report", target, "--overwrite"), why)
    assert fifo.is_fifo() and (tmp_path / "to-null").is_symlink() and not out.exists()


def test_the_key_file_is_read_bounded_and_only_if_regular(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iau_cli.errors import ConfigError
    from iau_cli.io.forgotten import operator_keys

    monkeypatch.setenv("IAU_ID_KEY_FILE", "/dev/zero")
    with pytest.raises(ConfigError, match="not a regular file"):
        operator_keys()
    big = tmp_path / "keys.txt"
    big.write_text("k" * 100 + "\n" + "x" * 70_000)
    monkeypatch.setenv("IAU_ID_KEY_FILE", str(big))
    with pytest.raises(ConfigError, match="larger than"):
        operator_keys()


def test_a_fifo_or_device_as_an_input_is_one_line_not_a_hang(small_checkpoint: Path, tmp_path: Path) -> None:
    """Finding 10: /dev/zero as config, a FIFO as checkpoint, ids file or config — refused before
    anything is read (a FIFO would block forever, a device would be read without end)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    ids = tmp_path / "ids.txt"
    ids.write_text("a\n")
    assert_bad_input(run_cli("train", "/dev/zero", "--out", tmp_path / "m.safetensors"), "not a regular file")
    assert_bad_input(run_cli("train", fifo, "--out", tmp_path / "m.safetensors"), "not a regular file")
    assert_bad_input(run_cli("unlearn", fifo, "-f", ids), "not a regular file")
    assert_bad_input(
        run_cli("unlearn", small_checkpoint, "-f", fifo, "-o", tmp_path / "u.safetensors"), "not a regular file"
    )
    assert_bad_input(run_cli("audit", small_checkpoint, "-f", fifo), "not a regular file")


def test_yaml_bombs_duplicates_and_depth_are_one_line(small_checkpoint: Path, tmp_path: Path) -> None:
    """Findings 9 and 13: a 700-byte alias bomb (in a file and through --set), a duplicate
    top-level key, YAML nested 20,000 deep — each one line, fast."""
    levels = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('l0: &l0 ["lol"]\n' + levels)
    assert_bad_input(run_cli("train", bomb, "--out", tmp_path / "m.safetensors"), "aliases", "not allowed")
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1))
    out = tmp_path / "m.safetensors"
    assert_bad_input(run_cli("train", config, "--out", out, "--set", "train.epochs=*x"), "aliases")
    twice = tmp_path / "twice.yaml"
    twice.write_text(config.read_text() + "train:\n  epochs: 7\n")
    assert_bad_input(run_cli("train", twice, "--out", out), "duplicate key 'train'")
    deep = tmp_path / "deep.yaml"
    deep.write_text("x: " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert_bad_input(run_cli("train", deep, "--out", out), "nested more than")
    assert not out.exists()


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("IAU_MAX_IDS_BYTES", "1e20", "IAU_MAX_IDS_BYTES"),
        ("IAU_MAX_IDS_BYTES", "-5", "IAU_MAX_IDS_BYTES"),
        ("IAU_MEMORY_BUDGET", "inf", "IAU_MEMORY_BUDGET"),
        ("IAU_MEMORY_BUDGET", "1e400", "IAU_MEMORY_BUDGET"),
        ("LOCAL_WORLD_SIZE", "abc", "LOCAL_WORLD_SIZE"),
        ("WORLD_SIZE", "two", "WORLD_SIZE"),
        ("WORLD_SIZE", "2", "run under torchrun"),
    ],
)
def test_every_number_from_the_environment_is_validated(
    small_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    """Finding 13: each of these was a traceback (exit 1); one validator parses them all."""
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, value)
    ids = tmp_path / "ids.txt"
    ids.write_text("nobody\n")
    result = run_cli("unlearn", small_checkpoint, "-f", ids, "-o", tmp_path / "u.safetensors", "--allow-missing")
    assert_bad_input(result, fragment)


def test_config_numbers_and_odd_output_names_are_one_line(tmp_path: Path) -> None:
    """Finding 13: seeds out of range, a scale that overflows float32 (it was blamed on lr), an
    --out that is a symlink to itself, a 300-byte name, --json naming the run's own lock file."""
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1))
    out = tmp_path / "m.safetensors"
    for setting, fragment in (
        ("train.seed=-1", "seed"),
        ("train.seed=1180591620717411303424", "seed"),
        ("data.scale=1e39", "scale"),
    ):
        assert_bad_input(run_cli("train", config, "--out", out, "--set", setting), fragment)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert_bad_input(run_cli("train", config, "--out", tmp_path / "loop"), "--out")
    assert_bad_input(run_cli("train", config, "--out", tmp_path / ("x" * 300)), "--out")
    assert_bad_input(run_cli("train", config, "--out", out, "--json", tmp_path / ".m.safetensors.iau-lock"), "lock")
    assert not out.exists()


def test_a_forged_forgotten_record_is_refused(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    """Finding 6: emptying a 2-id unlearn output's forgotten record made a later retrain train on
    the 2 forgotten rows again; the record is bound to the lineage (count and digest)."""
    from safetensors.torch import load_file, save_file

    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(train_ids[:2]) + "\n")
    child = tmp_path / "child.safetensors"
    assert run_cli("unlearn", small_checkpoint, "-f", ids, "-o", child, "-q").exit_code == 0
    metadata = read_metadata(child)
    record = json.loads(metadata["iau.forgotten"])
    tensors = load_file(str(child))
    for name, forged in (
        ("emptied", {**record, "count": 0, "hashes": ""}),
        ("swapped", {**record, "salt": "00" * (len(record["salt"]) // 2)}),  # same count, other digest
    ):
        path = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(path), metadata={**metadata, "iau.forgotten": json.dumps(forged)})
        other = tmp_path / "other.txt"
        other.write_text(train_ids[5] + "\n")
        result = run_cli("unlearn", path, "-f", other, "--method", "retrain", "-o", tmp_path / f"{name}-r.safetensors")
        assert_bad_input(result, "edited after iau wrote it")


def test_a_usage_error_under_json_stdout_still_writes_the_error_object() -> None:
    """Finding 12: `--method bogus --json -` left stdout empty (typer refused it before iau ran)."""
    for json_flag in (["--json", "-"], ["--json=-"]):
        done = subprocess.run(
            [sys.executable, "-m", "iau_cli", "unlearn", "m.safetensors", "-f", "-", "--method", "bogus", *json_flag],
            capture_output=True,
            text=True,
            input="",
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert json.loads(done.stdout)["error"]["kind"] == "bad_input"
        assert "bogus" in json.loads(done.stdout)["error"]["message"]


def test_a_crafted_data_config_cannot_ask_for_terabytes(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    """Finding 8: an 80 KB checkpoint whose data config asked for 40000×40000 images made unlearn
    try to allocate 9 TB (a traceback); the same numbers in a user's config did the same."""
    from safetensors.torch import load_file, save_file

    metadata = read_metadata(small_checkpoint)
    data = json.loads(metadata["iau.data"])
    data["config"].update(shape=[1, 8, 8], resize=[40000, 40000])
    crafted = tmp_path / "crafted.safetensors"
    save_file(load_file(str(small_checkpoint)), str(crafted), metadata={**metadata, "iau.data": json.dumps(data)})
    ids = tmp_path / "ids.txt"
    ids.write_text(train_ids[0] + "\n")
    assert_bad_input(run_cli("unlearn", crafted, "-f", ids, "-o", tmp_path / "u.safetensors"), "resize")
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1))
    assert_bad_input(
        run_cli("train", config, "--out", tmp_path / "m.safetensors", "--set", "data.resize=[40000,40000]"), "resize"
    )


def test_two_trains_to_one_output_do_not_race(tmp_path: Path) -> None:
    """Finding 3: `iau train` took no output lock; two runs to one --out --overwrite both ran."""
    import time

    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=400))
    out = tmp_path / "m.safetensors"
    lock = tmp_path / ".m.safetensors.iau-lock"
    first = subprocess.Popen([sys.executable, "-m", "iau_cli", "train", str(config), "--out", str(out), "-q"])
    try:
        deadline = time.time() + 120
        while not lock.exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert lock.exists(), "the first train never took its lock"
        second = run_cli("train", config, "--out", out, "--overwrite", "--set", "train.epochs=1")
        assert_bad_input(second, "another iau run is writing this output")
    finally:
        first.terminate()
        first.wait(60)
    assert not out.exists() and not lock.exists()  # the terminated run left nothing behind
