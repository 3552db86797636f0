"""Run configuration: frozen dataclasses, filled from defaults, then YAML, then ``--set`` overrides.

Every field carries a help string. Loading collects *every* problem (unknown keys, wrong types,
invalid values) and raises one :class:`ConfigError` listing them all, so a user fixes a config in
one round trip.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from iau_cli.errors import ConfigError

BUILTIN_PREFIX = "builtin:"
DATA_FORMATS = ("auto", "parquet", "csv", "json", "disk", "imagefolder")


class InvalidConfig(ConfigError):
    """A config dataclass whose values fail its ``check()``; ``problems`` lists each."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s): " + "; ".join(problems))


class Checked:
    """A config dataclass whose ``check()`` runs however it is built — :func:`from_dict`, the
    constructor, ``dataclasses.replace`` — so no code path makes a config nobody checked."""

    def check(self) -> list[str]:
        return []

    def __post_init__(self) -> None:
        problems = self.check()
        if problems:
            raise InvalidConfig(problems, type(self).__name__)


def help_field(text: str, **kwargs: Any) -> Any:
    """A dataclass field with a help string in its metadata (every option dataclass uses it)."""
    return field(metadata={"help": text}, **kwargs)


@dataclass(frozen=True)
class DataConfig(Checked):
    """Where the rows live and how they become tensors."""

    train: str = help_field("Training rows: a file, a folder, or builtin:digits.", default="builtin:digits")
    test: str | None = help_field(
        "Held-out rows (same format). Without it, test_fraction of the train rows is split off.",
        default=None,
    )
    format: str = help_field(f"One of {', '.join(DATA_FORMATS)}; auto reads the file ending.", default="auto")
    test_fraction: float = help_field(
        "Fraction of train rows held out as test when no test file is given (chosen by id hash).",
        default=0.2,
    )
    id_column: str = help_field("Column of stable sample ids (matched as strings).", default="id")
    label_column: str = help_field("Column of class indices 0..K-1.", default="label")
    feature_columns: list[str] | None = help_field(
        "Numeric feature columns; default every numeric column except id and label.", default=None
    )
    image_column: str | None = help_field(
        "Image column (decoded to a C×H×W tensor in [0, 1]); set for image data.", default=None
    )
    shape: list[int] | None = help_field(
        "Reshape tabular features to this shape, e.g. [1, 8, 8] to treat pixels as an image.",
        default=None,
    )
    resize: list[int] | None = help_field("Resize images to [height, width].", default=None)
    grayscale: bool = help_field("Decode images as one channel instead of RGB.", default=False)
    scale: float = help_field("Multiply raw tabular features by this before normalizing.", default=1.0)
    mean: float | list[float] | Literal["auto"] = help_field(
        "Subtract this (per channel or feature) after scaling; auto: each feature's mean over the learned rows, "
        "computed by iau train and stored in the checkpoint.",
        default=0.0,
    )
    std: float | list[float] | Literal["auto"] = help_field(
        "Divide by this (per channel or feature) after centring; auto: each feature's standard deviation over "
        "the learned rows (as for mean).",
        default=1.0,
    )
    num_classes: int | None = help_field("Number of classes; default max label + 1.", default=None)

    def check(self) -> list[str]:
        problems = []
        if self.format not in DATA_FORMATS:
            problems.append(f"format: {self.format!r} is not one of {', '.join(DATA_FORMATS)}")
        if not 0.0 < self.test_fraction < 1.0:
            problems.append(f"test_fraction: {self.test_fraction} must be between 0 and 1 (exclusive)")
        if self.resize is not None and (len(self.resize) != 2 or min(self.resize) < 1 or max(self.resize) > MAX_SIDE):
            problems.append(f"resize: {self.resize} must be [height, width], each from 1 to {MAX_SIDE:,}")
        if self.shape is not None and (not self.shape or min(self.shape) < 1):
            problems.append(f"shape: {self.shape} must be a list of positive sizes")
        elif self.shape is not None and math.prod(self.shape) > MAX_ROW_VALUES:
            problems.append(f"shape: {self.shape} is more than {MAX_ROW_VALUES:,} values a row")
        std = [] if self.std == "auto" else self.std if isinstance(self.std, list) else [self.std]
        if any(s <= 0 for s in std):
            problems.append("std: every value must be positive")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, list) and not value:
                problems.append(f"{name}: an empty list; give one value per channel or feature")
        if self.num_classes is not None and self.num_classes < 2:
            problems.append("num_classes: must be at least 2")
        if not (math.isfinite(self.scale) and 0 < abs(self.scale) <= MAX_SCALE):
            problems.append(
                f"scale: {self.scale} must be a finite, non-zero number of magnitude at most {MAX_SCALE:g} (features "
                "are float32: beyond that they overflow)"
            )
        numbers = [x for v in (self.mean, self.std) if v != "auto" for x in (v if isinstance(v, list) else [v])]
        if any(not math.isfinite(float(v)) for v in numbers):
            problems.append("mean, std: every value must be finite")
        return problems


@dataclass(frozen=True)
class ModelConfig(Checked):
    """Which network to build. ``name`` is a built-in architecture or ``package.module:Class``."""

    name: str = help_field("logreg, mlp, lenet5, resnet18, or an import path package.module:Class.", default="mlp")
    args: dict[str, Any] = help_field("Keyword arguments for the architecture.", default_factory=dict)
    path: str | None = help_field(
        "Folder a package.module:Class is imported from (relative to the config; default: the config's folder).",
        default=None,
    )

    def check(self) -> list[str]:
        if not self.name:
            return ["name: must not be empty"]
        problem = hidden_sizes_problem(self.args["hidden"]) if self.name == "mlp" and "hidden" in self.args else None
        return [f"args.hidden: {problem}"] if problem else []


def hidden_sizes_problem(hidden: Any) -> str | None:
    """What is wrong with an MLP's hidden sizes (an int or a list of ints), or None."""
    sizes = list(hidden) if isinstance(hidden, (list, tuple)) else [hidden]
    if any(isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= 1 << 20 for h in sizes):
        return f"{hidden!r} must be positive integers (at most 1,048,576)"
    return None


@dataclass(frozen=True)
class TrainConfig(Checked):
    """The training recipe. Retraining (the gold standard) reuses it on the retained rows."""

    seed: int = help_field("Seed for initialization, shuffling and splits.", default=0)
    optimizer: Literal["adam", "sgd"] = help_field("adam or sgd.", default="adam")
    lr: float = help_field("Learning rate.", default=1e-3)
    momentum: float = help_field("SGD momentum.", default=0.0)
    weight_decay: float = help_field("L2 weight decay.", default=0.0)
    epochs: int = help_field("Passes over the training rows.", default=20)
    batch_size: int = help_field("Rows per step.", default=64)
    gr_alpha: float = help_field(
        "Gradient restriction: add alpha·‖∇ℓ‖₂ to the loss (0 turns it off; the IAU reference uses 0.005).",
        default=0.0,
    )
    gr_norm: Literal["per-tensor", "global"] = help_field(
        "per-tensor: sum over parameter tensors of each tensor's gradient norm (the reference); "
        "global: the norm of the whole gradient vector.",
        default="per-tensor",
    )
    val_fraction: float = help_field(
        "Hold out this fraction of train rows (by id hash) for early stopping; 0 turns it off.", default=0.0
    )
    patience: int = help_field("Early stopping: epochs without validation improvement before stopping.", default=5)
    references: int = help_field(
        "Reference models trained on halves of the rows (an even number; 0 turns them off): per-row targets for "
        "the default unlearning rule, a one-off cost of references/2 trainings (iau_cli/core/references.py).",
        default=4,
    )

    def check(self) -> list[str]:
        problems = []
        if not 0 <= self.seed < 2**63:
            problems.append(f"seed: {self.seed} must be a whole number from 0 to 2**63 − 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr: {self.lr} must be positive")
        if self.epochs < 1:
            problems.append(f"epochs: {self.epochs} must be at least 1")
        if self.batch_size < 1:
            problems.append(f"batch_size: {self.batch_size} must be at least 1")
        if self.gr_alpha < 0:
            problems.append(f"gr_alpha: {self.gr_alpha} must be zero or positive")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"val_fraction: {self.val_fraction} must be in [0, 1)")
        if self.patience < 1:
            problems.append(f"patience: {self.patience} must be at least 1")
        if self.references < 0 or self.references % 2 or self.references > 64:
            problems.append(f"references: {self.references} must be 0 or an even number up to 64")
        if self.momentum < 0 or self.weight_decay < 0:
            problems.append("momentum and weight_decay must be zero or positive")
        return problems


@dataclass(frozen=True)
class RunConfig:
    """A whole training run: data, model and recipe."""

    data: DataConfig = help_field("Data section.", default_factory=DataConfig)
    model: ModelConfig = help_field("Model section.", default_factory=ModelConfig)
    train: TrainConfig = help_field("Training section.", default_factory=TrainConfig)


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON-able data."""
    return dataclasses.asdict(config)


def from_dict(cls: type, mapping: Any, *, source: str = "config") -> Any:
    """Build a config dataclass from a mapping, reporting every problem at once."""
    problems: list[str] = []
    value = _build(cls, mapping, "", problems)
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s): " + "; ".join(problems))
    return value


PRESETS_DIR = Path(__file__).resolve().parent / "presets"
PRESETS = ("digits-mlp", "digits-lenet", "purchase-mlp", "noisy-mlp", "noisyimages-lenet", "mixed-mlp")
"""The built-in workloads' run configs: YAML files in ``iau_cli/presets/`` (the files
``sample_configs/*_mlp.yaml`` and ``*_lenet.yaml`` link to), shared by bench, demo and the docs."""


def preset(name: str) -> RunConfig:
    """The run config of the built-in workload ``name`` (one of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown built-in workload {name!r}; built-in: {', '.join(PRESETS)}")
    return load_run_config(PRESETS_DIR / f"{name}.yaml")


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config; relative data paths are resolved against the config's folder.

    ``overrides`` are ``dotted.key=value`` strings (values parsed as YAML) applied after the file.
    """
    path = Path(path)
    mapping = read_yaml_mapping(path, "config", "a mapping with data, model and train sections")
    mapping = apply_overrides(mapping, overrides or [], source=str(path))
    config = from_dict(RunConfig, mapping, source=str(path))
    return resolve_paths(config, path.resolve().parent)


MAX_YAML_DEPTH = 100
MAX_SCALE = 1e30
MAX_SIDE = 8192
"""The largest image side ``resize`` may ask for (a crafted 40000×40000 asked for 9 TB)."""
MAX_ROW_VALUES = 1 << 26


def safe_yaml(text: str) -> Any:
    """``yaml.safe_load`` for configs, stricter: no aliases (``*name`` — a 700-byte alias bomb
    expands to hundreds of millions of values), no duplicate keys (a second ``train:`` silently
    replaced the first), nesting at most ``MAX_YAML_DEPTH`` deep. Raises ``yaml.YAMLError``."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"aliases (*{event.anchor}) are not allowed in a config; write the value out",
                    event.start_mark,
                )
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", self.peek_event().start_mark
                )
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (the first would be silently replaced)", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    loader = Loader(text)  # a SafeLoader: what yaml.safe_load runs, with the checks above
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_mapping(path: Path, what: str, shape: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file (``yaml.safe_load``); every way it can fail is a
    one-line ConfigError naming the file (``what``: "config", "bench config"; ``shape``: what the
    top level must be)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give the {what} file") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at line {line}); save the {what} as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    try:
        mapping = safe_yaml(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: the top level must be {shape}")
    return mapping


def apply_overrides(mapping: dict[str, Any], overrides: list[str], *, source: str) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides to a nested mapping (a copy is returned)."""
    import copy

    import yaml

    result = copy.deepcopy(mapping)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{source}: override {item!r} must look like section.key=value")
        try:
            value = safe_yaml(raw) if raw else ""
        except yaml.composer.ComposerError as exc:  # an alias or a bomb: refused, not taken as text
            raise ConfigError(f"{source}: override {item!r}: {exc.problem}") from None
        except yaml.YAMLError:
            value = raw
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def resolve_paths(config: RunConfig, base: Path) -> RunConfig:
    """Make the data paths absolute (relative ones are taken from ``base``)."""

    def fix(value: str | None) -> str | None:
        if value is None or value.startswith(BUILTIN_PREFIX):
            return value
        path = Path(value).expanduser()
        # Absolute, never resolved: a data symlink (current.csv -> v7.csv) is recorded as the link,
        # so a retargeted link is read (and its change noticed) by every later command.
        return str(path if path.is_absolute() else Path(os.path.abspath(base / path)))

    data = dataclasses.replace(config.data, train=fix(config.data.train), test=fix(config.data.test))
    model = config.model
    if ":" in model.name:  # user code is imported from the config's folder unless it says where
        model = dataclasses.replace(model, path=fix(model.path) if model.path is not None else str(base.resolve()))
    return dataclasses.replace(config, data=data, model=model)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _build(tp: Any, value: Any, where: str, problems: list[str]) -> Any:
    """Check ``value`` against the type ``tp``; append problems (prefixed by ``where``)."""
    # Long on purpose: one dispatch over the types a config field may have (dataclass, union,
    # literal, list, dict, scalars), so every problem is collected in one walk.
    label = where or "config"
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"{label}: expected a mapping, got {_describe(value)}")
            return None
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        kwargs = {}
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            if key not in fields:
                close = difflib.get_close_matches(str(key), fields, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(fields)})"
                problems.append(f"{name}: unknown key{hint}")
                continue
            before = len(problems)
            built = _build(hints[key], item, name, problems)
            if len(problems) == before:
                kwargs[key] = built
        before = len(problems)
        try:
            instance = tp(**kwargs)  # a Checked dataclass runs its check() here
        except InvalidConfig as exc:
            if len(problems) == before:  # a problem in a field already explains a failing check
                problems.extend(f"{where}.{p}" if where else p for p in exc.problems)
            return None
        except TypeError as exc:
            problems.append(f"{label}: {exc}")
            return None
        check = getattr(instance, "check", None)
        if not isinstance(instance, Checked) and check is not None and len(problems) == before:
            problems.extend(f"{where}.{p}" if where else p for p in check())  # a class that is not Checked
        return instance

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        candidates = [a for a in args if a is not type(None)]
        for candidate in candidates:
            trial: list[str] = []
            built = _build(candidate, value, where, trial)
            if not trial:
                return built
        names = " or ".join(_type_name(a) for a in args)
        problems.append(f"{label}: expected {names}, got {_describe(value)}")
        return None
    if origin is Literal:
        if value not in args:
            problems.append(f"{label}: {_describe(value)} is not one of {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{label}: expected a list, got {_describe(value)}")
            return None
        return [_build(args[0], item, f"{label}[{i}]", problems) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{label}: expected a mapping, got {_describe(value)}")
            return None
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(f"{label}: expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{label}: expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        # PyYAML reads 1e-3 (no dot) as a string; accept numeric strings for float fields.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{label}: expected a number, got {_describe(value)}")
            return value
        if not math.isfinite(value):
            problems.append(f"{label}: {value} is not a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            problems.append(f"{label}: expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported config type {tp!r}")  # a bug in a config dataclass, not user input


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(tp, str(tp))


def parse_key_values(items: list[str], *, source: str) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` → ``{"a": 1, "b": {"c": "x"}}`` (values parsed as YAML)."""
    return apply_overrides({}, items, source=source)
