import json
import os
from pathlib import Path

import pytest
import torch

from iau_cli.core.metrics import predict
from iau_cli.core.models import build_model
from iau_cli.errors import CheckpointError, OutputError
from iau_cli.io.checkpoint import (
    CheckpointMeta,
    ForgottenIds,
    file_sha256,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from iau_cli.recipes.train import restore


def tiny_meta() -> CheckpointMeta:
    model = {"name": "mlp", "args": {}, "input_shape": [4], "num_classes": 3}
    return CheckpointMeta(model=model, data={"config": {}}, train={"seed": 0}, lineage=[{"event": "train"}])


def test_round_trip_is_bit_exact_with_metadata(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = {"w": torch.randn(3, 4), "b": torch.randn(4).double(), "n": torch.tensor([1, 2, 3])}
    meta = tiny_meta()
    meta.forgotten.add(["alice", "bob"])
    # The record is bound to the lineage: an unlearn event of 2 ids with the record's digest.
    meta.lineage.append({"event": "unlearn", "ids": 2, "forgotten_sha256": meta.forgotten.digest()})
    ledger = {"w": torch.randn(3, 4)}
    path = tmp_path / "m.safetensors"
    sha = save_checkpoint(path, state, meta, ledger_tensors=ledger)
    assert sha == file_sha256(path)
    loaded = load_checkpoint(path)
    assert set(loaded.state_dict) == set(state)
    for name, tensor in state.items():
        assert loaded.state_dict[name].dtype == tensor.dtype
        assert torch.equal(loaded.state_dict[name], tensor)
    assert torch.equal(loaded.ledger_tensors["w"], ledger["w"])
    assert loaded.meta is not None
    assert loaded.meta.to_metadata() == meta.to_metadata()
    assert loaded.meta.forgotten.contains("alice") and not loaded.meta.forgotten.contains("carol")


def test_no_overwrite_without_flag_and_atomic_replace(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, {"w": torch.zeros(2)}, tiny_meta())
    before = path.read_bytes()
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        save_checkpoint(path, {"w": torch.ones(2)}, tiny_meta())
    assert path.read_bytes() == before
    save_checkpoint(path, {"w": torch.ones(2)}, tiny_meta(), overwrite=True)
    assert torch.equal(load_checkpoint(path).state_dict["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp files left
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # like any new file, not safetensors' 0600


def test_forgotten_ids_are_salted_hashes() -> None:
    first, second = ForgottenIds(), ForgottenIds()
    first.add(["alice"])
    second.add(["alice"])
    assert first.hashes != second.hashes  # different salts
    restored = ForgottenIds.from_json(json.loads(json.dumps(first.to_json())))
    assert restored.contains("alice")
    assert "alice" not in json.dumps(first.to_json())
    assert first.list_digest(["b", "a", "a"]) == first.list_digest(["a", "b"])


def test_corrupt_truncated_and_plain_files(tmp_path: Path) -> None:
    good = tmp_path / "m.safetensors"
    save_checkpoint(good, {"w": torch.zeros(8)}, tiny_meta())
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(good.read_bytes()[:-5])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(b"\x00" * 3)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="without iau metadata; pass --config"):
        load_checkpoint(plain)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    meta = tiny_meta().to_metadata()
    meta["iau.format"] = "99"
    path = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="newer than this iau supports"):
        load_checkpoint(path)


def test_metadata_alone_rebuilds_model_and_data(small_checkpoint: Path) -> None:
    metadata = read_metadata(small_checkpoint)
    assert {"iau.format", "iau.model", "iau.data", "iau.train", "iau.lineage", "iau.forgotten"} <= set(metadata)
    data_meta = json.loads(metadata["iau.data"])
    assert len(data_meta["fingerprint"]["sha256"]) == 64
    assert json.loads(metadata["iau.lineage"])[0]["event"] == "train"
    restored = restore(small_checkpoint)
    x, _ = restored.data.test.fetch(torch.arange(4).numpy())
    assert restored.model(x).shape == (4, 10)
    # The trained weights, not a fresh model of the same shape: above chance on held-out digits (two
    # epochs: about 30%), where the architecture the metadata names, newly initialized, is at chance.
    torch.manual_seed(0)
    fresh = build_model(restored.config.model.name, restored.config.model.args, restored.data.input_shape, 10)
    trained = predict(restored.model, restored.data.test, None, restored.device).accuracy
    untrained = predict(fresh, restored.data.test, None, restored.device).accuracy
    assert trained > untrained + 0.15, (trained, untrained)
