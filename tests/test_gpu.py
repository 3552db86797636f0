"""CUDA paths (skipped without a GPU): the same commands, on the device, agree with the CPU."""

import json
from pathlib import Path

import pytest
import torch

from iau_cli.io.checkpoint import load_checkpoint

from .conftest import digits_config, write_yaml
from .helpers import run_cli

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_auto_picks_cuda() -> None:
    from iau_cli.recipes.train import resolve_device

    assert resolve_device("auto").type == "cuda"


def test_train_and_unlearn_on_cuda_match_cpu(tmp_path: Path, train_ids: list[str]) -> None:
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=2, gr_alpha=0.005))
    for device in ("cpu", "cuda"):
        result = run_cli("train", config, "--out", tmp_path / f"{device}.safetensors", "--device", device, "-q")
        assert result.exit_code == 0, result.stderr
    cpu, gpu = (load_checkpoint(tmp_path / f"{d}.safetensors").state_dict for d in ("cpu", "cuda"))
    for name in cpu:
        torch.testing.assert_close(cpu[name], gpu[name], rtol=1e-3, atol=1e-4)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(train_ids[:30]) + "\n")
    figures = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"u-{device}.safetensors"
        result = run_cli(
            "unlearn", tmp_path / "cpu.safetensors", "-f", ids, "-o", out, "--device", device, "--json", "-", "-q"
        )
        assert result.exit_code == 0, result.stderr
        figures[device] = json.loads(result.stdout)["after"]
    assert figures["cuda"]["test_accuracy"] == pytest.approx(figures["cpu"]["test_accuracy"], abs=0.01)


def test_audit_and_bench_run_on_cuda(tmp_path: Path, train_ids: list[str]) -> None:
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=2))
    assert run_cli("train", config, "--out", tmp_path / "m.safetensors", "--device", "cuda", "-q").exit_code == 0
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(train_ids[:30]) + "\n")
    audit = run_cli("audit", tmp_path / "m.safetensors", "-f", ids, "--device", "cuda", "--json", "-", "-q")
    assert audit.exit_code in (0, 1), audit.stderr
    assert json.loads(audit.stdout)["model"]["mia"]["loss_auc"] is not None
    bench = tmp_path / "bench.yaml"
    bench.write_text(
        "workloads:\n  - {name: tiny, config: run.yaml}\n"
        "methods:\n  - {label: retrain, method: retrain}\n  - {label: iau, method: iau}\n"
        "ratios: [0.05]\nseeds: 1\n"
    )
    result = run_cli("bench", bench, "--out", tmp_path / "out", "--device", "cuda", "--json", "-", "-q")
    assert result.exit_code == 0, result.stderr
    runs = {r["label"]: r for r in json.loads(result.stdout)["runs"]}
    assert runs["iau"]["status"] == "ok" and runs["retrain"]["status"] == "ok"
    assert 0.0 <= runs["iau"]["tow"] <= 1.0 and runs["iau"]["seconds"] > 0
