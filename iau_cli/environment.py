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


def env_size(name: str) -> int | None:
    """A size in bytes (``512M``, ``2G``, a plain number), at most ``MAX_BYTES``; None when unset."""
    from iau_cli.io.store import parse_size

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
