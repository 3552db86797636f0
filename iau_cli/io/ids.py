"""Forget-id files: one id per line, ``-`` for stdin.

Blank lines and lines starting with ``#`` are ignored and surrounding spaces stripped. A line
starting with ``"`` is one JSON string literal, so that any id a dataset can hold — one with
spaces at its ends, a leading ``#`` or ``"``, or a line break inside — can be requested:
``"  #padded id"`` or ``"two\nlines"``. :func:`format_ids` writes ids this way (quoting only
those that need it). Reads are capped at ``IAU_MAX_IDS_BYTES`` (default 256 MiB).

Kept apart from the data module so the CLI can check an ids file before importing torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from iau_cli.environment import MAX_BYTES, env_int
from iau_cli.errors import IdsError


@dataclass(frozen=True)
class ForgetRequest:
    """Parsed forget ids: unique, in file order, with how many lines were duplicates."""

    ids: list[str]
    duplicates: int
    source: str
    sha256: str = ""  # of the bytes read (the record names the input by it, stdin included)


MAX_IDS_BYTES = 256 << 20
_LINES = re.compile(r"\r\n|\r|\n")  # line ends; other Unicode separators stay inside a line
_SHOWN_ID_CHARS = 60


def short_id(sample_id: str) -> str:
    """An id as messages show it: whole when short, else its start, an ellipsis and its length."""
    if len(sample_id) <= _SHOWN_ID_CHARS:
        return sample_id
    return f"{sample_id[:_SHOWN_ID_CHARS]}… ({len(sample_id):,} characters)"


def needs_quoting(sample_id: str) -> bool:
    """Whether an id must be written as a JSON string to survive the plain one-per-line format."""
    return (
        not sample_id
        or sample_id != sample_id.strip()
        or sample_id[0] in '#"\ufeff'
        or len(sample_id.splitlines()) != 1
        or "\x00" in sample_id
    )


def format_ids(ids: list[str]) -> str:
    """An ids file that :func:`parse_forget_ids` reads back as exactly ``ids``."""
    return "".join((json.dumps(i) if needs_quoting(i) else i) + "\n" for i in ids)


def parse_forget_ids(raw: bytes, source: str, *, allow_empty: bool = False) -> ForgetRequest:
    """Parse a forget-id file (the format is in the module docstring). An empty (or comment-only)
    file is an error unless ``allow_empty`` (``unlearn --allow-missing``: an empty day is a no-op)."""
    if b"\x00" in raw[:65536]:
        raise IdsError(f"{source}: looks like a binary file, not a text file of ids (one per line)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise IdsError(f"{source}: not UTF-8 text (bad byte at line {line}); save the id list as UTF-8") from None
    seen: dict[str, None] = {}
    total = 0
    for number, line in enumerate(_LINES.split(text), start=1):
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith('"'):
            item = _quoted(item, source, number)
        total += 1
        seen[item] = None
    if not seen and not allow_empty:
        raise IdsError(
            f"{source}: no ids found (one id per line; blank lines and # comments are ignored); with "
            "--allow-missing an empty request is a no-op (exit 0, an unchanged copy)"
        )
    digest = hashlib.sha256(raw).hexdigest()
    return ForgetRequest(ids=list(seen), duplicates=total - len(seen), source=source, sha256=digest)


def _quoted(item: str, source: str, number: int) -> str:
    try:
        value = json.loads(item)
    except ValueError:
        value = None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise IdsError(f"{source}: line {number} is not valid Unicode (a lone surrogate escape)") from None
    if not isinstance(value, str):
        raise IdsError(
            f'{source}: line {number} starts with " but is not one JSON string (write "id with \\"quotes\\"")'
        )
    return value


def max_ids_bytes() -> int:
    """The cap on an ids file's size (``IAU_MAX_IDS_BYTES``)."""

    return env_int("IAU_MAX_IDS_BYTES", MAX_IDS_BYTES, minimum=1, maximum=MAX_BYTES)


def _read_capped(stream: Any, source: str) -> bytes:
    cap = max_ids_bytes()
    raw = stream.read(cap + 1)
    raw = raw if isinstance(raw, bytes) else raw.encode()
    if len(raw) > cap:
        raise IdsError(
            f"{source}: more than {cap:,} bytes of ids; split the request, or raise the cap with IAU_MAX_IDS_BYTES"
        )
    return raw


def read_forget_ids(path: str | os.PathLike[str], stdin: Any = None, *, allow_empty: bool = False) -> ForgetRequest:
    """Read a forget-id file, or standard input when ``path`` is ``-`` (at most ``max_ids_bytes``)."""
    import sys

    if str(path) == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        return parse_forget_ids(_read_capped(stream, "<stdin>"), "<stdin>", allow_empty=allow_empty)
    try:
        with open(path, "rb") as handle:
            raw = _read_capped(handle, str(path))
    except FileNotFoundError:
        raise IdsError(f"{path}: ids file not found") from None
    except IsADirectoryError:
        raise IdsError(f"{path}: is a folder, not an ids file") from None
    except OSError as exc:
        raise IdsError(f"{path}: cannot read ids file ({exc.strerror})") from None
    return parse_forget_ids(raw, str(path), allow_empty=allow_empty)
