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


@pytest.mark.slow
def test_a_signal_at_any_moment_ends_a_run_as_a_success_or_an_interruption_never_a_mix(
    tmp_path: Path, small_checkpoint: Path, train_ids: list[str]
) -> None:
    """Issue 21 (12): SIGINT while numpy was importing gave a traceback (a half-imported module),
    and one just after publication killed a finished run by the signal. Swept over a whole run:
    every outcome is exit 0 with the model and a success JSON, or 130 with the error JSON and
    nothing else; never a traceback, never a leftover."""
    (tmp_path / "ids.txt").write_text("\n".join(train_ids[:5]) + "\n")
    command = [sys.executable, "-m", "iau_cli", "unlearn", str(small_checkpoint), "--forget", "ids.txt"]
    command += ["--out", "u.safetensors", "--json", "u.json", "-q"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    assert subprocess.run(command, cwd=tmp_path, env=env, capture_output=True).returncode == 0
    whole = time.monotonic() - started
    outcomes = []
    for fraction in (0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 0.95, 1.0):
        for name in ("u.safetensors", "u.json"):
            (tmp_path / name).unlink(missing_ok=True)
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(whole * fraction)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        assert b"Traceback" not in stderr, stderr.decode()
        record = json.loads((tmp_path / "u.json").read_text())
        names = sorted(p.name for p in tmp_path.iterdir())
        if process.returncode == 0:
            assert "error" not in record and names == ["ids.txt", "u.json", "u.safetensors"], names
        else:
            assert process.returncode == 130, stderr.decode()
            assert record["error"]["kind"] == "interrupted" and names == ["ids.txt", "u.json"], names
        outcomes.append(process.returncode)
    assert 130 in outcomes  # the sweep did interrupt runs (it is not a test of runs that finished first)


def test_a_signal_during_an_import_waits_for_the_import_to_finish(tmp_path: Path) -> None:
    """The mechanism behind the sweep, deterministic: a module that signals itself half-way
    through its own import still finishes importing (no half-imported module is left behind, which
    is what broke numpy), and the interruption comes right after."""
    (tmp_path / "selfsignal.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(0.2)\n"  # the handler has run by now; under the old handlers KeyboardInterrupt was raised
        "COMPLETE = True\n"
        "print('imported completely', flush=True)\n"
    )
    script = (
        "import sys\n"
        "from iau_cli import signals\n"
        "signals.defer()\n"
        "signals.install()\n"
        "try:\n"
        "    import selfsignal\n"
        "    import time\n"
        "    time.sleep(5)\n"  # the held signal is acted on within 20 ms of the import's end
        "    print('never interrupted')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted after the import:', 'selfsignal' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["imported completely", "interrupted after the import: True"], done
