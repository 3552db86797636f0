"""The ``iau`` entry point: signal handlers first, then the CLI (whose imports take a moment)."""

from __future__ import annotations


def main() -> None:
    from iau_cli import signals

    signals.defer()  # until a command starts, a signal is recorded, then acted on by the command
    from iau_cli.cli.app import main as run

    run()
