"""SIGTERM and SIGHUP end a command the way Ctrl-C does (torch-free; installed first thing).

``timeout``, ``kill`` and service managers send SIGTERM; a closed terminal sends SIGHUP. Each is
turned into :class:`Terminated`, a ``KeyboardInterrupt``, so every ``with`` block unwinds as it does
for Ctrl-C: staged outputs are removed, output locks released, nothing half-written is published;
the error boundary then writes the error JSON (kind ``interrupted``) and exits 128 + the signal's
number (143 for SIGTERM, 129 for SIGHUP). A second signal during that cleanup is ignored, so the
cleanup itself is not cut short.
"""

from __future__ import annotations

import signal
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


def _stop(signum: int, frame: FrameType | None) -> None:
    global received
    received = signum
    for handled in (*HANDLED, signal.SIGINT):  # the cleanup that follows is not cut short
        signal.signal(handled, signal.SIG_IGN)
    raise Terminated(signum)


def exit_code() -> int:
    """128 + the signal that stopped the process; 130 (Ctrl-C) when none did."""
    return 128 + received if received is not None else 130


def install() -> None:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` (main thread only, as Python requires). A
    signal the parent set to be ignored stays ignored (``nohup iau …`` keeps running when its
    terminal closes), as Python itself does for SIGINT."""
    for handled in HANDLED:
        if signal.getsignal(handled) is not signal.SIG_IGN:
            signal.signal(handled, _stop)
