"""Shared fixtures: tiny seeded models on the built-in digits, offline and in temporary folders."""

from __future__ import annotations

import os
import tempfile

# Before anything imports datasets or huggingface_hub: no network, caches in a throwaway folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="iau-test-hf-"))
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="iau-test-hfhome-"))

import dataclasses  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from iau_cli.config import ModelConfig, RunConfig, TrainConfig  # noqa: E402
from iau_cli.data import builtin_config  # noqa: E402


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
    from iau_cli.runs import train

    out = tmp_path_factory.mktemp("memorized") / "model.safetensors"
    train(digits_config(epochs=60, hidden=64, gr_alpha=0.005), out, device="cpu")
    return out


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quickly trained checkpoint for tests that only need a valid one."""
    from iau_cli.runs import train

    out = tmp_path_factory.mktemp("small") / "model.safetensors"
    train(digits_config(epochs=2), out, device="cpu")
    return out


@pytest.fixture
def train_ids() -> list[str]:
    from iau_cli.data import load_data

    return list(load_data(builtin_config("digits")).train.ids)
