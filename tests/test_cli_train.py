import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from iau_cli.errors import ConfigError

from .conftest import digits_config, write_yaml
from .helpers import assert_bad_input, run_cli
from .test_data import make_image_folder

SAMPLES = Path(__file__).resolve().parent.parent / "sample_configs"


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.exit_code == 0
    for name in ("train", "unlearn"):
        assert name in result.stdout


def test_train_writes_checkpoint_and_json(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1))
    out = tmp_path / "m.safetensors"
    result = run_cli("train", config, "--out", out, "--json", "-")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["out"] == str(out) and 0 <= payload["test_accuracy"] <= 1
    assert out.exists()
    again = run_cli("train", config, "--out", out, "--quiet")
    assert_bad_input(again, str(out), "--overwrite")
    assert run_cli("train", config, "--out", out, "--overwrite", "--quiet").exit_code == 0


def test_set_overrides_a_config_value(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1))
    result = run_cli(
        "train", config, "--out", tmp_path / "m.safetensors", "--set", "train.epochs=2", "--json", "-", "-q"
    )
    assert json.loads(result.stdout)["epochs_run"] == 2


@pytest.mark.parametrize(
    ("yaml_text", "fragments"),
    [
        (
            "train:\n  lrr: 1\n  epochs: x\n",
            ["2 problem(s)", "train.lrr: unknown key", "train.epochs: expected an integer"],
        ),
        ("data:\n  train: missing.csv\n", ["missing.csv", "not found"]),
        ("model:\n  name: nowhere.module:Net\n", ["cannot import 'nowhere.module'"]),
        ("model:\n  name: transformer\n", ["unknown model 'transformer'"]),
    ],
)
def test_bad_config_exits_2_and_writes_nothing(tmp_path: Path, yaml_text: str, fragments: list[str]) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml_text + ("train:\n  epochs: 1\n" if "train:" not in yaml_text else ""))
    out = tmp_path / "m.safetensors"
    result = run_cli("train", config, "--out", out)
    assert_bad_input(result, *fragments)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]


def test_missing_config_file(tmp_path: Path) -> None:
    assert_bad_input(
        run_cli("train", tmp_path / "none.yaml", "--out", tmp_path / "m.safetensors"), "config file not found"
    )


def test_undecodable_image_is_named_and_nothing_written(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "images")
    (root / "train" / "dog" / "2.png").write_bytes(b"\x89PNG broken")
    config = tmp_path / "imagefolder_lenet.yaml"
    shutil.copy(SAMPLES / "imagefolder_lenet.yaml", config)
    out = tmp_path / "m.safetensors"
    result = run_cli("train", config, "--out", out, "--set", "train.epochs=1")
    assert_bad_input(result, "dog/2.png", "does not decode")
    assert not out.exists()


def test_unused_cuda_is_bad_input(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    config = write_yaml(tmp_path / "run.yaml", digits_config(epochs=1))
    assert_bad_input(
        run_cli("train", config, "--out", tmp_path / "m.safetensors", "--device", "cuda"), "no CUDA device"
    )


def make_tabular(folder: Path) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for split, n in (("train", 80), ("test", 30)):
        rows = ["customer_id,churned,age,tenure,spend"]
        for i in range(n):
            age, tenure, spend = rng.normal(size=3)
            rows.append(f"{split}-{i},{int(age + spend > 0)},{age:.3f},{tenure:.3f},{spend:.3f}")
        (folder / f"{split}.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize(
    "name",
    [
        "digits_mlp.yaml",
        "digits_lenet.yaml",
        "purchase_mlp.yaml",
        "noisy_mlp.yaml",
        "noisyimages_lenet.yaml",
        "mixed_mlp.yaml",
        "tabular_csv.yaml",
        "imagefolder_lenet.yaml",
    ],
)
def test_sample_configs_train_on_tiny_data(tmp_path: Path, name: str) -> None:
    shutil.copy(SAMPLES / name, tmp_path / name)
    if name == "tabular_csv.yaml":
        make_tabular(tmp_path / "tabular")
    if name == "imagefolder_lenet.yaml":
        make_image_folder(tmp_path / "images", per_class=4)
    out = tmp_path / "m.safetensors"
    result = run_cli("train", tmp_path / name, "--out", out, "--set", "train.epochs=1", "--json", "-", "-q")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rows_learned"] > 0
    assert out.exists()


def test_the_presets_are_the_sample_configs_and_load() -> None:
    """One YAML per built-in workload, shipped in the package; sample_configs/ links to the same files."""
    from iau_cli.config import PRESETS, PRESETS_DIR, preset

    for name in PRESETS:
        sample = SAMPLES / (name.replace("-", "_") + ".yaml")
        assert sample.resolve() == (PRESETS_DIR / f"{name}.yaml").resolve(), name
        config = preset(name)
        assert config.data.train.startswith("builtin:") and config.train.gr_alpha > 0, name
    assert sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")) == sorted(PRESETS)
    with pytest.raises(ConfigError, match="unknown built-in workload"):
        preset("digits-resnet")


def test_help_does_not_import_torch_or_datasets() -> None:
    code = (
        "import sys\n"
        "from iau_cli.cli.app import app\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(app, ['--help'])\n"
        "for name in ('train', 'unlearn'):\n"
        "    CliRunner().invoke(app, [name, '--help'])\n"
        "CliRunner().invoke(app, ['unlearn'])\n"
        "bad = CliRunner().invoke(app, ['unlearn', 'm.safetensors', '--forget', '/no/such/ids.txt'])\n"
        "assert bad.exit_code == 2, bad.output\n"
        "bad = CliRunner().invoke(app, ['train', '/no/such/config.yaml', '--out', 'm.safetensors'])\n"
        "assert bad.exit_code == 2, bad.output\n"
        "print(sorted(m for m in ('torch', 'datasets') if m in sys.modules))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_columns_the_model_never_reads_are_said_and_feature_names_are_stored(tmp_path: Path) -> None:
    from iau_cli.io.checkpoint import read_metadata

    rng = np.random.default_rng(0)
    lines = ["id,label,age,city,income,comment"]
    for i in range(80):
        lines.append(f'u{i},{i % 2},{rng.integers(18, 90)},town-{i % 3},{rng.normal():.3f},"free text {i}"')
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "run.yaml").write_text(
        "data:\n  train: rows.csv\n  test_fraction: 0.25\nmodel:\n  name: logreg\ntrain:\n  epochs: 1\n"
    )
    done = run_cli("train", tmp_path / "run.yaml", "--out", tmp_path / "m.safetensors", "--json", "-", "-q")
    assert done.exit_code == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["features"] == ["age", "income"] and payload["dropped_columns"] == ["city", "comment"]
    assert len(payload["data_sha256"]) == 64
    shown = run_cli("train", tmp_path / "run.yaml", "--out", tmp_path / "n.safetensors")
    assert "not used as features: city, comment" in shown.stdout
    data = json.loads(read_metadata(tmp_path / "m.safetensors")["iau.data"])
    assert data["feature_names"] == ["age", "income"]
