from pathlib import Path

import pytest

from iau_cli.config import RunConfig, TrainConfig, from_dict, load_run_config
from iau_cli.errors import ConfigError


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "data:\n  trian: x.csv\nmodel:\n  name: mlp\ntrain:\n  lrr: 0.1\n  epochs: ten\n  optimizer: rmsprop\n"
    )
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "4 problem(s)" in message
    assert "data.trian: unknown key (did you mean 'train'?)" in message
    assert "train.lrr: unknown key (did you mean 'lr'?)" in message
    assert "train.epochs: expected an integer, got 'ten'" in message
    assert "train.optimizer: 'rmsprop' is not one of adam, sgd" in message


def test_the_checks_run_however_a_config_is_built() -> None:
    """Not only from_dict: the constructor and dataclasses.replace (as the methods build recipes) too."""
    import dataclasses

    from iau_cli.core.methods.options import FinetuneOptions, IauOptions

    with pytest.raises(ConfigError, match="epochs: 0 must be at least 1"):
        dataclasses.replace(TrainConfig(), epochs=0)
    with pytest.raises(ConfigError, match="lr: -0.5 must be positive"):
        TrainConfig(lr=-0.5)
    with pytest.raises(ConfigError, match="steps: must be at least 1"):
        IauOptions(steps=0)
    with pytest.raises(ConfigError, match="epochs: must be at least 1"):
        dataclasses.replace(FinetuneOptions(), epochs=0)
    assert dataclasses.replace(TrainConfig(), epochs=3).epochs == 3


def test_semantic_checks_name_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(RunConfig, {"train": {"lr": -1, "epochs": 0}})
    assert "train.lr: -1.0 must be positive" in str(info.value)
    assert "train.epochs: 0 must be at least 1" in str(info.value)


def test_yaml_scientific_notation_without_dot_is_a_number() -> None:
    # PyYAML reads 1e-3 as a string; float fields accept it.
    assert from_dict(TrainConfig, {"lr": "1e-3"}).lr == pytest.approx(1e-3)


def test_booleans_are_not_integers() -> None:
    with pytest.raises(ConfigError, match="expected an integer"):
        from_dict(TrainConfig, {"epochs": True})


def test_overrides_apply_after_the_file_and_paths_resolve_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  train: rows.csv\ntrain:\n  epochs: 3\n")
    config = load_run_config(path, ["train.epochs=7", "model.args={hidden: [8]}"])
    assert config.train.epochs == 7
    assert config.model.args == {"hidden": [8]}
    assert config.data.train == str(tmp_path / "rows.csv")


def test_missing_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_run_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_run_config(scalar)


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("data: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(path)


def test_an_anchor_ladder_is_weights_and_not_given_beside_a_correction() -> None:
    from iau_cli.core.methods.options import DEFAULT_LADDER, IauOptions

    assert IauOptions().anchor_ladder() == [float(w) for w in DEFAULT_LADDER.split(",")]
    assert IauOptions(correction=0.1).anchor_ladder() is None  # a correction given: that weight alone
    assert IauOptions(ladder="0.5,0.2").anchor_ladder() == [0.5, 0.2]
    for ladder in ("", "1.0,x", "1.0,-0.1"):
        with pytest.raises(ConfigError, match="ladder"):
            IauOptions(ladder=ladder)
    with pytest.raises(ConfigError, match="ladder and correction: give one"):
        IauOptions(ladder="1.0,0.1", correction=0.3)
    with pytest.raises(ConfigError, match="rounds: must be zero or positive"):
        IauOptions(rounds=-1)
    for accept in (0.0, -0.5, 2.0):  # 2.0: over reach_tol, an accepted run could fail the check
        with pytest.raises(ConfigError, match="accept_rms: must be positive"):
            IauOptions(accept_rms=accept)
