"""The ``iau`` entry point: signal handlers first, then the CLI (whose imports take a moment)."""

from __future__ import annotations

import sys


def main() -> None:
    from iau_cli.signals import Terminated, install

    install()
    try:
        from iau_cli.cli.app import main as run
    except Terminated as exc:  # stopped while the CLI was still importing: nothing was started
        sys.stderr.write(f"iau: terminated ({exc.name})\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("iau: interrupted\n")
        sys.exit(130)
    run()
