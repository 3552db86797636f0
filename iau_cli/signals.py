"""SIGTERM and SIGHUP end a command the way Ctrl-C does (torch-free; installed first thing).

``timeout``, ``kill`` and service managers send SIGTERM; a closed terminal sends SIGHUP. Each is
turned into :class:`Terminated`, a ``KeyboardInterrupt``, so every ``with`` block unwinds as it does
for Ctrl-C: staged outputs are removed, output locks released, nothing half-written is published;
the error boundary then writes the error JSON (kind ``interrupted``) and exits 128 + the signal's
number (143 for SIGTERM, 129 for SIGHUP). A second signal during that cleanup is ignored, so the
cleanup itself is not cut short.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal (see the module docstring)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(self.name)


received: int | None = None
"""The signal that stopped this process, if one did (code that saw only a KeyboardInterrupt, such
as typer's argument parsing, maps its 130 to this signal's code with :func:`exit_code`)."""


def exit_code() -> int:
    """128 + the signal that stopped the process; 130 (Ctrl-C) when none did."""
    return 128 + received if received is not None else 130


pending: int | None = None
"""A signal that arrived before the command started, not acted on yet (:func:`deliver`)."""

_importing_signal: int | None = None
_IGNORED: set[int] = set()
_ENTRY = False  # handlers are iau's only under its own entry point, never in a host process (tests)
_RETRY_SECONDS = 0.02


def _record(signum: int, frame: FrameType | None) -> None:
    global pending
    pending = signum


def _importing(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside Python's import machinery (a module is being executed)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


acted: int | None = None
"""The stop signal this process acted on (raised for), whichever exception it became."""


def _act(signum: int) -> None:
    global received, acted
    acted = signum
    stop_timer()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    received = signum
    for handled in (*HANDLED, signal.SIGINT):  # the cleanup that follows is not cut short
        signal.signal(handled, signal.SIG_IGN)
    raise Terminated(signum)


_holding = 0


@contextlib.contextmanager
def holding() -> Iterator[None]:
    """A stretch no stop signal may cut (publishing a set of outputs: links, renames, journals);
    one that arrives is acted on just after it."""
    global _holding
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
        if not _holding and _importing_signal is not None:
            signal.setitimer(signal.ITIMER_REAL, _RETRY_SECONDS)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """While a command runs. An exception raised inside an import (numpy's, torch's: the commands
    import them lazily) leaves a half-imported module behind, and the next import of it fails with
    a traceback (``numpy has no attribute intp``); so a signal that lands in an import is held and
    acted on as soon as the import is done (re-checked every 20 ms on SIGALRM)."""
    global _importing_signal
    if _holding or _importing(frame):
        _importing_signal = signum
        signal.setitimer(signal.ITIMER_REAL, _RETRY_SECONDS)
        return
    _act(signum)


def _retry(signum: int, frame: FrameType | None) -> None:
    global _importing_signal
    if _importing_signal is None:
        return
    if _holding or _importing(frame):
        signal.setitimer(signal.ITIMER_REAL, _RETRY_SECONDS)
        return
    held, _importing_signal = _importing_signal, None
    _act(held)


def defer() -> None:
    """From the first line of the entry point until a command starts: SIGINT, SIGTERM and SIGHUP
    are only recorded (the CLI is importing, then parsing arguments); :func:`install` then takes
    over and :func:`deliver` acts on what arrived. A signal the parent set to be ignored stays
    ignored (``nohup iau …`` keeps running when its terminal closes), as Python does for SIGINT."""
    global _ENTRY
    _ENTRY = True
    for handled in (*HANDLED, signal.SIGINT):
        if signal.getsignal(handled) is signal.SIG_IGN:
            _IGNORED.add(handled)
        else:
            signal.signal(handled, _record)
            signal.siginterrupt(handled, False)  # see install()


def install() -> None:
    """The handlers a running command has: SIGTERM and SIGHUP become :class:`Terminated`, SIGINT
    ``KeyboardInterrupt`` — each held while an import runs (main thread only, as Python requires)."""
    if not _ENTRY:
        return
    for handled in (*HANDLED, signal.SIGINT):
        if handled not in _IGNORED and signal.getsignal(handled) is not signal.SIG_IGN:
            signal.signal(handled, _on_signal)
            # Restart interrupted system calls: Python retries its own, but code in torch or the
            # safetensors reader does not, and failed on EINTR ("could not determine the shape of
            # object type 'torch.storage.UntypedStorage'", reported as a corrupt checkpoint).
            signal.siginterrupt(handled, False)
    signal.signal(signal.SIGALRM, _retry)
    signal.siginterrupt(signal.SIGALRM, False)


def deliver() -> None:
    """Act on a signal that arrived before the command started, now that it can clean up after it:
    raise :class:`Terminated` (SIGTERM, SIGHUP) or ``KeyboardInterrupt`` (SIGINT). Called where the
    command's outputs are known (after its output guard, so the error JSON can be written) and,
    failing that, when the command starts or returns."""
    global pending
    signum, pending = pending, None
    if signum is not None:
        _act(signum)


def finished() -> None:
    """The command returned (its outputs, if any, are published): a signal now would only turn a
    finished run's exit status into a failure, so the rest of the exit ignores them."""
    if not _ENTRY:
        return
    for handled in (*HANDLED, signal.SIGINT):
        if handled not in _IGNORED:
            signal.signal(handled, signal.SIG_IGN)
    stop_timer()
    signal.signal(signal.SIGALRM, signal.SIG_IGN)


def stop_timer() -> None:
    """No retry timer outlives a decision (acting on a signal, or the run ending either way):
    Python resets its handlers to the default as it exits, and a SIGALRM then would kill the
    process (measured: exit -14 after a success JSON). The retry handler stays, for a signal held
    later (a run that catches an interruption and goes on, as bench does)."""
    global _importing_signal
    _importing_signal = None
    if _ENTRY:
        signal.setitimer(signal.ITIMER_REAL, 0)
