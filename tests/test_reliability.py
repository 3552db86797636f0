"""Unattended use: bad input, injected faults, sequential requests, and no code run from a checkpoint."""

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iau_cli.config import TrainConfig, from_dict
from iau_cli.errors import ConfigError, IdsError
from iau_cli.io.checkpoint import load_checkpoint, read_metadata
from iau_cli.io.ids import parse_forget_ids
from iau_cli.recipes.train import restore
from iau_cli.recipes.unlearn import UnlearnRequest, unlearn

from .conftest import digits_config, write_yaml
from .helpers import assert_bad_input, run_cli

PACKAGE = Path(__file__).resolve().parent.parent / "iau_cli"


def ids_file(tmp_path: Path, ids: list[str], name: str = "ids.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(ids) + "\n")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# ---------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x00\x01binary\x00", "binary"),
        (b"digit-0001\n\xff\xfe\xfd\n", "not UTF-8"),
        (b"\n# only comments\n\n", "no ids found"),
        (b"nobody\nnothing\n", "not rows of this model"),
    ],
)
def test_bad_ids_files_exit_2_and_write_nothing(
    small_checkpoint: Path, tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "ids.txt"
    path.write_bytes(content)
    before = snapshot(tmp_path)
    assert_bad_input(
        run_cli("unlearn", small_checkpoint, "--forget", path, "--out", tmp_path / "u.safetensors"), fragment
    )
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("content", [b"", b"\n# only comments\n\n"])
def test_an_empty_day_with_allow_missing_is_a_no_op_copy(
    small_checkpoint: Path, tmp_path: Path, content: bytes
) -> None:
    """The most common day of a retention job has no requests: with --allow-missing it is exit 0
    and a byte-identical copy (without it, exit 2 and the message says how: see the test above)."""
    path = tmp_path / "ids.txt"
    path.write_bytes(content)
    out = tmp_path / "u.safetensors"
    result = run_cli(
        "unlearn", small_checkpoint, "--forget", path, "--out", out, "--allow-missing", "--json", "-", "-q"
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["changed"] is False and payload["message"].startswith("nothing to forget: the request is empty")
    assert out.read_bytes() == small_checkpoint.read_bytes()
    refused = run_cli("unlearn", small_checkpoint, "--forget", path, "--out", tmp_path / "v.safetensors")
    assert_bad_input(refused, "no ids found", "--allow-missing")


def test_ids_matching_nothing_are_refused_unless_missing_ids_are_allowed(
    small_checkpoint: Path, tmp_path: Path
) -> None:
    """A retention job's day whose ids match no training row (users never in the data) is a normal
    day with --allow-missing: exit 0, nothing changed, a byte-identical copy to chain on."""
    path = ids_file(tmp_path, ["nobody", "nothing"])
    refused = run_cli("unlearn", small_checkpoint, "--forget", path, "--out", tmp_path / "u.safetensors")
    assert_bad_input(refused, "2 of 2 id(s) are not rows of this model's data", "id column 'id'", "--allow-missing")
    allowed = run_cli(
        "unlearn", small_checkpoint, "--forget", path, "--out", tmp_path / "u.safetensors", "--allow-missing",
        "--json", "-", "-q",
    )  # fmt: skip
    assert allowed.exit_code == 0, allowed.stderr
    payload = json.loads(allowed.stdout)
    assert payload["changed"] is False and payload["ids"]["unknown"] == 2 and payload["ids"]["forgotten_now"] == 0
    assert (tmp_path / "u.safetensors").read_bytes() == small_checkpoint.read_bytes()


def test_a_million_ids_work(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    """(How fast is a benchmark's business, never a test's: tests are not timed.)"""
    ids = [f"user-{i:07d}" for i in range(1_000_000)] + train_ids[:3]
    path = ids_file(tmp_path, ids)
    result = run_cli(
        "unlearn",
        small_checkpoint,
        "-f",
        path,
        "-o",
        tmp_path / "u.safetensors",
        "--allow-missing",
        "-q",
        "--json",
        "-",
    )
    assert result.exit_code == 0, result.stderr
    assert '"unknown": 1000000' in result.stdout and '"forgotten_now": 3' in result.stdout


@pytest.mark.parametrize("damage", ["truncate", "garbage", "newer"])
def test_damaged_checkpoints_exit_2(small_checkpoint: Path, train_ids: list[str], tmp_path: Path, damage: str) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "damaged.safetensors"
    raw = small_checkpoint.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
        fragment = "truncated or corrupt"
    elif damage == "garbage":
        path.write_bytes(b"PK\x03\x04 this is a zip, not a checkpoint")
        fragment = "truncated or corrupt"
    else:
        metadata = read_metadata(small_checkpoint)
        metadata["iau.format"] = "2"
        save_file(load_checkpoint(small_checkpoint).state_dict, str(path), metadata=metadata)
        fragment = "newer than this iau supports"
    result = run_cli(
        "unlearn", path, "--forget", ids_file(tmp_path, train_ids[:3]), "--out", tmp_path / "u.safetensors"
    )
    assert_bad_input(result, str(path), fragment)
    assert not (tmp_path / "u.safetensors").exists()


def test_changed_training_data_is_refused_unless_allowed(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    rows = ["id,label,a,b"] + [f"r{i},{i % 2},{rng.normal():.3f},{rng.normal():.3f}" for i in range(60)]
    data = tmp_path / "rows.csv"
    data.write_text("\n".join(rows) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text(f"data:\n  train: {data}\nmodel:\n  name: logreg\ntrain:\n  epochs: 2\n")
    model = tmp_path / "m.safetensors"
    assert run_cli("train", config, "--out", model, "-q").exit_code == 0
    train_id = next(i for i in restore(model).data.train.ids)
    data.write_text("\n".join(rows[:-1]) + "\n")  # one row less
    ids = ids_file(tmp_path, [train_id])
    assert_bad_input(
        run_cli("unlearn", model, "-f", ids, "-o", tmp_path / "u.safetensors"), "data changed", "--allow-data-change"
    )
    refused = run_cli("unlearn", model, "-f", ids, "-o", tmp_path / "u.safetensors", "--json", "-")
    assert json.loads(refused.stdout)["error"]["kind"] == "data_changed"
    assert not (tmp_path / "u.safetensors").exists()
    allowed = run_cli("unlearn", model, "-f", ids, "-o", tmp_path / "u.safetensors", "--allow-data-change", "-q")
    assert allowed.exit_code == 0, allowed.stderr


def test_every_failure_still_writes_json_with_a_stable_kind(
    tmp_path: Path, small_checkpoint: Path, train_ids: list[str]
) -> None:
    ids = ids_file(tmp_path, train_ids[:3])
    (tmp_path / "taken.safetensors").write_bytes(b"x")
    cases = [
        (["unlearn", tmp_path / "missing.safetensors", "-f", ids], "checkpoint"),
        (["unlearn", small_checkpoint, "-f", ids_file(tmp_path, ["nobody"], "n.txt")], "bad_input"),
        (["unlearn", small_checkpoint, "-f", ids, "-o", tmp_path / "taken.safetensors"], "output"),
        (["audit", tmp_path / "missing.safetensors", "-f", ids], "checkpoint"),
    ]
    for args, kind in cases:
        result = run_cli(*args, "--json", "-")
        assert result.exit_code == 2, (args, result.stderr)
        error = json.loads(result.stdout)["error"]
        assert error["kind"] == kind and error["message"] in result.stderr
    # To a file as well, and nothing else is written.
    result = run_cli(
        "unlearn", small_checkpoint, "-f", ids_file(tmp_path, ["nobody"], "n.txt"), "--json", tmp_path / "e.json"
    )
    assert result.exit_code == 2 and json.loads((tmp_path / "e.json").read_text())["error"]["kind"] == "bad_input"


def test_unlearn_config_errors_are_reported_together(
    tmp_path: Path, small_checkpoint: Path, train_ids: list[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  nme: mlp\ntrain:\n  epochs: many\n")
    result = run_cli("unlearn", small_checkpoint, "-f", ids_file(tmp_path, train_ids[:2]), "--config", config)
    assert_bad_input(result, "2 problem(s)", "model.nme: unknown key", "train.epochs: expected an integer")


# ---------------------------------------------------------------------------------------- faults

SLOW_PUBLISH = """
import sys, time
import iau_cli.io.files as files
original = files.Outputs.publish
def slow_publish(self):
    print("PUBLISHING", flush=True)
    time.sleep(30)
    original(self)
files.Outputs.publish = slow_publish
from iau_cli.cli.app import app
sys.argv = ["iau"] + sys.argv[1:]
app(prog_name="iau")
"""


def start_slow_unlearn(checkpoint: Path, ids: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_PUBLISH, "unlearn", str(checkpoint), "-f", str(ids), "-o", str(out), "-q", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    for line in process.stdout:  # no clock: the run reaches its write, or ends and says why
        if "PUBLISHING" in line:
            return process
    process.wait()
    raise AssertionError("the unlearn subprocess ended before its write: " + process.stderr.read())


def test_a_kill_mid_write_leaves_the_previous_checkpoint_intact(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "model.v2.safetensors"
    first = run_cli("unlearn", small_checkpoint, "-f", ids_file(tmp_path, train_ids[:3]), "-o", out, "-q")
    assert first.exit_code == 0
    previous = out.read_bytes()
    process = start_slow_unlearn(small_checkpoint, ids_file(tmp_path, train_ids[5:9], "more.txt"), out, "--overwrite")
    process.kill()
    process.wait()
    assert out.read_bytes() == previous  # untouched
    load_checkpoint(out)  # and readable
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "expected the killed writer's temp file"
    # The next run to that output removes what the killed run left behind.
    again = run_cli(
        "unlearn",
        small_checkpoint,
        "-f",
        ids_file(tmp_path, train_ids[5:9], "more.txt"),
        "-o",
        out,
        "--overwrite",
        "-q",
    )
    assert again.exit_code == 0, again.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_runs_to_one_output_one_wins_the_other_exits_2(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "shared.safetensors"
    process = start_slow_unlearn(small_checkpoint, ids_file(tmp_path, train_ids[:4]), out)
    try:
        loser = run_cli("unlearn", small_checkpoint, "-f", ids_file(tmp_path, train_ids[10:14], "b.txt"), "-o", out)
        assert_bad_input(loser, "another iau run is writing this output")
    finally:
        process.terminate()
        process.wait()


def test_the_output_lock_spares_a_users_own_lock_file_and_leaves_nothing(tmp_path: Path) -> None:
    from iau_cli.errors import OutputError
    from iau_cli.io.files import output_lock

    out = tmp_path / "model.safetensors"
    users = tmp_path / "model.safetensors.lock"
    users.write_text("mine")
    with output_lock(out):
        with pytest.raises(OutputError, match="another iau run"):
            with output_lock(out):
                pass
        assert (tmp_path / ".model.safetensors.iau-lock").exists()
    assert users.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors.lock"]


def test_a_run_that_locked_an_unlinked_lock_file_starts_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flock+unlink race: B opens the lock file, A unlinks it on finishing, C creates a new one.
    B's flock on the old file succeeds, but the path is no longer B's file: B must not proceed."""
    import fcntl

    from iau_cli.errors import OutputError
    from iau_cli.io import files

    out = tmp_path / "model.safetensors"
    lock_path = tmp_path / ".model.safetensors.iau-lock"
    real_flock = fcntl.flock
    holder: list[int] = []

    def flock_after_a_swap(fd: int, op: int) -> None:
        if not holder:  # between B's open and B's flock: A unlinks, C creates and locks a new file
            lock_path.unlink()
            holder.append(os.open(lock_path, os.O_RDWR | os.O_CREAT))
            real_flock(holder[0], fcntl.LOCK_EX)
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_swap)
    try:
        with pytest.raises(OutputError, match="another iau run"):
            with files.output_lock(out):
                pass
    finally:
        os.close(holder[0])


@pytest.mark.parametrize(("errno_name", "fragment"), [("ENOSPC", "no space left"), ("EROFS", "read-only")])
def test_full_disk_or_read_only_folder_exit_2(
    small_checkpoint: Path,
    train_ids: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    errno_name: str,
    fragment: str,
) -> None:
    import errno

    import safetensors.torch

    def failing_save(*args: object, **kwargs: object) -> None:
        raise OSError(getattr(errno, errno_name), os.strerror(getattr(errno, errno_name)))

    monkeypatch.setattr(safetensors.torch, "save_file", failing_save)
    out = tmp_path / "u.safetensors"
    assert_bad_input(run_cli("unlearn", small_checkpoint, "-f", ids_file(tmp_path, train_ids[:3]), "-o", out), fragment)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_missing_output_folder_exit_2(small_checkpoint: Path, train_ids: list[str], tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "folder" / "u.safetensors"
    assert_bad_input(
        run_cli("unlearn", small_checkpoint, "-f", ids_file(tmp_path, train_ids[:3]), "-o", out), "does not exist"
    )


# ---------------------------------------------------------------------------------------- sequential


def test_twenty_sequential_requests_keep_their_promises(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    current = small_checkpoint
    requested: list[str] = []
    for step in range(20):
        batch = train_ids[step * 5 : step * 5 + 5]
        requested += batch
        out = tmp_path / f"v{step + 1}.safetensors"
        request = UnlearnRequest(
            str(current), parse_forget_ids("\n".join(batch).encode(), f"r{step}"), out=str(out), device="cpu"
        )
        result = unlearn(request)
        assert result.ids.forgotten_now == 5
        current = out
    restored = restore(current)
    assert [e["event"] for e in restored.meta.lineage] == ["train"] + ["unlearn"] * 20
    assert all(restored.meta.forgotten.contains(i) for i in requested)
    learned = {restored.data.train.ids[r] for r in restored.partition().learn}
    assert not learned & set(requested)
    ids = ids_file(tmp_path, requested, "all.txt")
    audit = run_cli("audit", current, "-f", ids, "--json", "-", "-q")
    assert (
        '"name": "lineage chain"' in audit.stdout and '"passed": true' in audit.stdout.split('"lineage chain"')[1][:200]
    )
    replay = run_cli(
        "unlearn", current, "-f", ids_file(tmp_path, requested[:5], "replay.txt"), "-o", tmp_path / "replay.safetensors"
    )
    assert replay.exit_code == 0
    assert "nothing to forget" in replay.stdout
    assert (tmp_path / "replay.safetensors").read_bytes() == current.read_bytes()


# ---------------------------------------------------------------------------------------- security


def test_no_pickle_and_no_unsafe_loading_in_the_package() -> None:
    forbidden_calls = {
        ("torch", "load"),
        ("pickle", "load"),
        ("pickle", "loads"),
        ("yaml", "load"),
        ("yaml", "unsafe_load"),
    }
    problems = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                )
                if any(n and n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib") for n in names):
                    problems.append(f"{path.name}: imports a pickle module")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
            ):
                if (node.func.value.id, node.func.attr) in forbidden_calls:
                    problems.append(f"{path.name}:{node.lineno}: {node.func.value.id}.{node.func.attr}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
                problems.append(f"{path.name}:{node.lineno}: {node.func.id}")
    assert problems == []


def test_a_checkpoint_never_makes_iau_import_code(
    tmp_path: Path, train_ids: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported.txt"
    (tmp_path / "evil_models.py").write_text(
        "import pathlib, torch\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self, input_shape, num_classes):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(input_shape[0], num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1))
    config.write_text(
        config.read_text().replace("name: mlp", "name: evil_models:Net").replace("hidden:\n    - 16", "{}")
    )
    model = tmp_path / "m.safetensors"
    trained = run_cli("train", config, "--out", model, "-q")
    assert trained.exit_code == 0, trained.stderr  # the user's own config may import the user's code
    marker.unlink()
    sys.modules.pop("evil_models", None)
    # The same checkpoint handed to someone who never named that code: their trust file is empty.
    monkeypatch.setenv("IAU_TRUST_FILE", str(tmp_path / "elsewhere" / "trusted-code"))
    ids = ids_file(tmp_path, train_ids[:3])
    refused = run_cli("unlearn", model, "-f", ids, "-o", tmp_path / "u.safetensors")
    assert_bad_input(refused, "evil_models:Net", "--trust-checkpoint-code")
    assert not marker.exists()
    trusted = run_cli("unlearn", model, "-f", ids, "-o", tmp_path / "u.safetensors", "--trust-checkpoint-code", "-q")
    assert trusted.exit_code == 0, trusted.stderr
    assert marker.exists()


# ---------------------------------------------------------------------------------------- properties

id_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(id_text, min_size=1, max_size=40), st.sampled_from(["\n", "\r\n"]))
def test_ids_parser_properties(ids: list[str], newline: str) -> None:
    expected = []
    for item in ids:
        stripped = item.strip()
        if stripped and not stripped.startswith("#") and stripped not in expected:
            expected.append(stripped)
    raw = newline.join(ids).encode()
    if any(i.strip().startswith('"') for i in ids):  # the quoting rule: tested below
        return
    if not expected:
        with pytest.raises(IdsError):
            parse_forget_ids(raw, "ids")
        return
    request = parse_forget_ids(raw, "ids")
    assert request.ids == expected  # unique, stripped, in file order
    assert len(request.ids) + request.duplicates == sum(1 for i in ids if i.strip() and not i.strip().startswith("#"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=30))
def test_every_id_can_be_written_and_read_back(ids: list[str]) -> None:
    """Any id a dataset can hold — spaces at its ends, a leading # or quote, line breaks, control
    characters — survives format_ids → parse_forget_ids (issue 14: every training row erasable)."""
    from iau_cli.io.ids import format_ids

    request = parse_forget_ids(format_ids(ids).encode(), "ids")
    assert request.ids == list(dict.fromkeys(ids))


def test_a_line_starting_with_a_quote_must_be_one_json_string() -> None:
    assert parse_forget_ids(b'"  #padded"\n"two\\nlines"\nplain\n', "ids").ids == ["  #padded", "two\nlines", "plain"]
    with pytest.raises(IdsError, match="line 2 starts with .* but is not one JSON string"):
        parse_forget_ids(b'ok\n"unterminated\n', "ids")


config_values = st.one_of(
    st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5), st.booleans(), st.none()
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["lr", "epochs", "seed", "optimizer", "gr_alpha", "bogus", "batch_size"]), config_values
    )
)
def test_config_loader_never_crashes_and_reports_every_bad_key(mapping: dict) -> None:
    try:
        config = from_dict(TrainConfig, mapping)
    except ConfigError as exc:
        message = str(exc)
        if "bogus" in mapping:
            assert "bogus: unknown key" in message
        return
    assert isinstance(config, TrainConfig)
    assert "bogus" not in mapping
    assert config.lr > 0 and config.epochs >= 1 and config.batch_size >= 1
    assert math.isfinite(config.lr)  # inf and nan are refused at config time (issue 15)


def test_only_this_hosts_dead_writers_temps_are_removed(tmp_path: Path) -> None:
    """On a shared file system a PID means nothing on another host: its temps are left alone."""
    from iau_cli.io.files import _writer_tag, remove_stale_temps, temp_path

    out = tmp_path / "model.safetensors"
    dead = 2**22 + 12345  # above the default pid_max: no such process
    host = _writer_tag().split("-")[0]
    ours_dead = tmp_path / f".model.safetensors.{host}-{dead}.abcd.tmp"
    other_host = tmp_path / f".model.safetensors.0123abcd-{dead}.abcd.tmp"
    ours_alive = temp_path(out)
    for path in (ours_dead, other_host, ours_alive):
        path.write_bytes(b"partial")
    remove_stale_temps(out)
    assert not ours_dead.exists()
    assert other_host.exists() and ours_alive.exists()


def test_ledger_refresh_never_modifies_its_input(small_checkpoint: Path, tmp_path: Path) -> None:
    before = small_checkpoint.read_bytes()
    assert run_cli("ledger", "refresh", small_checkpoint).exit_code == 2  # --out is required
    assert_bad_input(
        run_cli("ledger", "refresh", small_checkpoint, "--out", small_checkpoint, "--overwrite"),
        "would overwrite the checkpoint",
    )
    assert small_checkpoint.read_bytes() == before
    result = run_cli("ledger", "refresh", small_checkpoint, "--out", tmp_path / "fresh.safetensors", "-q")
    assert result.exit_code == 0, result.stderr
    assert run_cli("ledger", "show", tmp_path / "fresh.safetensors", "--json", "-", "-q").stdout.count('"fresh"') == 1


def test_odd_ids_lines_lone_surrogates_cr_line_ends_and_a_leading_bom() -> None:
    from iau_cli.io.ids import format_ids

    with pytest.raises(IdsError, match="line 2 is not valid Unicode"):
        parse_forget_ids(b'ok\n"\\ud800"\n', "ids")
    assert parse_forget_ids(b"a\rb\r\nc\n", "ids").ids == ["a", "b", "c"]
    assert parse_forget_ids(format_ids(["\ufeffx", "y"]).encode(), "ids").ids == ["\ufeffx", "y"]


def test_an_error_record_is_the_one_output_a_rerun_replaces_without_overwrite(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path
) -> None:
    ids = ids_file(tmp_path, train_ids[:2])
    record = tmp_path / "run.json"
    (tmp_path / "taken.safetensors").write_bytes(b"in the way")
    failed = run_cli("unlearn", small_checkpoint, "-f", ids, "-o", tmp_path / "taken.safetensors", "--json", record)
    assert failed.exit_code == 2 and json.loads(record.read_text())["error"]["kind"] == "output"
    # The retry, fixed, with the same --json and no --overwrite: the error record gives way.
    retried = run_cli("unlearn", small_checkpoint, "-f", ids, "-o", tmp_path / "u.safetensors", "--json", record, "-q")
    assert retried.exit_code == 0, retried.stderr
    success = record.read_bytes()
    assert json.loads(success)["changed"] is True
    # A success record is not an error record: a later run needs --overwrite, and its failure
    # leaves the success record as it was (no error JSON over it).
    again = run_cli("unlearn", small_checkpoint, "-f", ids, "-o", tmp_path / "v.safetensors", "--json", record)
    assert_bad_input(again, "already exists")
    assert record.read_bytes() == success and not (tmp_path / "v.safetensors").exists()
    # Something that only looks like an error record (another key beside "error") is no error record.
    record.write_text(json.dumps({"error": {"kind": "output", "message": "x"}, "changed": True}))
    assert_bad_input(
        run_cli("unlearn", small_checkpoint, "-f", ids, "-o", tmp_path / "w.safetensors", "--json", record),
        "already exists",
    )


_KILLED_PUBLISHER = """
import os, sys
from pathlib import Path
from iau_cli.io.files import Outputs

folder, kill_at = Path(sys.argv[1]), int(sys.argv[2])
real = {name: getattr(os, name) for name in ("link", "replace", "rename", "unlink")}
calls = [0]

def wrap(name):
    def call(*args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os._exit(137)  # as SIGKILL: no cleanup, no finally
        return real[name](*args, **kwargs)
    return call

with Outputs() as outputs:
    outputs.stage_text(folder / "k.json", "new json", overwrite=True)
    outputs.stage_text(folder / "k.md", "new report")
    outputs.stage(folder / "k.safetensors", lambda t: t.write_text("new model"), overwrite=True, primary=True)
    for name in real:
        setattr(os, name, wrap(name))
    outputs.publish()
print("published after", calls[0], "steps")
"""


def test_a_kill_at_every_step_of_publication_leaves_all_or_nothing_after_the_rerun(tmp_path: Path) -> None:
    """Finding 5: SIGKILL at the third link() left k.json and k.md without the checkpoint. Kill at
    every link / rename / unlink of publication in turn; the next run's check of any output rolls
    the set back (before the commit point) or forward (after it): never a mix, nothing left over."""
    from iau_cli.io.files import check_writable

    old = {"k.json": "old json", "k.safetensors": "old model"}
    new = {"k.json": "new json", "k.md": "new report", "k.safetensors": "new model"}
    outcomes = []
    for kill_at in range(1, 40):
        folder = tmp_path / f"kill-{kill_at}"
        folder.mkdir()
        for name, text in old.items():
            (folder / name).write_text(text)
        done = subprocess.run(
            [sys.executable, "-c", _KILLED_PUBLISHER, str(folder), str(kill_at)], capture_output=True, text=True
        )
        assert done.returncode in (0, 137), done.stderr
        for name in new:  # what a rerun's output guard does first, for each of its outputs
            check_writable(folder / name, overwrite=True)
        state = {p.name: p.read_text() for p in folder.iterdir()}
        assert state in (old, new), (kill_at, state)  # no journal, temporary or backup left either
        outcomes.append("new" if state == new else "old")
        if done.returncode == 0:
            break
    assert outcomes[-1] == "new" and "old" in outcomes  # both sides of the commit point were hit
    assert outcomes == sorted(outcomes, key=lambda o: o == "new")  # rolled back, then forward, never back again
