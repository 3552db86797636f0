"""The feature store: encoded once, the same rows whichever way they are held or found."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from iau_cli.config import DataConfig
from iau_cli.core.training import partition_rows, train_model
from iau_cli.environment import parse_size
from iau_cli.io.data import builtin_config, load_data
from iau_cli.io.store import cache_root

from .conftest import digits_config
from .test_data import make_image_folder


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("IAU_CACHE_DIR", str(folder))
    return folder


def write_rows(path: Path, n: int = 40, seed: int = 0, prefix: str = "r") -> Path:
    rng = np.random.default_rng(seed)
    columns = {"id": [f"{prefix}{i}" for i in range(n)], "label": rng.integers(0, 3, n)}
    columns.update({f"f{j}": rng.normal(size=n).astype(np.float32) for j in range(5)})
    pq.write_table(pa.table(columns), path)
    return path


def all_rows(split) -> tuple[torch.Tensor, torch.Tensor]:
    return split.fetch(np.arange(len(split)))


def test_rows_are_the_raw_columns_scaled_and_normalized(tmp_path: Path, cache: Path) -> None:
    train = write_rows(tmp_path / "train.parquet")
    test = write_rows(tmp_path / "test.parquet", n=10, seed=1, prefix="t")
    data = load_data(DataConfig(train=str(train), test=str(test), scale=2.0, mean=0.5, std=4.0))
    table = pq.read_table(train)
    raw = np.stack([table.column(f"f{j}").to_numpy() for j in range(5)], axis=1)
    x, y = all_rows(data.train)
    np.testing.assert_allclose(x.numpy(), (raw * 2.0 - 0.5) / 4.0, rtol=1e-6)
    assert y.tolist() == table.column("label").to_pylist()
    # Any order of rows, consecutive or not, gives those rows.
    rows = np.array([7, 3, 3, 39, 0])
    picked, labels = data.train.fetch(rows)
    assert torch.equal(picked, x[rows]) and torch.equal(labels, y[rows])


def test_a_batch_never_aliases_the_store() -> None:
    """A model that edits its input in place must not edit the rows every later batch is cut from."""
    from iau_cli.io.store import FeatureStore

    store = FeatureStore(np.arange(12, dtype=np.float32).reshape(6, 2))
    store.gather(np.array([1, 2, 3])).mul_(0)  # consecutive rows: a slice
    store.gather(np.array([4, 0])).mul_(0)  # scattered rows: an index-select
    assert store.gather(np.arange(6)).flatten().tolist() == list(range(12))


def test_a_cached_or_memory_mapped_store_gives_the_same_rows(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = write_rows(tmp_path / "train.parquet")
    config = DataConfig(train=str(train), test_fraction=0.25)
    fresh = load_data(config)
    assert not fresh.train.features.mapped and any(cache.iterdir())
    cached = load_data(config)
    monkeypatch.setenv("IAU_MEMORY_BUDGET", "0")
    mapped = load_data(config)
    assert mapped.train.features.mapped and mapped.test.features.mapped
    for other in (cached, mapped):
        assert other.train.ids == fresh.train.ids and other.test.ids == fresh.test.ids
        assert other.test.source == fresh.test.source and other.num_classes == fresh.num_classes
        for split in ("train", "test"):
            for a, b in zip(all_rows(getattr(other, split)), all_rows(getattr(fresh, split))):
                assert torch.equal(a, b)


def test_without_a_cache_folder_nothing_is_left_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setenv("IAU_CACHE_DIR", "off")
    monkeypatch.setenv("IAU_MEMORY_BUDGET", "0")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert cache_root() is None
    data = load_data(DataConfig(train=str(write_rows(tmp_path / "rows.parquet")), test_fraction=0.25))
    assert data.train.features.mapped
    assert list((tmp_path / "tmp").iterdir()) == []  # the spill file is unlinked, its mapping still reads
    assert all_rows(data.train)[0].shape == (len(data.train), 5)


def test_changed_files_are_encoded_again_and_moved_ones_are_not(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "a").mkdir()
    train = write_rows(tmp_path / "a" / "rows.parquet")
    first = load_data(DataConfig(train=str(train), test_fraction=0.25))
    entries = set(cache.iterdir())
    moved = tmp_path / "b"
    shutil.copytree(tmp_path / "a", moved)
    again = load_data(DataConfig(train=str(moved / "rows.parquet"), test_fraction=0.25))
    assert set(cache.iterdir()) == entries  # same content: the same entry
    assert again.train.source == str(moved / "rows.parquet")  # messages name where the rows are now
    write_rows(train, seed=5)
    changed = load_data(DataConfig(train=str(train), test_fraction=0.25))
    assert len(set(cache.iterdir())) == len(entries) + 1
    assert not torch.equal(all_rows(changed.train)[0], all_rows(first.train)[0])


def test_a_damaged_cache_entry_is_encoded_again(tmp_path: Path, cache: Path) -> None:
    config = DataConfig(train=str(write_rows(tmp_path / "rows.parquet")), test_fraction=0.25)
    good = load_data(config)
    (entry,) = cache.iterdir()
    (entry / "train.features.npy").write_bytes(b"truncated")
    again = load_data(config)
    assert torch.equal(all_rows(again.train)[0], all_rows(good.train)[0])
    # ... and replaced: the next command finds a healthy entry instead of encoding every time.
    assert [p.name for p in cache.iterdir()] == [entry.name]
    assert (entry / "train.features.npy").read_bytes() != b"truncated"


def test_a_tampered_cache_entry_is_never_used(tmp_path: Path, cache: Path) -> None:
    """Finding 11: features zeroed in a well-formed .npy were used as is (a retrain then reached 9%
    test accuracy); every read checks the entry against the digests written with it."""
    config = DataConfig(train=str(write_rows(tmp_path / "rows.parquet")), test_fraction=0.25)
    good = load_data(config)
    (entry,) = cache.iterdir()
    features = np.load(entry / "train.features.npy")
    np.save(entry / "train.features.npy", np.zeros_like(features))  # valid file, wrong content
    again = load_data(config)
    assert torch.equal(all_rows(again.train)[0], all_rows(good.train)[0])
    assert np.array_equal(np.load(entry / "train.features.npy"), features)  # re-encoded in its place


def test_image_pixels_are_stored_as_bytes_and_normalized_per_batch(tmp_path: Path, cache: Path) -> None:
    from PIL import Image

    root = make_image_folder(tmp_path)
    data = load_data(DataConfig(train=str(root / "train"), test=str(root / "test"), grayscale=True, mean=0.5, std=0.25))
    assert data.train.features.array.dtype == np.uint8
    row = data.train.ids.index("train/cat/2.png")
    pixels = np.asarray(Image.open(root / "train" / "cat" / "2.png").convert("L"), dtype=np.float32) / 255.0
    x, _ = data.train.fetch(np.array([row]))
    np.testing.assert_allclose(x[0, 0].numpy(), (pixels - 0.5) / 0.25, rtol=1e-5, atol=1e-5)


def test_training_from_a_memory_mapped_store_equals_training_in_memory(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = digits_config(epochs=1, gr_alpha=0.005)
    weights = []
    for budget in ("1G", "0"):
        monkeypatch.setenv("IAU_MEMORY_BUDGET", budget)
        data = load_data(config.data)
        assert data.train.features.mapped == (budget == "0")
        model, _ = train_model(config, data, partition_rows(data, config.train), torch.device("cpu"))
        weights.append(model.state_dict())
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name


def test_a_cached_dataset_is_loaded_without_importing_datasets(cache: Path) -> None:
    load_data(builtin_config("digits"))
    code = (
        "import sys\n"
        "from iau_cli.io.data import builtin_config, load_data\n"
        "data = load_data(builtin_config('digits'))\n"
        "print(len(data.train), 'datasets' in sys.modules)\n"
    )
    env = {**os.environ, "IAU_CACHE_DIR": str(cache)}
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert output.stdout.split() == ["1438", "False"]


def test_memory_budget_sizes() -> None:
    assert parse_size("512M") == 512 << 20
    assert parse_size("2g") == 2 << 30
    assert parse_size("1.5KiB") == 1536
    assert parse_size("0") == 0
    for bad in ("lots", "-1G", ""):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_a_bad_memory_budget_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from iau_cli.errors import ConfigError

    monkeypatch.setenv("IAU_MEMORY_BUDGET", "plenty")
    with pytest.raises(ConfigError, match="IAU_MEMORY_BUDGET"):
        load_data(builtin_config("digits"))
