"""The one parser of environment variables that carry numbers: every value is checked (an
integer in its range, a size below a sane bound) and a bad one is a one-line error naming the
variable, never a traceback from deep inside (``LOCAL_WORLD_SIZE=abc``, ``IAU_MEMORY_BUDGET=inf``)."""

from __future__ import annotations

import os

from iau_cli.errors import ConfigError

MAX_BYTES = 1 << 50
"""A petabyte: no size iau reads from the environment may exceed it (``1e20`` is a typo)."""


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int = 1 << 31) -> int:
    """An integer variable in [minimum, maximum], or ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={raw!r}: expected a whole number from {minimum:,} to {maximum:,}")
    return value


_SIZE_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"512M"`` → bytes (suffixes k, m, g, t, optionally followed by b or ib; case-insensitive)."""
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    number, suffix = (value[:-1], value[-1]) if value and value[-1] in _SIZE_SUFFIXES else (value, "")
    try:
        size = float(number) * _SIZE_SUFFIXES[suffix]
    except ValueError:
        raise ValueError(f"{text!r} is not a size such as 512M or 2G") from None
    if not 0 <= size < float("inf"):  # negative, NaN, inf and 1e400 alike
        raise ValueError(f"{text!r} is not a size such as 512M or 2G")
    return int(size)


def env_size(name: str) -> int | None:
    """A size in bytes (``512M``, ``2G``, a plain number), at most ``MAX_BYTES``; None when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        size = parse_size(raw)
    except (ValueError, OverflowError):
        raise ConfigError(f"{name}={raw!r}: expected a size such as 512M or 2G") from None
    if size > MAX_BYTES:
        raise ConfigError(f"{name}={raw!r}: more than a petabyte; expected a size such as 512M or 2G")
    return size
