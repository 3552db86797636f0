"""Unlearning methods behind one registry.

``MethodName`` (a ``str`` Enum) names every method and feeds the CLI's choices; it is importable
without torch so ``iau --help`` stays fast. :func:`get_method` loads the registry on first use.
A new method is a module, its entry in :mod:`iau_cli.core.methods.registry`, its options class in
:mod:`iau_cli.core.methods.options` (``OPTIONS``) and its name here.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iau_cli.core.methods.base import MethodSpec


class MethodName(str, Enum):
    IAU = "iau"
    RETRAIN = "retrain"
    FINETUNE = "finetune"
    GRADIENT_ASCENT = "gradient-ascent"
    NEGGRAD_PLUS = "neggrad-plus"
    INFLUENCE = "influence"
    FISHER = "fisher"


def get_method(name: str | MethodName) -> MethodSpec:
    """The registered method called ``name``."""
    from iau_cli.core.methods.registry import REGISTRY
    from iau_cli.errors import ConfigError

    try:
        key = MethodName(name)
    except ValueError:
        known = ", ".join(m.value for m in MethodName)
        raise ConfigError(f"unknown method {name!r}; known: {known}") from None
    return REGISTRY[key]
