"""Small file helpers shared by the library and the CLI."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from iau_cli.errors import OutputError


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file via a temporary file and rename, so readers never see half of it."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None
