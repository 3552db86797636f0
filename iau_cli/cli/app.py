"""The root app and its commands, each wrapped in the one error boundary (``common.boundary``).

Command modules import the library (and so torch) only when a command runs, so ``iau --help``
and argument errors stay fast.
"""

from __future__ import annotations

import typer

from iau_cli import __version__
from iau_cli.cli import audit, bench, delete_rows, demo, ledger, lineage, train, unlearn
from iau_cli.cli.common import boundary

app = typer.Typer(
    name="iau",
    help="Machine unlearning for PyTorch classifiers with Influence Approximation Unlearning (IAU).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"iau {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Train, unlearn, audit and benchmark. Exit codes: 0 ok, 1 audit failed, 2 bad input."""


SHORT = {
    "train": "Train a model from a YAML config into a checkpoint.",
    "unlearn": "Forget sample ids: a new checkpoint, the event in its lineage.",
    "audit": "Check a deletion (exit 0 pass, 1 fail, 2 bad input).",
    "bench": "Compare unlearning methods on the same data and seeds.",
    "demo": "The whole story on the built-in data, end to end.",
    "lineage": "Print a checkpoint's whole history.",
    "delete-rows": "Delete forgotten rows from a data file, atomically.",
}

for module in (train, unlearn, audit, bench, demo, lineage, delete_rows):
    app.command(
        module.NAME,
        help=module.command.__doc__,
        short_help=SHORT[module.NAME],
        epilog=getattr(module, "EPILOG", None),
        no_args_is_help=getattr(module, "NO_ARGS_HELP", True),
    )(boundary(module.command))


app.add_typer(ledger.app, name=ledger.NAME, short_help="Show or refresh the gradient ledger.")


def main() -> None:
    """The ``iau`` entry point. Usage errors (an unknown option, a missing argument) are one line on
    stderr and exit 2, like every other bad input; help and version print as usual; Ctrl-C is 130
    (a closed standard output is handled by the commands' error boundary); SIGTERM 143 and SIGHUP
    129 (``iau_cli.signals``, installed by ``iau_cli.entry`` before this module is imported)."""
    import signal
    import sys

    from iau_cli import signals
    from iau_cli.signals import Terminated

    try:  # typer vendors click from 0.2x on; older typer uses click itself
        from typer._click import exceptions
    except ImportError:  # pragma: no cover
        from click import exceptions  # type: ignore[no-redef]

    try:
        code = app(prog_name="iau", standalone_mode=False)
    except exceptions.NoArgsIsHelpError as exc:
        sys.stdout.write((exc.ctx.get_help() if exc.ctx else str(exc)) + "\n")
        sys.exit(2)
    except exceptions.UsageError as exc:
        where = f"; see '{exc.ctx.command_path} --help'" if exc.ctx else ""
        message = " ".join(exc.format_message().split()).rstrip(".")
        sys.stderr.write(f"iau: error: {message}{where}\n")
        if _json_to_stdout(sys.argv[1:]):  # a script reading --json - still gets its error object
            import json

            sys.stdout.write(json.dumps({"error": {"kind": "bad_input", "message": message + where}}, indent=2) + "\n")
        sys.exit(exc.exit_code)
    except Terminated as exc:
        sys.stderr.write(f"iau: terminated ({exc.name})\n")
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("iau: interrupted\n")
        sys.exit(130)
    if signals.pending is not None:  # a signal from start-up, and no command ran to act on it (--help)
        sys.stderr.write(f"iau: terminated ({signal.Signals(signals.pending).name})\n")
        sys.exit(130 if signals.pending == signal.SIGINT else 128 + signals.pending)
    if code == 130 and signals.received is not None:  # typer turned a SIGTERM into its Ctrl-C exit
        sys.stderr.write(f"iau: terminated ({signal.Signals(signals.received).name})\n")
        code = signals.exit_code()
    sys.exit(code if isinstance(code, int) else 0)


def _json_to_stdout(argv: list[str]) -> bool:
    """Whether the command line asks for ``--json -`` (the guard has not run, so a file is never
    written on a usage error; standard output is safe)."""
    return "--json=-" in argv or any(a == "--json" and b == "-" for a, b in zip(argv, argv[1:]))
