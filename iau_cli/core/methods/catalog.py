"""The method catalog: one line per method — its name, options class, entry point, summary and
capabilities — read without torch, so that ``iau unlearn --help``, option parsing and the lineage
walk stay fast. A method's own module (torch) is imported the first time its ``run`` is called.

A new method is one file plus one line: ``iau_cli/core/methods/<name>.py`` with its
``run(context, options) -> MethodOutput``, and its :class:`MethodSpec` line in :data:`CATALOG` —
with its options dataclass in :mod:`iau_cli.core.methods.options` when it takes options (``NoOptions``
when it takes none; options classes live there, torch-free, so help can list them).
tests/test_methods.py adds a method that way and runs it.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from iau_cli.config import from_dict
from iau_cli.core.methods.options import (
    AscentOptions,
    FinetuneOptions,
    FisherOptions,
    IauOptions,
    InfluenceOptions,
    RetrainOptions,
)
from iau_cli.errors import ConfigError


@dataclass(frozen=True)
class MethodSpec:
    """A method: its name, options dataclass, entry point (``module:function``) and summary."""

    name: str
    options: type
    entry: str
    summary: str
    # Capabilities, declared here so that no caller special-cases a method by name:
    retrains: bool = False  # trains from scratch on the retained rows (the gold standard): its result
    # is the bench's reference, it is no rival to rank against, and the child's ledger is recomputed.
    revision: int = 0  # raised whenever what the method does with the same options changes (a new
    # default rule or weight): bench cells key it, so a results folder written before the change does
    # not hand its old runs back under the same label.

    @property
    def run(self) -> Callable[[Any, Any], Any]:
        """The method's ``run(context, options)``, imported on first use."""
        module, _, function = self.entry.partition(":")
        return getattr(importlib.import_module(module), function)

    def parse_options(self, values: dict[str, Any] | None) -> Any:
        """Options from a mapping (defaults for missing keys; every bad key reported at once)."""
        return from_dict(self.options, values or {}, source=f"method {self.name} options")


_M = "iau_cli.core.methods."
CATALOG: tuple[MethodSpec, ...] = (
    MethodSpec("iau", IauOptions, _M + "iau:run", "IAU: ascent on forget + correction on retained rows from θ*, iterated to per-row held-out loss targets (or the reference's one Adam sign step)", revision=3),
    MethodSpec("retrain", RetrainOptions, _M + "retrain:run", "retrain from scratch on the retained rows with the checkpoint's own recipe", retrains=True),
    MethodSpec("finetune", FinetuneOptions, _M + "descent:run_finetune", "a few epochs of the recipe on the retained rows"),
    MethodSpec("gradient-ascent", AscentOptions, _M + "descent:run_gradient_ascent", "gradient ascent on the forget rows"),
    MethodSpec("neggrad-plus", AscentOptions, _M + "descent:run_neggrad_plus", "NegGrad+: β·loss(retain) − (1 − β)·loss(forget), step by step"),
    MethodSpec("influence", InfluenceOptions, _M + "influence:run", "influence functions: the Newton step θ + (1/n)·H⁻¹·Σ_f ∇ℓ (exact, CG or LiSSA)"),
    MethodSpec("fisher", FisherOptions, _M + "fisher:run", "Fisher forgetting: noise scaled by the inverse diagonal Fisher of the retained rows"),
)  # fmt: skip

MethodName = Enum("MethodName", {spec.name.upper().replace("-", "_"): spec.name for spec in CATALOG}, type=str)  # type: ignore[misc]
"""Every method's name (a ``str`` Enum: the CLI's choices), made from the catalog."""


def get_method(name: str | Enum) -> MethodSpec:
    """The method called ``name``."""
    key = name.value if isinstance(name, Enum) else name
    for spec in CATALOG:
        if spec.name == key:
            return spec
    known = ", ".join(spec.name for spec in CATALOG)
    raise ConfigError(f"unknown method {key!r}; known: {known}")


def retrains(name: str | None) -> bool:
    """Whether the method called ``name`` trains from scratch (False for names no method has, as an
    old lineage may record)."""
    return any(spec.name == name and spec.retrains for spec in CATALOG)


def options_help(width: int = 100) -> str:
    """Each method's ``-O`` keys with their defaults, for ``iau unlearn --help``."""
    lines = []
    for spec in CATALOG:
        keys = [f"{f.name}={_default(f)}" for f in dataclasses.fields(spec.options)]
        line, parts = f"{spec.name}:", []
        for key in keys:
            if len(line) + len(key) + 1 > width:
                parts.append(line)
                line = "   "
            line += f" {key}"
        lines.append("\n".join([*parts, line]))
    return "\n".join(lines)


def _default(f: Any) -> str:
    if f.default is not dataclasses.MISSING:
        return "auto" if f.default is None else str(f.default)
    return "…"
