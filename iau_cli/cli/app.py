"""The root app and its commands, each wrapped in the one error boundary (``common.boundary``).

Command modules import the library (and so torch) only when a command runs, so ``iau --help``
and argument errors stay fast.
"""

from __future__ import annotations

import typer

from iau_cli import __version__
from iau_cli.cli import audit, bench, demo, ledger, lineage, train, unlearn
from iau_cli.cli.common import boundary

app = typer.Typer(
    name="iau",
    help="Machine unlearning for PyTorch classifiers with Influence Approximation Unlearning (IAU).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
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


for module in (train, unlearn, audit, bench, demo, lineage):
    app.command(module.NAME, help=module.command.__doc__, no_args_is_help=getattr(module, "NO_ARGS_HELP", True))(
        boundary(module.command)
    )


app.add_typer(ledger.app, name=ledger.NAME)


def main() -> None:
    app(prog_name="iau")
