"""SIGTERM and SIGHUP (what timeout, kill, service managers and a closed terminal send) end a run
like Ctrl-C: a documented exit code, the error JSON, and no lock, temporary or half-written file."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import digits_config, write_yaml


def start_retraining(tmp_path: Path, small_checkpoint: Path, train_ids: list[str]) -> subprocess.Popen:
    """``iau unlearn --method retrain`` with a long recipe (the --config overrides the recorded one)."""
    write_yaml(tmp_path / "run.yaml", digits_config(epochs=5000))
    (tmp_path / "ids.txt").write_text("\n".join(train_ids[:5]) + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "iau_cli", "unlearn", str(small_checkpoint), "--forget", "ids.txt"]
    return subprocess.Popen(
        [*command, "--method", "retrain", "--config", "run.yaml", "--out", "u.safetensors", "--json", "u.json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_lock(tmp_path: Path, process: subprocess.Popen, limit: float = 120.0) -> None:
    """Until the run holds its output lock (it is past start-up and working); a run that never
    does is killed, so a failing test leaves no process behind."""
    started = time.monotonic()
    while not any(p.name.endswith("iau-lock") for p in tmp_path.iterdir()):
        if process.poll() is not None or time.monotonic() - started > limit:
            process.kill()
            pytest.fail(f"the run never took its lock: {process.communicate()[1]}")
        time.sleep(0.05)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_mid_run_exits_with_its_code_writes_the_error_json_and_leaves_nothing(
    tmp_path: Path, small_checkpoint: Path, train_ids: list[str], signum: int, code: int
) -> None:
    process = start_retraining(tmp_path, small_checkpoint, train_ids)
    wait_for_lock(tmp_path, process)
    time.sleep(0.5)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == f"iau: terminated ({signal.Signals(signum).name})"
    error = json.loads((tmp_path / "u.json").read_text())["error"]
    assert error["kind"] == "interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.txt", "run.yaml", "u.json"]  # no lock, temp or model


def test_sigterm_during_start_up_exits_143_without_a_traceback(
    tmp_path: Path, small_checkpoint: Path, train_ids: list[str]
) -> None:
    process = start_retraining(tmp_path, small_checkpoint, train_ids)
    time.sleep(0.3)  # still importing
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "iau: terminated (SIGTERM)"
    assert not (tmp_path / "u.safetensors").exists()
