from pathlib import Path

import numpy as np
import pytest
import torch

from iau_cli.config import DataConfig
from iau_cli.errors import DataError, IdsError
from iau_cli.io.data import builtin_config, load_data
from iau_cli.io.ids import parse_forget_ids, read_forget_ids


def write_csv(path: Path, rows: list[str], header: str = "id,label,a,b") -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_builtin_digits_has_fixed_split_and_string_ids() -> None:
    data = load_data(builtin_config("digits"))
    assert (len(data.train), len(data.test)) == (1438, 359)
    assert data.num_classes == 10
    assert data.input_shape == [64]
    assert data.train.ids[0].startswith("digit-")
    assert not set(data.train.ids) & set(data.test.ids)
    x, y = data.train.fetch(np.array([0, 1, 2]))
    assert x.dtype == torch.float32 and x.shape == (3, 64)
    assert float(x.max()) <= 1.0  # scaled 0..16 → 0..1


def test_streamed_batches_cover_every_row_once() -> None:
    data = load_data(builtin_config("digits"))
    rows = np.array([5, 3, 900, 17, 1200])
    seen = torch.cat([y for _, y in data.train.batches(rows, batch_size=2)])
    assert seen.tolist() == data.train.labels[rows].tolist()


def test_reshape_and_resize_make_images() -> None:
    data = load_data(builtin_config("digits", shape=[1, 8, 8], resize=[32, 32]))
    assert data.input_shape == [1, 32, 32]


@pytest.mark.parametrize("suffix", ["csv", "json", "parquet"])
def test_tabular_formats_with_test_fraction(tmp_path: Path, suffix: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "id": [f"u{i}" for i in range(60)],
            "label": rng.integers(0, 3, 60),
            "a": rng.normal(size=60),
            "b": rng.normal(size=60),
        }
    )
    path = tmp_path / f"rows.{suffix}"
    if suffix == "csv":
        table.to_pandas().to_csv(path, index=False)
    elif suffix == "json":
        table.to_pandas().to_json(path, orient="records", lines=True)
    else:
        pq.write_table(table, path)
    data = load_data(DataConfig(train=str(path), test_fraction=0.25))
    assert len(data.train) + len(data.test) == 60
    assert 5 < len(data.test) < 30
    assert data.input_shape == [2]
    # The split depends only on ids: the same rows land in test every time.
    again = load_data(DataConfig(train=str(path), test_fraction=0.25))
    assert again.test.ids == data.test.ids


def test_save_to_disk_folder(tmp_path: Path) -> None:
    import datasets

    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"id": ["a", "b", "c", "d"], "label": [0, 1, 0, 1], "x": [0.1, 0.2, 0.3, 0.4]}
            ),
            "test": datasets.Dataset.from_dict({"id": ["e", "f"], "label": [0, 1], "x": [0.5, 0.6]}),
        }
    )
    ds.save_to_disk(tmp_path / "saved")
    data = load_data(DataConfig(train=str(tmp_path / "saved")))
    assert data.train.ids == ["a", "b", "c", "d"] and data.test.ids == ["e", "f"]


def make_image_folder(root: Path, per_class: int = 3, size: int = 12) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = (rng.random((size, size)) * 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_image_folder_ids_are_relative_paths(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path)
    config = DataConfig(train=str(root / "train"), test=str(root / "test"), grayscale=True, resize=[16, 16])
    data = load_data(config)
    assert sorted(data.train.ids) == sorted(f"train/{c}/{i}.png" for c in ("cat", "dog") for i in range(3))
    assert data.input_shape == [1, 16, 16]
    assert data.class_names == ["cat", "dog"]
    x, y = data.train.fetch(np.arange(6))
    assert x.shape == (6, 1, 16, 16) and set(y.tolist()) == {0, 1}


def test_image_that_does_not_decode_is_named(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path)
    (root / "train" / "cat" / "1.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"cat/1\.png: image does not decode"):
        data = load_data(DataConfig(train=str(root / "train"), test=str(root / "test"), grayscale=True))
        for _ in data.train.batches(None, 2):
            pass


@pytest.mark.parametrize(
    ("rows", "header", "config", "message"),
    [
        (["a,0,1,2"], "key,label,a,b", {}, "id column 'id' not found"),
        (["a,0,1,2"], "id,target,a,b", {}, "label column 'label' not found"),
        (["a,0,1,2", "a,1,3,4"], "id,label,a,b", {}, "duplicate id(s)"),
        (["a,0.5,1,2", "b,1,3,4"], "id,label,a,b", {}, "must be integer class indices"),
        (["a,cat,1,2", "b,dog,3,4"], "id,label,a,b", {}, "must be integer class indices"),
        (["a,0,1,", "b,1,3,4"], "id,label,a,b", {}, "NaN/infinite/empty"),
        (["a,0,nan,2", "b,1,3,4"], "id,label,a,b", {}, "first at id 'a'"),
        (["a,-1,1,2", "b,1,3,4"], "id,label,a,b", {}, "negative label"),
    ],
)
def test_bad_tabular_data(tmp_path: Path, rows: list[str], header: str, config: dict, message: str) -> None:
    train = write_csv(tmp_path / "train.csv", rows, header)
    test = write_csv(tmp_path / "test.csv", ["t1,0,1,2", "t2,1,3,4"], header)
    with pytest.raises(DataError) as info:
        load_data(DataConfig(train=str(train), test=str(test), **config))
    assert message in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_data(DataConfig(train=str(tmp_path / "missing.csv")))
    odd = tmp_path / "rows.xyz"
    odd.write_text("x")
    with pytest.raises(DataError, match="cannot tell the data format"):
        load_data(DataConfig(train=str(odd)))


def test_ids_parser_rules() -> None:
    request = parse_forget_ids(b"# comment\n a \n\nb\na\n  # indented comment\nc\r\n", "ids.txt")
    assert request.ids == ["a", "b", "c"]
    assert request.duplicates == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "no ids found"),
        (b"# only\n\n", "no ids found"),
        (b"\x00\x01\x02", "binary"),
        (b"ok\n\xff\xfe\n", "not UTF-8"),
    ],
)
def test_bad_ids_files(raw: bytes, message: str) -> None:
    with pytest.raises(IdsError, match=message):
        parse_forget_ids(raw, "ids.txt")


def test_ids_from_stdin_and_missing_file(tmp_path: Path) -> None:
    import io

    assert read_forget_ids("-", stdin=io.BytesIO(b"x\ny\n")).ids == ["x", "y"]
    with pytest.raises(IdsError, match="ids file not found"):
        read_forget_ids(tmp_path / "none.txt")


def test_a_million_ids_parse_quickly() -> None:
    raw = "\n".join(f"user-{i}" for i in range(1_000_000)).encode()
    request = parse_forget_ids(raw, "big.txt")
    assert len(request.ids) == 1_000_000


def test_a_cache_folder_inside_an_image_folder_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: IAU_CACHE_DIR inside the dataset wrote the cache into an input, whose files then
    changed its fingerprint. The cache is off for such data; the folder stays as it was."""
    root = make_image_folder(tmp_path)
    monkeypatch.setenv("IAU_CACHE_DIR", str(root / "train" / ".cache"))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    config = DataConfig(train=str(root / "train"), test=str(root / "test"), grayscale=True, resize=[16, 16])
    first, second = load_data(config), load_data(config)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert first.fingerprint["sha256"] == second.fingerprint["sha256"]
    assert len(second.train) == 6
