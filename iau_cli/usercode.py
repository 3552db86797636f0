"""User model code: where a ``package.module:Class`` lives, what it is, and whether to import it.

Importing a user model runs its code, so iau imports one only with the user's consent. Consent is
given by naming the code (``model.name`` in a config passed to ``train`` or ``--config``) or by
``--trust-checkpoint-code``; either one remembers that exact code in the *trust file*. A checkpoint
whose model is user code pins it (``iau.model.code``: the folder it was imported from and the
sha256 of the files the import executes), so later commands on that checkpoint and its children
import it with no flag when the folder still holds exactly that code and the trust file lists it.
A checkpoint made elsewhere names code this user never consented to and is refused as before; so is
code edited since (its digest changed) until the user consents again.

The trust file is ``IAU_TRUST_FILE`` (default ``$XDG_CONFIG_HOME/iau/trusted-code``, else
``~/.config/iau/trusted-code``; ``off`` keeps nothing): one ``sha256 folder`` line per consent.
The digest covers the module file and the ``__init__.py`` of each package on its dotted path, not
modules that code imports in turn.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from iau_cli.errors import ModelError

MAX_TRUST_BYTES = 1 << 20
"""The trust file is read only up to a megabyte (a few thousand consents)."""


def module_files(module: str, folder: str | None) -> tuple[Path, list[Path]]:
    """The folder a dotted module is found in and the files importing it executes (each package's
    ``__init__.py``, then the module), located without importing anything. ``folder`` None
    searches ``sys.path``."""
    parts = module.split(".")
    search: list[str] | None = [folder] if folder is not None else None
    files: list[Path] = []
    root: Path | None = None
    for depth, part in enumerate(parts):
        spec = importlib.machinery.PathFinder.find_spec(part, search)
        if spec is None or not spec.origin or not spec.has_location:
            where = f"in {folder}" if folder is not None else "on the import path"
            raise ModelError(f"cannot import {module!r}: no {'.'.join(parts[: depth + 1])!r} {where}")
        origin = Path(spec.origin).resolve()
        if depth == 0:
            locations = list(spec.submodule_search_locations or [])
            root = Path(locations[0]).resolve().parent if locations else origin.parent
        files.append(origin)
        search = list(spec.submodule_search_locations or [])
    assert root is not None
    return root, files


def pin(name: str, folder: str | None) -> dict[str, str]:
    """``{"folder", "sha256"}`` of the code an import path names (see :func:`module_files`)."""
    root, files = module_files(name.partition(":")[0], folder)
    digest = hashlib.sha256()
    for path in files:
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model code {path}: {exc.strerror or exc}") from None
        digest.update(os.fsencode(os.path.relpath(path, root)) + b"\0")
        digest.update(hashlib.sha256(content).digest())
    return {"folder": str(root), "sha256": digest.hexdigest()}


def load(name: str, folder: str | None) -> Any:
    """The object ``package.module:Attr`` names, imported from ``folder`` (first on the path while
    importing) or from ``sys.path`` when None."""
    module_name, _, attr = name.partition(":")
    root, files = module_files(module_name, folder)
    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - a failing user import is bad input, reported in one line
        raise ModelError(
            f"model import path {name!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        ) from None
    finally:
        if added:
            sys.path.remove(str(root))
    loaded = getattr(module, "__file__", None)
    if loaded is None or Path(loaded).resolve() != files[-1]:
        raise ModelError(
            f"model import path {name!r}: {module_name!r} is already imported from {loaded}, not {files[-1]}"
        )
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ModelError(f"model import path {name!r}: {module_name} has no attribute {attr!r}")
        target = getattr(target, part)
    return target


def trust_file() -> Path | None:
    """Where consents are kept, or None when ``IAU_TRUST_FILE`` is ``off``."""
    raw = os.environ.get("IAU_TRUST_FILE")
    if raw is not None and raw.strip().lower() in ("off", "none", "0", "false", ""):
        return None
    if raw:
        return Path(raw).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "iau" / "trusted-code"


def _trusted_digests(path: Path) -> set[str]:
    try:
        if not path.is_file():  # never open a FIFO or device named by the variable
            return set()
        with open(path, "rb") as handle:
            text = handle.read(MAX_TRUST_BYTES).decode("utf-8", "replace")
    except OSError:
        return set()
    return {line.split()[0] for line in text.splitlines() if line.split() and len(line.split()[0]) == 64}


def is_trusted(digest: str) -> bool:
    path = trust_file()
    return path is not None and digest in _trusted_digests(path)


def remember(code: dict[str, str]) -> None:
    """Add a consent to the trust file (atomically; a file that cannot be written is skipped: later
    commands then ask for ``--trust-checkpoint-code`` again)."""
    path = trust_file()
    if path is None or is_trusted(code["sha256"]):
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_bytes()[:MAX_TRUST_BYTES] if path.is_file() else b""
        line = f"{code['sha256']} {code['folder']}\n".encode()
        fd, temp = tempfile.mkstemp(prefix=".trusted-code.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(old if not old or old.endswith(b"\n") else old + b"\n")
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError:
        return


def consented(name: str, folder: str | None, *, named: bool, recorded: Any) -> bool:
    """Whether the import path may be imported: the user ``named`` it now (remembered), or the
    checkpoint's ``recorded`` pin matches the code in its folder and the trust file lists it."""
    if named:
        remember(pin(name, folder))
        return True
    if not (isinstance(recorded, dict) and isinstance(recorded.get("sha256"), str)):
        return False
    if not is_trusted(recorded["sha256"]):
        return False
    try:
        current = pin(name, recorded.get("folder") if isinstance(recorded.get("folder"), str) else None)
    except ModelError:
        return False
    return current["sha256"] == recorded["sha256"]
