"""Where bench results live: the key of each cell and of each cached model (content, never names)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from iau_cli import __version__
from iau_cli.config import (
    RunConfig,
    to_dict,
)
from iau_cli.core.methods import get_method
from iau_cli.recipes.bench.spec import ORIGINAL, MethodEntry, RequestSize


def cell_key(
    workload: str, run_config: RunConfig, entry: MethodEntry, request: RequestSize, seed: int, chain: int = 1
) -> str:
    """The content key of one cell. A one-request ratio cell of a method at revision 0 keys as it did
    before sizes, chains and revisions existed, so a results folder written then is resumed, not
    recomputed; a method whose behaviour has changed since (its catalog ``revision``) is rerun."""
    what: list[object] = [workload, _keyed(run_config), dataclasses.asdict(entry), request.key(), seed]
    if chain != 1:
        what.append({"chain": chain})
    revision = method_revision(entry)
    if revision:
        what.append({"revision": revision})
    text = json.dumps(what, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def method_revision(entry: MethodEntry) -> int:
    """The catalog revision of the entry's method (0 for the original, which runs nothing)."""
    return 0 if entry.method == ORIGINAL else get_method(entry.method).revision


def _keyed(config: RunConfig) -> dict[str, object]:
    """The config as keys hash it, without ``model.path`` (the folder user code is imported from:
    where, not what; keys written before it existed stay valid)."""
    mapping = to_dict(config)
    mapping["model"].pop("path", None)
    return mapping


def recipe_digest(config: RunConfig) -> str:
    text = json.dumps([_keyed(config), __version__], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_seed(config: RunConfig, seed: int, plain: bool = False) -> RunConfig:
    train_config = dataclasses.replace(config.train, seed=seed, gr_alpha=0.0 if plain else config.train.gr_alpha)
    return dataclasses.replace(config, train=train_config)
