"""Small file helpers shared by the library and the CLI."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from iau_cli.errors import OutputError


def default_output(checkpoint: str | os.PathLike[str]) -> Path:
    """``model.safetensors`` → ``model.unlearned.safetensors`` (deterministic, next to the input)."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}.unlearned{path.suffix or '.safetensors'}")


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


def _same_or_inside(output: Path, source: Path) -> bool:
    """Whether writing ``output`` would replace ``source`` (the same file, through symlinks or hard
    links) or add a file inside it (a data folder, whose fingerprint would then change)."""
    if output.exists() and source.exists():
        with contextlib.suppress(OSError):
            if os.path.samefile(output, source):
                return True
    resolved, target = output.resolve(), source.resolve()
    return resolved == target or (source.is_dir() and target in resolved.parents)


def check_outputs(outputs: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Before any work: no output may be a folder, replace an input (checkpoint, ids file, config,
    data — after symlinks, hard links by inode), land inside a data folder, or be another output;
    its folder must exist and be writable. ``None`` and ``-`` (stdout/stdin) are skipped."""
    sources = [(label, Path(value).expanduser()) for label, value in inputs.items() if value not in (None, "-")]
    taken: list[tuple[str, Path]] = []
    for label, value in outputs.items():
        if value is None or str(value) == "-":
            continue
        path = Path(value).expanduser()
        if path.is_dir():
            raise OutputError(f"{path}: {label} names a folder; give a file name")
        for source_label, source in sources:
            if _same_or_inside(path, source):
                raise OutputError(f"{path}: {label} would overwrite the {source_label} {source}; choose another path")
        for other_label, other in taken:
            if _same_or_inside(path, other):
                raise OutputError(f"{path}: {label} and {other_label} name the same file; give each its own")
        taken.append((label, path))
        parent = path.resolve().parent
        if not parent.is_dir():
            raise OutputError(f"{path}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise OutputError(f"{path}: folder {parent} is not writable")
