"""Forget-id files: one id per line, blank lines and ``#`` comments ignored, ``-`` for stdin.

Kept apart from the data module so the CLI can check an ids file before importing torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iau_cli.errors import IdsError


@dataclass(frozen=True)
class ForgetRequest:
    """Parsed forget ids: unique, in file order, with how many lines were duplicates."""

    ids: list[str]
    duplicates: int
    source: str


def parse_forget_ids(raw: bytes, source: str) -> ForgetRequest:
    """Parse a forget-id file: one id per line, blank lines and ``#`` comments ignored."""
    if b"\x00" in raw[:65536]:
        raise IdsError(f"{source}: looks like a binary file, not a text file of ids (one per line)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise IdsError(f"{source}: not UTF-8 text (bad byte at line {line}); save the id list as UTF-8") from None
    seen: dict[str, None] = {}
    total = 0
    for line in text.splitlines():
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        total += 1
        seen[item] = None
    if not seen:
        raise IdsError(f"{source}: no ids found (one id per line; blank lines and # comments are ignored)")
    return ForgetRequest(ids=list(seen), duplicates=total - len(seen), source=source)


def read_forget_ids(path: str | os.PathLike[str], stdin: Any = None) -> ForgetRequest:
    """Read a forget-id file, or standard input when ``path`` is ``-``."""
    import sys

    if str(path) == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        raw = stream.read()
        return parse_forget_ids(raw if isinstance(raw, bytes) else raw.encode(), "<stdin>")
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise IdsError(f"{path}: ids file not found") from None
    except IsADirectoryError:
        raise IdsError(f"{path}: is a folder, not an ids file") from None
    except OSError as exc:
        raise IdsError(f"{path}: cannot read ids file ({exc.strerror})") from None
    return parse_forget_ids(raw, str(path))
