"""Writing files safely: the output guard, the one atomic writer, and the output lock.

Every file a command writes goes through :class:`Outputs`: each is staged as a temporary file
beside its target (written, chmod'ed like any new file, fsynced), and all are published together
at the end — side outputs first, the checkpoint last — so a run that fails at any point publishes
nothing, and one whose publication fails half-way takes back what it had published.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iau_cli import signals
from iau_cli.errors import OutputError


def default_output(checkpoint: str | os.PathLike[str]) -> Path:
    """``model.safetensors`` → ``model.unlearned.safetensors`` (deterministic, next to the input)."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}.unlearned{path.suffix or '.safetensors'}")


# --------------------------------------------------------------------------------------------
# The output guard


LOCK_SUFFIX = ".iau-lock"


def resolved(value: str | os.PathLike[str]) -> Path:
    """``Path.resolve()`` that never raises: a symlink loop or an over-long name stays as given
    (absolute), for the guard to refuse in one line."""
    path = Path(value).expanduser()
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _same_or_inside(output: Path, source: Path) -> bool:
    """Whether writing ``output`` would replace ``source`` (the same file, through symlinks or hard
    links) or add a file inside it (a data folder, whose fingerprint would then change)."""
    if output.exists() and source.exists():
        with contextlib.suppress(OSError):
            if os.path.samefile(output, source):
                return True
    out, target = resolved(output), resolved(source)
    return out == target or (source.is_dir() and target in out.parents)


def check_outputs(outputs: dict[str, Any], inputs: dict[str, Any], *, overwrite: bool = False) -> None:
    """Before any work: no output may be a folder, replace an input (checkpoint, ids file, config,
    data — after symlinks, hard links by inode), land inside a data folder, be another output, or
    exist already (unless ``overwrite``); its folder must exist and be writable. ``None`` and ``-``
    (stdout/stdin) are skipped."""
    sources = [(label, Path(value).expanduser()) for label, value in inputs.items() if value not in (None, "-")]
    taken: list[tuple[str, Path]] = []
    for label, value in outputs.items():
        if value is None:
            continue
        if str(value) == "-":
            if label == "--json":
                continue
            raise OutputError(f"{label} -: only --json can go to standard output; give a file name")
        path = Path(value).expanduser()
        if path.name.endswith((LOCK_SUFFIX, JOURNAL_SUFFIX)) or (
            path.name.startswith(".") and path.name.endswith(".tmp")
        ):
            raise OutputError(f"{path}: {label} names one of iau's own lock or temporary files; choose another name")
        try:
            if path.is_dir():
                raise OutputError(f"{path}: {label} names a folder; give a file name")
            for source_label, source in sources:
                if _same_or_inside(path, source):
                    raise OutputError(
                        f"{path}: {label} would overwrite the {source_label} {source}; choose another path"
                    )
            for other_label, other in taken:
                if _same_or_inside(path, other):
                    raise OutputError(f"{path}: {label} and {other_label} name the same file; give each its own")
            taken.append((label, path))
            check_writable(path, overwrite=overwrite, label=label, replace_error=label == "--json")
        except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long for the file system
            reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
            raise OutputError(f"{str(path)[:200]}: {label} cannot be used as a file name ({reason})") from None


def _refuse_special(path: Path, label: str) -> None:
    """An existing output must be a regular file (through a symlink too): iau never replaces a
    device, a FIFO, a socket or a dangling link (as root, ``--report /dev/null --overwrite``
    would otherwise replace ``/dev/null``)."""
    import stat

    if not path.is_symlink() and not path.exists():
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise OutputError(f"{path}: {label} is a symlink to nothing; remove it or give another name") from None
    if not stat.S_ISREG(mode):
        raise OutputError(f"{path}: {label} is not a regular file (a device, FIFO or socket); give a file name")


def is_error_record(path: Path) -> bool:
    """Whether ``path`` is a regular file holding an iau error JSON and nothing else
    (``{"error": {"kind", "message"}}``, what a failed run leaves under ``--json``): the one output
    a rerun may replace without ``--overwrite``, so that a retry is not blocked by its own failure."""
    import json

    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1_000_000:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    error = data.get("error") if isinstance(data, dict) else None
    return set(data) == {"error"} and isinstance(error, dict) and {"kind", "message"} <= set(error)


def check_writable(path: Path, *, overwrite: bool, label: str = "output", replace_error: bool = False) -> None:
    """Fail early (before any work) if ``path`` cannot be written. ``replace_error``: an existing
    error record (see :func:`is_error_record`) may be replaced without ``overwrite``. A publication
    a killed run left half done beside ``path`` is rolled back (or forward) first."""
    recover_publication(path)
    remove_stale_temps(path)
    if path.is_dir():
        raise OutputError(f"{path}: {label} names a folder; give a file name")
    _refuse_special(path, label)
    exists = path.exists() or path.is_symlink()
    if exists and not overwrite and not (replace_error and is_error_record(path)):
        raise OutputError(f"{path}: {label} already exists; pass --overwrite to replace it")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise OutputError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: folder {parent} is not writable")


# --------------------------------------------------------------------------------------------
# The atomic writer


def _writer_tag() -> str:
    """This process's mark in a temp file's name: host and PID. A PID means nothing on another
    host (a shared file system), so only this host's temps are ever judged stale."""
    import socket

    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    return f"{host}-{os.getpid()}"


def temp_path(path: Path, kind: str = "") -> Path:
    """A temporary name beside ``path`` that :func:`remove_stale_temps` can attribute to its writer."""
    return path.parent / f".{path.name}.{_writer_tag()}.{kind or secrets.token_hex(4)}.tmp"


JOURNAL_SUFFIX = ".iau-journal"


def journal_path(path: Path) -> Path:
    return path.parent / f".{path.name}{JOURNAL_SUFFIX}"


def _write_journals(order: list[Any]) -> list[Path]:
    """The publication's journal, beside every output (fsynced): see :meth:`Outputs.publish`."""
    import json

    journals = [journal_path(item.path) for item in order]
    text = json.dumps(
        {
            "writer": _writer_tag(),
            "commit": str(journals[0]),
            "items": [
                {
                    "path": str(i.path),
                    "temp": str(i.temp),
                    "sha256": i.sha256,
                    "backup": str(i.backup) if i.backup else None,
                }
                for i in order
            ],
        }
    )
    written = []
    for journal in journals:
        written.append(journal)
        with open(journal, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    for folder in {j.parent for j in journals}:
        _fsync_folder(folder)
    return written


def _writer_alive(tag: str) -> bool:
    """Whether the writer a temp or journal name carries may still run: another host's (its PID is
    not ours to check) or a malformed tag counts as alive; on this host, its PID must be gone."""
    host, _, pid = tag.partition("-")
    if host != _writer_tag().split("-")[0] or not pid.isdigit():
        return True  # another host's: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_publication(path: Path) -> None:
    """Finish what a killed run left beside ``path``: roll its publication back (before its commit
    point) or forward (after it). A journal whose writer still runs is left alone."""
    import json

    journal = journal_path(path)
    if not journal.is_file():
        return
    try:
        record = json.loads(journal.read_text(encoding="utf-8"))
        writer, commit, items = record["writer"], Path(record["commit"]), record["items"]
    except (OSError, ValueError, KeyError, TypeError):
        # Cut short while the journals were written: nothing was published yet.
        with contextlib.suppress(OSError):
            journal.unlink()
        return
    if _writer_alive(writer):
        return
    committed = not commit.exists()
    for item in reversed(items):
        target, temp = Path(item["path"]), Path(item["temp"])
        backup = Path(item["backup"]) if item.get("backup") else None
        with contextlib.suppress(OSError):
            if not committed and target.is_file() and file_sha256(target) == item["sha256"]:
                if backup is not None and backup.exists():
                    os.replace(backup, target)  # what the killed run replaced, restored
                else:
                    target.unlink()  # what it added, removed
        for leftover in (temp, backup):
            if leftover is not None:
                with contextlib.suppress(OSError):
                    leftover.unlink()
    for item in items:
        with contextlib.suppress(OSError):
            journal_path(Path(item["path"])).unlink()


def remove_stale_temps(path: Path) -> None:
    """Delete temp files that a killed run on this host left beside ``path`` (their PID is gone)."""
    for temp in path.parent.glob(f".{path.name}.*.tmp"):
        if not _writer_alive(temp.name[len(path.name) + 2 :].split(".")[0]):
            with contextlib.suppress(OSError):
                temp.unlink()


def os_reason(exc: BaseException) -> str:
    """A short reason for a failed write: full disk and read-only file systems named plainly
    (safetensors reports them as ``SafetensorError`` with the OS error inside its message)."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOSPC or "No space left" in text or "StorageFull" in text:
        return "no space left on device"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS) or "Read-only file system" in text:
        return "permission denied or read-only file system"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _write_errors() -> tuple[type[BaseException], ...]:
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - safetensors is a dependency
        return (OSError,)
    return (OSError, SafetensorError)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _Staged:
    temp: Path
    path: Path
    overwrite: bool
    primary: bool
    replace_error: bool = False
    backup: Path | None = None
    published: bool = False
    sha256: str = ""


class Outputs:
    """The files one run writes, staged as temporaries and published together.

    ``stage(path, write)`` calls ``write(temp)`` on a temporary beside ``path``, fsyncs it and
    returns its sha256. ``publish()`` moves every staged file into place — side outputs first,
    ``primary`` ones (the checkpoint) last — a new file by hard link (so a name that appeared
    meanwhile is never replaced) and, with ``overwrite``, by rename after keeping the old file
    aside. If any step fails, the files already published are taken back (new ones removed,
    replaced ones restored) and :class:`OutputError` names the failure. Leaving the ``with`` block
    without publishing removes every temporary. ``lock(path)`` holds :func:`output_lock` until then.
    """

    def __init__(self) -> None:
        self._staged: list[_Staged] = []
        self._locks = contextlib.ExitStack()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc: Any) -> None:
        for item in self._staged:
            with contextlib.suppress(OSError):
                item.temp.unlink()
            if item.backup is not None:
                with contextlib.suppress(OSError):
                    item.backup.unlink()
        self._staged.clear()
        self._locks.close()

    def lock(self, path: str | os.PathLike[str]) -> None:
        self._locks.enter_context(output_lock(path))

    def stage(
        self,
        path: Path,
        write: Callable[[Path], None],
        *,
        overwrite: bool = False,
        primary: bool = False,
        replace_error: bool = False,
    ) -> str:
        path = Path(path).expanduser()
        check_writable(path, overwrite=overwrite, replace_error=replace_error)
        remove_stale_temps(path)
        temp = temp_path(path)
        self._staged.append(_Staged(temp, path, overwrite, primary, replace_error))
        try:
            write(temp)
            # Writers (safetensors) may create files 0600: give outputs the permissions any new file gets.
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(temp, 0o666 & ~mask)
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
            self._staged[-1].sha256 = file_sha256(temp)
            return self._staged[-1].sha256
        except _write_errors() as exc:
            raise OutputError(f"{path}: cannot write ({os_reason(exc)})") from None

    def digests(self) -> dict[str, str]:
        """path → sha256 of every file staged so far."""
        return {str(item.path): item.sha256 for item in self._staged}

    def stage_text(self, path: Path, text: str, *, overwrite: bool = False, replace_error: bool = False) -> str:
        write = lambda temp: temp.write_text(text, encoding="utf-8")  # noqa: E731
        return self.stage(path, write, overwrite=overwrite, replace_error=replace_error)

    def stage_copy(self, source: Path, path: Path, *, overwrite: bool = False, primary: bool = True) -> str:
        return self.stage(path, lambda temp: shutil.copyfile(source, temp), overwrite=overwrite, primary=primary)

    def publish(self) -> None:
        """Publish every staged file, all or nothing — even across a kill.

        Before the first name is touched, a journal listing the whole set (each output, its
        temporary, the sha256 staged, the backup of a file it replaces) is written beside every
        output. Removing the first output's journal is the commit point: a run killed before it is
        rolled back by the next run that checks any of these outputs (:func:`recover_publication`:
        what it published removed, what it replaced restored); one killed after it is rolled forward
        (only the leftovers removed)."""
        order = [s for s in self._staged if not s.primary] + [s for s in self._staged if s.primary]
        if not order:
            return

        with signals.holding():  # a stop signal waits for the set to be published or rolled back
            self._publish(order)

    def _publish(self, order: list[_Staged]) -> None:
        journals: list[Path] = []
        try:
            for item in order:
                if item.path.exists() and (item.overwrite or (item.replace_error and is_error_record(item.path))):
                    item.backup = temp_path(item.path, "backup")
            journals = _write_journals(order)
            for item in order:
                self._publish_one(item)
            for folder in {item.path.parent for item in order}:
                _fsync_folder(folder)
            os.unlink(journals[0])  # the commit point
            _fsync_folder(journals[0].parent)
        except BaseException as exc:
            self._take_back(order)
            for journal in journals:
                with contextlib.suppress(OSError):
                    journal.unlink()
            if isinstance(exc, OutputError):
                raise
            if isinstance(exc, OSError):
                raise OutputError(f"cannot publish the outputs ({os_reason(exc)}); nothing was written") from None
            raise
        for item in order:  # while any journal remains, the backups stay known to recovery
            if item.backup is not None:
                with contextlib.suppress(OSError):
                    item.backup.unlink()
        for journal in journals[1:]:
            with contextlib.suppress(OSError):
                journal.unlink()
        self._staged.clear()

    def _publish_one(self, item: _Staged) -> None:
        # An error record is checked again here, just before it is replaced: a success record that
        # a concurrent run published meanwhile is never replaced without --overwrite.
        if item.overwrite or (item.replace_error and is_error_record(item.path)):
            if item.backup is not None and item.path.exists():
                os.link(item.path, item.backup)
            os.replace(item.temp, item.path)
        else:
            try:
                os.link(item.temp, item.path)
            except FileExistsError:
                raise OutputError(f"{item.path}: already exists; pass --overwrite to replace it") from None
            os.unlink(item.temp)
        item.published = True

    @staticmethod
    def _take_back(order: list[_Staged]) -> None:
        for item in reversed(order):
            if not item.published:
                continue
            with contextlib.suppress(OSError):
                if item.backup is not None:
                    os.replace(item.backup, item.path)
                    item.backup = None
                else:
                    item.path.unlink()


def write_text_atomic(
    path: str | os.PathLike[str], text: str, *, overwrite: bool = True, replace_error: bool = False
) -> None:
    """Write one text file atomically (see :class:`Outputs`)."""
    with Outputs() as outputs:
        outputs.stage_text(Path(path), text, overwrite=overwrite, replace_error=replace_error)
        outputs.publish()


def clean_json(value: Any) -> Any:
    """JSON-safe data: NaN and infinities become null, tuples lists, paths strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return clean_json(value.item())
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# The output lock


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
    lock_path = path.parent / f".{path.name}{LOCK_SUFFIX}"
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{path}: cannot create lock file ({os_reason(exc)})") from None
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
