"""Under torchrun (2 CPU processes, gloo), results equal one process within float tolerance."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iau_cli.io.checkpoint import load_checkpoint

from .conftest import digits_config, write_yaml
from .test_data import make_image_folder

pytestmark = pytest.mark.distributed

SAMPLES = Path(__file__).resolve().parent.parent / "sample_configs"


def iau(*args: object, processes: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    if processes == 1:
        command = [sys.executable, "-m", "iau_cli", *map(str, args)]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
        command = [*launcher, "-m", "iau_cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def assert_same_tensors(a: Path, b: Path, atol: float) -> None:
    first, second = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    assert set(first) == set(second)
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=atol, msg=name)


@pytest.mark.parametrize("gr_alpha", [0.0, 0.005])
def test_one_epoch_of_training_matches_one_process(tmp_path: Path, gr_alpha: float) -> None:
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1, gr_alpha=gr_alpha))
    single = iau("train", config, "--out", tmp_path / "one.safetensors", "--json", tmp_path / "one.json", "-q")
    assert single.returncode == 0, single.stderr
    double = iau(
        "train", config, "--out", tmp_path / "two.safetensors", "--json", tmp_path / "two.json", "-q", processes=2
    )
    assert double.returncode == 0, double.stderr
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two["epoch_losses"][0] == pytest.approx(one["epoch_losses"][0], rel=1e-5)
    assert_same_tensors(tmp_path / "one.safetensors", tmp_path / "two.safetensors", atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(("rule", "atol"), [("adam-sign", 1e-6), ("matched", 1e-4)])
def test_unlearn_matches_one_process(
    small_checkpoint: Path, train_ids: list[str], tmp_path: Path, rule: str, atol: float
) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(train_ids[:40:2]) + "\n")
    outputs = {}
    for processes in (1, 2):
        out = tmp_path / f"u{processes}.safetensors"
        result = iau(
            "unlearn",
            small_checkpoint,
            "-f",
            ids,
            "-o",
            out,
            "-O",
            f"rule={rule}",
            "-q",
            "--json",
            "-",
            processes=processes,
        )
        assert result.returncode == 0, result.stderr
        outputs[processes] = json.loads(result.stdout)
    assert_same_tensors(tmp_path / "u1.safetensors", tmp_path / "u2.safetensors", atol=atol)
    assert outputs[2]["ids"] == outputs[1]["ids"]
    assert outputs[2]["after"]["test_accuracy"] == pytest.approx(outputs[1]["after"]["test_accuracy"], abs=1e-9)


def test_a_failing_rank_fails_the_run_and_writes_nothing(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "images", per_class=6)
    # The last file in sorted order lands in rank 1's block of rows.
    (root / "train" / "dog" / "5.png").write_bytes(b"\x89PNG broken")
    config = tmp_path / "imagefolder_lenet.yaml"
    shutil.copy(SAMPLES / "imagefolder_lenet.yaml", config)
    out = tmp_path / "m.safetensors"
    result = iau("train", config, "--out", out, "--set", "train.epochs=1", "--set", "train.batch_size=4", processes=2)
    assert result.returncode != 0
    assert "dog/5.png: image does not decode" in result.stderr + result.stdout
    assert not out.exists()
