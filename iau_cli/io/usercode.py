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
``~/.config/iau/trusted-code``; ``off`` keeps nothing): one ``sha256 module folder`` line per
consent, all three matched (trusted bytes copied elsewhere are not trusted). The module is run
from the hashed bytes (never a cached ``.pyc``).
The digest covers the module file and the ``__init__.py`` of each package on its dotted path, not
modules that code imports in turn.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import os
import stat
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
        origin = Path(os.path.abspath(spec.origin))  # a symlinked module file is found where it is named
        if depth == 0:
            locations = list(spec.submodule_search_locations or [])
            root = Path(os.path.abspath(locations[0])).parent if locations else origin.parent
        files.append(origin)
        search = list(spec.submodule_search_locations or [])
    assert root is not None
    return root, files


MAX_CODE_BYTES = 16 << 20
"""A model file is read only up to 16 MiB."""


def _sources(name: str, folder: str | None) -> tuple[Path, list[tuple[Path, bytes]], str]:
    """The folder, each file an import of ``name`` executes with its bytes, and their digest."""
    root, files = module_files(name.partition(":")[0], folder)
    digest = hashlib.sha256()
    sources = []
    for path in files:
        try:
            if not path.is_file():
                raise ModelError(f"model code {path} is not a regular file")
            with open(path, "rb") as handle:
                content = handle.read(MAX_CODE_BYTES + 1)
        except OSError as exc:
            raise ModelError(f"cannot read model code {path}: {exc.strerror or exc}") from None
        if len(content) > MAX_CODE_BYTES:
            raise ModelError(f"model code {path} is larger than 16 MiB")
        digest.update(os.fsencode(os.path.relpath(path, root)) + b"\0")
        digest.update(hashlib.sha256(content).digest())
        sources.append((path, content))
    return root, sources, digest.hexdigest()


def pin(name: str, folder: str | None) -> dict[str, str]:
    """``{"folder", "module", "sha256"}`` of the code an import path names: the folder it is
    imported from (absolute) and a digest of the files the import executes (:func:`module_files`)."""
    root, _, digest = _sources(name, folder)
    return {"folder": str(root), "module": name.partition(":")[0], "sha256": digest}


class _Exact(importlib.machinery.SourceFileLoader):
    """A source loader that compiles the bytes it was given (the ones hashed), never a ``.pyc``."""

    def __init__(self, fullname: str, path: str, content: bytes) -> None:
        super().__init__(fullname, path)
        self.content = content

    def get_code(self, fullname: str) -> Any:
        return self.source_to_code(self.content, self.path)


def load(name: str, folder: str | None) -> Any:
    """The object ``package.module:Attr`` names. Its module (and each package on its dotted path) is
    executed from the very bytes :func:`pin` hashes — compiled here, never from a cached ``.pyc``
    that could differ — with ``folder`` on the import path while it runs (for the modules it
    imports in turn, which the pin does not cover)."""
    import importlib.util

    module_name, _, attr = name.partition(":")
    if module_name in sys.modules:
        module = sys.modules[module_name]
        loaded = getattr(module, "__file__", None)
        root, files = module_files(module_name, folder)
        if loaded is None or Path(os.path.abspath(loaded)) != files[-1]:
            raise ModelError(
                f"model import path {name!r}: {module_name!r} is already imported from {loaded}, not {files[-1]}"
            )
    else:
        root, sources, _ = _sources(name, folder)
        parts = module_name.split(".")
        added = str(root) not in sys.path
        if added:
            sys.path.insert(0, str(root))
        try:
            for depth, (path, content) in enumerate(sources):
                dotted = ".".join(parts[: depth + 1])
                if dotted in sys.modules:
                    continue
                loader = _Exact(dotted, str(path), content)
                locations = [str(path.parent)] if path.name == "__init__.py" else None
                spec = importlib.util.spec_from_file_location(
                    dotted, path, loader=loader, submodule_search_locations=locations
                )
                assert spec is not None
                part = importlib.util.module_from_spec(spec)
                sys.modules[dotted] = part
                try:
                    loader.exec_module(part)
                except BaseException:
                    sys.modules.pop(dotted, None)
                    raise
                if depth:
                    setattr(sys.modules[".".join(parts[:depth])], parts[depth], part)
        except Exception as exc:  # noqa: BLE001 - a failing user import is bad input, reported in one line
            raise ModelError(
                f"model import path {name!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
            ) from None
        finally:
            if added:
                sys.path.remove(str(root))
        module = sys.modules[module_name]
    target: Any = module
    for part_name in attr.split("."):
        if not hasattr(target, part_name):
            raise ModelError(f"model import path {name!r}: {module_name} has no attribute {attr!r}")
        target = getattr(target, part_name)
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


def _entry(code: dict[str, str]) -> str:
    """One consent as the trust file keeps it: digest, module and folder (its real path) together,
    so trusted bytes copied into another folder, or named by another module, are not trusted."""
    return f"{code['sha256']} {code['module']} {os.path.realpath(code['folder'])}"


def _trusted(path: Path) -> set[str]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO named by the variable never blocks
    except OSError:
        return set()
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return set()
        text = handle.read(MAX_TRUST_BYTES).decode("utf-8", "replace")
    return {line.strip() for line in text.splitlines() if line.strip()}


def is_trusted(code: dict[str, str]) -> bool:
    path = trust_file()
    return path is not None and _entry(code) in _trusted(path)


def remember(code: dict[str, str]) -> None:
    """Add a consent to the trust file (atomically; a file that cannot be written, or is full, is
    left alone: later commands then ask for ``--trust-checkpoint-code`` again)."""
    path = trust_file()
    if path is None or is_trusted(code):
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = sorted(_trusted(path)) if path.exists() else []
        text = "".join(f"{line}\n" for line in [*kept, _entry(code)])
        if len(text.encode()) > MAX_TRUST_BYTES:
            return
        fd, temp = tempfile.mkstemp(prefix=".trusted-code.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, os.path.realpath(path))  # a symlinked trust file stays a symlink
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError:
        return


def consented(name: str, folder: str | None, *, named: bool, recorded: Any) -> bool:
    """Whether the import path may be imported: the user ``named`` it now (remembered), or the
    checkpoint's ``recorded`` pin — an absolute folder, this module, a digest — is what the folder
    holds now and the trust file lists exactly that."""
    if named:
        remember(pin(name, folder))
        return True
    if not isinstance(recorded, dict) or not all(
        isinstance(recorded.get(k), str) for k in ("folder", "module", "sha256")
    ):
        return False
    if recorded["module"] != name.partition(":")[0] or not os.path.isabs(recorded["folder"]):
        return False
    if not is_trusted(recorded):
        return False
    try:
        current = pin(name, recorded["folder"])
    except ModelError:
        return False
    return current["sha256"] == recorded["sha256"] and is_trusted(current)
