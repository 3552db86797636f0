"""Self-describing safetensors checkpoints: tensors, namespaced metadata, lineage, atomic writes.

A checkpoint holds the model's ``state_dict`` and, as JSON strings under ``iau.*`` metadata keys,
everything needed to rebuild the model and find its data. The ids it has forgotten are stored as
salted hashes, never in clear. An optional gradient ledger (issue: cost follows the request) is
stored as extra tensors under a reserved prefix that :func:`load_checkpoint` separates out.

Loading never unpickles: only safetensors and JSON are parsed.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iau_cli import __version__
from iau_cli.errors import CheckpointError, OutputError

FORMAT_VERSION = 1
LEDGER_PREFIX = "__iau_ledger__."
_HASH_BYTES = 16
META_KEYS = ("iau.format", "iau.version", "iau.model", "iau.data", "iau.train", "iau.lineage", "iau.forgotten")


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string (seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class ForgottenIds:
    """The ids a lineage has forgotten, as salted sha256 prefixes (the clear ids are never stored)."""

    salt: str = field(default_factory=lambda: secrets.token_hex(16))
    hashes: set[bytes] = field(default_factory=set)

    def digest(self, sample_id: str) -> bytes:
        return hashlib.sha256(bytes.fromhex(self.salt) + sample_id.encode()).digest()[:_HASH_BYTES]

    def contains(self, sample_id: str) -> bool:
        return bool(self.hashes) and self.digest(sample_id) in self.hashes

    def add(self, ids: Iterable[str]) -> None:
        self.hashes.update(self.digest(i) for i in ids)

    def list_digest(self, ids: Iterable[str]) -> str:
        """A salted digest of an id list (order and duplicates do not matter)."""
        digest = hashlib.sha256(bytes.fromhex(self.salt))
        for sample_id in sorted(set(ids)):
            digest.update(sample_id.encode() + b"\n")
        return digest.hexdigest()

    def __len__(self) -> int:
        return len(self.hashes)

    def to_json(self) -> dict[str, Any]:
        packed = b"".join(sorted(self.hashes))
        return {"salt": self.salt, "count": len(self.hashes), "hashes": base64.b64encode(packed).decode()}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ForgottenIds:
        packed = base64.b64decode(value.get("hashes", ""))
        if len(packed) % _HASH_BYTES:
            raise ValueError("forgotten-id hashes have a bad length")
        hashes = {packed[i : i + _HASH_BYTES] for i in range(0, len(packed), _HASH_BYTES)}
        return cls(salt=value["salt"], hashes=hashes)


@dataclass
class CheckpointMeta:
    """The ``iau.*`` metadata of a checkpoint, decoded."""

    model: dict[str, Any]
    data: dict[str, Any]
    train: dict[str, Any]
    lineage: list[dict[str, Any]] = field(default_factory=list)
    forgotten: ForgottenIds = field(default_factory=ForgottenIds)
    ledger: dict[str, Any] | None = None
    format: int = FORMAT_VERSION
    version: str = __version__

    def to_metadata(self) -> dict[str, str]:
        metadata = {
            "iau.format": str(self.format),
            "iau.version": self.version,
            "iau.model": json.dumps(self.model, sort_keys=True),
            "iau.data": json.dumps(self.data, sort_keys=True),
            "iau.train": json.dumps(self.train, sort_keys=True),
            "iau.lineage": json.dumps(self.lineage),
            "iau.forgotten": json.dumps(self.forgotten.to_json()),
        }
        if self.ledger is not None:
            metadata["iau.ledger"] = json.dumps(self.ledger, sort_keys=True)
        return metadata

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str) -> CheckpointMeta:
        missing = [k for k in META_KEYS if k not in metadata]
        if "iau.format" in missing:
            raise CheckpointError(
                f"{source}: a plain safetensors file without iau metadata; pass --config CONFIG.yaml "
                "describing its model and data"
            )
        try:
            fmt = int(metadata["iau.format"])
        except ValueError:
            raise CheckpointError(f"{source}: iau.format {metadata['iau.format']!r} is not a version number") from None
        if fmt > FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: checkpoint format {fmt} is newer than this iau supports ({FORMAT_VERSION}); upgrade iau"
            )
        if missing:
            raise CheckpointError(f"{source}: metadata is incomplete (missing {', '.join(missing)})")
        try:
            return cls(
                format=fmt,
                version=metadata["iau.version"],
                model=json.loads(metadata["iau.model"]),
                data=json.loads(metadata["iau.data"]),
                train=json.loads(metadata["iau.train"]),
                lineage=json.loads(metadata["iau.lineage"]),
                forgotten=ForgottenIds.from_json(json.loads(metadata["iau.forgotten"])),
                ledger=json.loads(metadata["iau.ledger"]) if "iau.ledger" in metadata else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{source}: iau metadata is corrupt ({exc})") from None


@dataclass
class Checkpoint:
    """A loaded checkpoint: the state dict, its metadata, the ledger tensors, and the file's hash."""

    path: Path
    state_dict: dict[str, Any]
    meta: CheckpointMeta | None
    sha256: str
    ledger_tensors: dict[str, Any] = field(default_factory=dict)
    _params_digest: str | None = field(default=None, repr=False)

    def params_digest(self) -> str:
        """``params_sha256`` of the stored state dict (computed once)."""
        if self._params_digest is None:
            self._params_digest = params_sha256(self.state_dict)
        return self._params_digest


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def params_sha256(state_dict: dict[str, Any]) -> str:
    """A digest of a state dict's tensors (names, dtypes, shapes, bytes) in name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The raw metadata of a safetensors file, without loading tensors."""
    from safetensors import safe_open

    with _reading(path):
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})


def recorded_data_paths(path: str | os.PathLike[str]) -> dict[str, str]:
    """The data files a checkpoint's metadata names (for the output guard; empty when unreadable)."""
    try:
        config = json.loads(read_metadata(path).get("iau.data", "{}")).get("config", {})
        return {f"{split} data": str(config[split]) for split in ("train", "test") if config.get(split)}
    except (CheckpointError, ValueError, AttributeError, TypeError):
        return {}


def load_checkpoint(path: str | os.PathLike[str], *, require_meta: bool = True) -> Checkpoint:
    """Load tensors and metadata; ``require_meta=False`` accepts a plain state dict (meta is None)."""
    from safetensors.torch import load_file

    path = Path(path)
    metadata = read_metadata(path)
    with _reading(path):
        tensors = load_file(str(path))
    if metadata.get("iau.format") is None and not require_meta:
        meta = None
    else:
        meta = CheckpointMeta.from_metadata(metadata, str(path))
    state = {k: v for k, v in tensors.items() if not k.startswith(LEDGER_PREFIX)}
    ledger = {k[len(LEDGER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(LEDGER_PREFIX)}
    return Checkpoint(path=path, state_dict=state, meta=meta, sha256=file_sha256(path), ledger_tensors=ledger)


@contextlib.contextmanager
def _reading(path: str | os.PathLike[str]) -> Iterator[None]:
    from safetensors import SafetensorError

    try:
        yield
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a .safetensors file") from None
    except PermissionError:
        raise CheckpointError(f"{path}: permission denied") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt: {exc})") from None


def save_checkpoint(
    path: str | os.PathLike[str],
    state_dict: dict[str, Any],
    meta: CheckpointMeta,
    *,
    ledger_tensors: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> str:
    """Write a checkpoint atomically (temp file, fsync, rename) and return its sha256.

    Without ``overwrite`` an existing file is never replaced, even by a concurrent writer: the final
    step is a hard link, which fails if the name exists.
    """
    from safetensors.torch import save_file

    path = Path(path)
    check_writable(path, overwrite=overwrite)
    remove_stale_temps(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    for name, value in (ledger_tensors or {}).items():
        tensors[LEDGER_PREFIX + name] = value.detach().cpu().contiguous().clone()
    temp = temp_path(path)
    try:
        save_file(tensors, str(temp), metadata=meta.to_metadata())
        # safetensors creates files 0600; give the checkpoint the permissions any new file gets.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temp, 0o666 & ~mask)
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        digest = file_sha256(temp)
        publish(temp, path, overwrite=overwrite)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({_os_reason(exc)})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return digest


def _writer_tag() -> str:
    """This process's mark in a temp file's name: host and PID. A PID means nothing on another
    host (a shared file system), so only this host's temps are ever judged stale."""
    import socket

    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    return f"{host}-{os.getpid()}"


def temp_path(path: Path, kind: str = "") -> Path:
    """A temporary name beside ``path`` that :func:`remove_stale_temps` can attribute to its writer."""
    return path.parent / f".{path.name}.{_writer_tag()}.{kind or secrets.token_hex(4)}.tmp"


def remove_stale_temps(path: Path) -> None:
    """Delete temp files that a killed run on this host left beside ``path`` (their PID is gone)."""
    host = _writer_tag().split("-")[0]
    for temp in path.parent.glob(f".{path.name}.*.tmp"):
        tag = temp.name[len(path.name) + 2 :].split(".")[0]
        writer_host, _, pid = tag.partition("-")
        if writer_host != host or not pid.isdigit():
            continue  # another host's (its PID is not ours to check), or not ours at all
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                temp.unlink()
        except PermissionError:
            pass  # alive, owned by someone else


def publish(temp: Path, path: Path, *, overwrite: bool) -> None:
    """Move a finished temp file into place atomically, then fsync the folder."""
    if overwrite:
        os.replace(temp, path)
    else:
        try:
            os.link(temp, path)
        except FileExistsError:
            raise OutputError(f"{path}: already exists; pass --overwrite to replace it") from None
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_writable(path: Path, *, overwrite: bool) -> None:
    """Fail early (before any work) if ``path`` cannot be written."""
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for the output")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent}: output folder does not exist")
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"{path.parent}: output folder is not writable")


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied or read-only file system"
    return exc.strerror or str(exc)


@contextlib.contextmanager
def output_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive, non-blocking lock on an output path: a concurrent run to it fails cleanly.

    flock on a hidden ``.NAME.iau-lock`` beside the output (a user's own ``NAME.lock`` is never
    touched), removed *while still held* when the run ends, so a failed run leaves nothing behind.
    A run that locked a file which a finishing run had just unlinked notices that the path no longer
    names its file and starts over, so two runs never hold the lock at once. (``filelock`` leaves
    its lock files in place, which a run that must write nothing on bad input cannot do.)
    """
    import fcntl

    path = Path(path)
    lock_path = path.parent / f".{path.name}.iau-lock"
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{path}: cannot create lock file ({_os_reason(exc)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(f"{path}: another iau run is writing this output; try again when it ends") from None
        try:
            if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the file was unlinked (and maybe replaced) by a run that just finished
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()
        os.close(fd)
