"""Shared fixtures: tiny seeded models on the built-in digits, offline and in temporary folders."""

from __future__ import annotations

import os
import tempfile

# Before anything imports datasets or huggingface_hub: no network, caches in a throwaway folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="iau-test-hf-"))
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="iau-test-hfhome-"))
# The feature cache goes to a throwaway folder too (tests must not depend on what a user cached).
os.environ.setdefault("IAU_CACHE_DIR", tempfile.mkdtemp(prefix="iau-test-features-"))
# Consents to import user model code go to a throwaway trust file, never the user's own.
os.environ["IAU_TRUST_FILE"] = os.path.join(tempfile.mkdtemp(prefix="iau-test-trust-"), "trusted-code")
# An operator key in the caller's environment changes what checkpoints record (and made
# test_checkpoint fail); tests that want a key set their own.
os.environ.pop("IAU_ID_KEY_FILE", None)

import dataclasses  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from iau_cli.config import ModelConfig, RunConfig, TrainConfig  # noqa: E402
from iau_cli.io.data import builtin_config  # noqa: E402


def digits_config(
    epochs: int = 3, hidden: int = 16, gr_alpha: float = 0.0, seed: int = 0, **train: object
) -> RunConfig:
    """A small MLP on the built-in digits."""
    return RunConfig(
        data=builtin_config("digits"),
        model=ModelConfig(name="mlp", args={"hidden": [hidden]}),
        train=TrainConfig(epochs=epochs, gr_alpha=gr_alpha, seed=seed, **train),  # type: ignore[arg-type]
    )


def write_yaml(path: Path, config: RunConfig) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(dataclasses.asdict(config)))
    return path


@pytest.fixture(scope="session")
def memorized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint that fits every training row (loss near zero on train, not on test)."""
    from iau_cli.recipes.train import train

    out = tmp_path_factory.mktemp("memorized") / "model.safetensors"
    train(digits_config(epochs=60, hidden=64, gr_alpha=0.005), out, device="cpu")
    return out


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quickly trained checkpoint for tests that only need a valid one."""
    from iau_cli.recipes.train import train

    out = tmp_path_factory.mktemp("small") / "model.safetensors"
    train(digits_config(epochs=2), out, device="cpu")
    return out


@pytest.fixture
def train_ids() -> list[str]:
    from iau_cli.io.data import load_data

    return list(load_data(builtin_config("digits")).train.ids)


@pytest.fixture(scope="session")
def noise_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Rows with random features and random labels: a model can only memorize them, so membership
    shows plainly (train loss near zero, held-out loss near log K)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    for split, n in (("train", 240), ("test", 240)):
        columns = {"id": [f"{split}-{i}" for i in range(n)], "label": rng.integers(0, 4, n)}
        columns.update({f"f{j}": rng.normal(size=n) for j in range(16)})
        pq.write_table(pa.table(columns), folder / f"{split}.parquet")
    return folder


def noise_config(folder: Path, epochs: int = 150) -> RunConfig:
    from iau_cli.config import DataConfig

    return RunConfig(
        data=DataConfig(train=str(folder / "train.parquet"), test=str(folder / "test.parquet")),
        model=ModelConfig(name="mlp", args={"hidden": [256]}),
        train=TrainConfig(epochs=epochs, lr=0.01, batch_size=32),
    )


@pytest.fixture(scope="session")
def memorizing_pair(tmp_path_factory: pytest.TempPathFactory, noise_data: Path) -> dict[str, object]:
    """On the noise data: a model trained on every row, the ids to forget, its IAU-unlearned child,
    and a model retrained without those ids."""
    from iau_cli.io.ids import parse_forget_ids
    from iau_cli.recipes.train import train
    from iau_cli.recipes.unlearn import UnlearnRequest, unlearn

    folder = tmp_path_factory.mktemp("pair")
    original = folder / "original.safetensors"
    train(noise_config(noise_data), original, device="cpu")
    ids = [f"train-{i}" for i in range(0, 240, 4)]  # 60 rows
    (folder / "forget.txt").write_text("\n".join(ids) + "\n")
    forget = parse_forget_ids("\n".join(ids).encode(), "forget.txt")
    paths = {"original": original, "ids": folder / "forget.txt"}
    for name, method in (("unlearned", "iau"), ("retrained", "retrain")):
        paths[name] = folder / f"{name}.safetensors"
        unlearn(UnlearnRequest(str(original), forget, out=str(paths[name]), method=method, device="cpu"))
    return paths


def prototype_config(folder: Path, name: str, epochs: int) -> RunConfig:
    from iau_cli.config import DataConfig

    return RunConfig(
        data=DataConfig(train=str(folder / f"{name}_train.parquet"), test=str(folder / f"{name}_test.parquet")),
        model=ModelConfig(name="mlp", args={"hidden": [128]}),
        train=TrainConfig(epochs=epochs, batch_size=32),
    )


@pytest.fixture(scope="session")
def prototype_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Two small workloads of ``tests.synthetic`` (the generator of the built-in purchase and noisy
    data), each with an original model and one retrained without its forget rows:

    - ``memorizing``: 20 classes, 600 rows the MLP fits exactly while held-out rows score far lower
      (membership shows); forget = a seeded 10% of the rows;
    - ``noisy``: 5 classes with 20% of the training labels replaced; forget = those rows.
    """
    import random

    from iau_cli.io.ids import parse_forget_ids
    from iau_cli.recipes.train import train
    from iau_cli.recipes.unlearn import UnlearnRequest, unlearn
    from tests.synthetic import prototype_workload

    folder = tmp_path_factory.mktemp("prototype")
    prototype_workload(folder, "memorizing", seed=3, classes=20, flip=0.3, n_train=600, n_test=800, features=200)
    prototype_workload(
        folder, "noisy", seed=4, classes=5, flip=0.42, n_train=600, n_test=800, features=200, label_noise=0.2
    )
    ids = {
        "memorizing": sorted(random.Random(0).sample([f"memorizing-train-{i:05d}" for i in range(600)], 60)),
        "noisy": [line for line in (folder / "noisy_flipped.txt").read_text().splitlines() if not line.startswith("#")],
    }
    found: dict[str, dict[str, Path]] = {}
    for name, epochs in (("memorizing", 40), ("noisy", 40)):
        paths = {"original": folder / f"{name}.safetensors", "ids": folder / f"{name}_forget.txt"}
        paths["ids"].write_text("\n".join(ids[name]) + "\n")
        train(prototype_config(folder, name, epochs), paths["original"], device="cpu")
        paths["retrained"] = folder / f"{name}_retrained.safetensors"
        forget = parse_forget_ids(paths["ids"].read_bytes(), str(paths["ids"]))
        unlearn(UnlearnRequest(str(paths["original"]), forget, str(paths["retrained"]), method="retrain", device="cpu"))
        found[name] = paths
    return found
