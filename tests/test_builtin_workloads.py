"""The built-in synthetic workloads: what ships is what their recipes make, and each loads as documented."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from iau_cli.io.data import BUILTIN_DATASETS, BUILTIN_DIR, builtin_config, load_data
from tests.synthetic import BUILTIN_RECIPES, MIXED_FEATURES, _shifted


@pytest.mark.parametrize("name", sorted(BUILTIN_RECIPES))
def test_shipped_builtin_is_what_its_recipe_makes(tmp_path: Path, name: str) -> None:
    # Tables, not bytes, are compared: another pyarrow writes other bytes for the same rows. A
    # numpy whose random streams changed would fail here too: the shipped files stay (checkpoints
    # are fingerprinted on them), the recipe no longer remakes them.
    BUILTIN_RECIPES[name](tmp_path)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in BUILTIN_DIR.glob(f"{name}_*")), "generated files differ from shipped ones"
    for file in made:
        shipped, fresh = BUILTIN_DIR / file, tmp_path / file
        if file.endswith(".parquet"):
            assert pq.read_table(fresh).equals(pq.read_table(shipped), check_metadata=False), file
        else:
            assert fresh.read_text() == shipped.read_text(), file
    assert name in BUILTIN_DATASETS
    assert f"`{name}_train.parquet`" in (BUILTIN_DIR / "SOURCE.md").read_text(), "no SOURCE.md entry"


def _pixels(table) -> np.ndarray:
    return np.stack([table.column(f"px{p // 8}{p % 8}").to_numpy() for p in range(64)], axis=1).reshape(-1, 8, 8)


def test_noisyimages_are_shifted_noisy_digits_with_30_percent_of_labels_replaced() -> None:
    from iau_cli.config import preset

    data = load_data(preset("noisyimages-lenet").data)
    assert (len(data.train), len(data.test)) == (1000, 1077)
    assert data.num_classes == 10 and data.input_shape == [1, 32, 32]
    assert data.train.ids[0] == "noisyimages-train-00000" and data.test.ids[-1] == "noisyimages-test-01076"
    x, _ = data.train.fetch(np.arange(4))
    assert x.dtype == torch.float32 and x.shape == (4, 1, 32, 32)
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0  # 0..16 scaled to 0..1, then (x - 0.5) / 0.5
    assert load_data(builtin_config("noisyimages")).input_shape == [64]  # source_id is text, not a feature

    sources = {}
    for split in ("train", "test"):
        table = pq.read_table(BUILTIN_DATASETS["noisyimages"][split])
        digits = pq.read_table(BUILTIN_DATASETS["digits"][split])
        row = {sample_id: i for i, sample_id in enumerate(digits.column("id").to_pylist())}
        source_rows = np.array([row[s] for s in table.column("source_id").to_pylist()])
        sources[split] = set(source_rows.tolist())
        true_labels = digits.column("label").to_numpy()[source_rows]
        recorded = table.column("label").to_numpy()
        assert table.schema.field("label").type == "int64"
        assert int((recorded != true_labels).sum()) == round(0.3 * len(recorded)), split
        # Each image is its source digit moved by at most one pixel, plus mild noise.
        images, source = _pixels(table).astype(float), _pixels(digits).astype(float)[source_rows]
        closest = np.full(len(images), np.inf)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                moved = _shifted(source, np.tile([dy, dx], (len(source), 1)))
                closest = np.minimum(closest, np.abs(images - moved).mean(axis=(1, 2)))
        assert closest.max() < 1.0, split
    assert len(sources["train"]) == 1000  # one training image per source digit
    assert len(sources["test"]) == 359


def test_mixed_has_mixed_scales_that_auto_statistics_standardize() -> None:
    from iau_cli.config import preset

    schema = pq.read_schema(BUILTIN_DATASETS["mixed"]["train"])
    assert {str(schema.field(name).type) for name, _, _ in MIXED_FEATURES} == {"float", "int64", "int32", "bool"}
    raw = load_data(builtin_config("mixed"))
    assert (len(raw.train), len(raw.test)) == (3000, 1500)
    assert raw.num_classes == 4 and raw.input_shape == [len(MIXED_FEATURES)] == [15]
    assert np.bincount(raw.train.labels).min() > 600  # every class well represented
    spread = raw.train.features.array.astype(np.float64).std(axis=0)
    assert spread.max() / spread.min() > 1e6  # readings near 1e-3 beside amounts near 2e4

    data = load_data(preset("mixed-mlp").data)
    assert isinstance(data.config.mean, list) and len(data.config.mean) == 15
    assert isinstance(data.config.std, list) and len(data.config.std) == 15
    features = data.train.features.array.astype(np.float64)
    np.testing.assert_allclose(features.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(features.std(axis=0), 1.0, atol=1e-4)
    assert np.abs(data.test.features.array.mean(axis=0)).max() < 0.2  # test rows on the same scale
