"""The per-example (U-LiRA) test: it cannot tell models drawn alike, it tells a rule that does
nothing and one that overshoots every row, and on tiny real models it tells the original from a
retrained model but not one retrained model from another."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from iau_cli.recipes.bench.per_example import per_example_test

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "per_example.py"


def retrained_phi(rng: np.random.Generator, seeds: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """φ of retrained models: each row has its own level and its own scatter over seeds."""
    level, scatter = rng.normal(0, 3, rows), rng.uniform(0.5, 2, rows)
    return level + scatter * rng.normal(size=(seeds, rows)), level, scatter


def test_models_drawn_alike_cannot_be_told_apart() -> None:
    accuracy, row_accuracy = [], []
    for draw in range(20):
        rng = np.random.default_rng(draw)
        retrained, level, scatter = retrained_phi(rng, 10, 100)
        result = per_example_test(level + scatter * rng.normal(size=(10, 100)), retrained)
        assert result.seeds == 10 and result.rows == 100 and len(result.seed_accuracy) == 10
        accuracy.append(result.accuracy)
        row_accuracy.append(result.row_accuracy)
    # 20 decisions per draw scatter the model-level figure; over draws it centres on 0.5, and the
    # per-row figure (2,000 decisions a draw) sits there every time.
    assert abs(np.mean(accuracy) - 0.5) < 0.08
    assert max(abs(a - 0.5) for a in row_accuracy) < 0.06


def test_a_rule_that_does_nothing_is_told_apart() -> None:
    rng = np.random.default_rng(1)
    retrained, level, scatter = retrained_phi(rng, 8, 60)
    original = level + 2.0 + scatter * rng.normal(size=(8, 60))  # memorized: higher confidence on each row
    result = per_example_test(original, retrained)
    assert result.accuracy == 1.0 and result.row_accuracy > 0.75


@pytest.mark.parametrize("shift", ["every row lower", "rows up and down"])
def test_a_rule_that_overshoots_every_row_is_told_apart(shift: str) -> None:
    rng = np.random.default_rng(2)
    retrained, _, _ = retrained_phi(rng, 8, 60)
    moved = np.full(60, -3.0) if shift == "every row lower" else np.where(np.arange(60) % 2 == 0, 3.0, -3.0)
    unlearned = retrained[rng.permutation(8)] + moved  # another seed's retrained model, pushed off each row
    if shift == "rows up and down":  # the population mean of φ matches retraining's ...
        assert abs(unlearned.mean() - retrained.mean()) < 0.1
    result = per_example_test(unlearned, retrained)  # ... and row by row it is plain to see
    assert result.accuracy >= 0.9 and result.row_accuracy > 0.8


def test_the_test_refuses_arrays_it_cannot_use() -> None:
    phi = np.zeros((3, 4))
    with pytest.raises(ValueError, match="one shape"):
        per_example_test(phi, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        per_example_test(phi[:1], phi[:1])
    with pytest.raises(ValueError, match="finite"):
        per_example_test(np.full((3, 4), np.inf), phi)
    same = per_example_test(phi, phi)  # identical models: every likelihood ratio is 0, every decision a tie
    assert same.accuracy == 0.5 and same.row_accuracy == 0.5


def test_on_tiny_models_the_original_is_told_from_retrained_ones_and_another_retrain_is_not(
    tmp_path: Path, noise_data: Path
) -> None:
    import yaml

    spec = importlib.util.spec_from_file_location("per_example_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    config = {
        "data": {"train": str(noise_data / "train.parquet"), "test": str(noise_data / "test.parquet")},
        "model": {"name": "mlp", "args": {"hidden": [128]}},
        "train": {"epochs": 60, "lr": 0.01, "batch_size": 32},
    }
    (tmp_path / "noise.yaml").write_text(yaml.safe_dump(config))
    args = ["--workload", str(tmp_path / "noise.yaml"), "--seeds", "4", "--rows", "40", "--methods", "finetune"]
    args += ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--device", "cpu"]
    result = script.main(args)
    rows = {r["label"]: r for r in result["methods"]}
    assert result["forget_rows"] == 40 and result["seeds"] == 4
    original, floor = rows["original (no unlearning)"], rows["retrain (another seed)"]
    assert original["attack_accuracy"] >= 0.875 and original["attack_row_accuracy"] > 0.85
    assert floor["attack_accuracy"] <= 0.75 and abs(floor["attack_row_accuracy"] - 0.5) < 0.15
    assert rows["finetune"]["status"] == "ok" and len(rows["finetune"]["attack_seed_accuracy"]) == 4
    written = json.loads((tmp_path / "out" / "per_example.json").read_text())
    assert written["methods"][0]["attack_accuracy"] == original["attack_accuracy"]
    assert "| retrain (another seed) |" in (tmp_path / "out" / "per_example.md").read_text()

    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 12  # 4 originals, 4 retrained, 4 retrained with another seed
    again = script.main([*args, "--chain", "2"])  # the same models, the rows in 2 requests
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == cached
    assert {r["label"]: r for r in again["methods"]}["original (no unlearning)"]["attack_accuracy"] == (
        original["attack_accuracy"]
    )
