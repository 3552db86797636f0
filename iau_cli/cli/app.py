"""The root app, its commands, and the one error boundary.

Command modules import the library (and so torch) only when a command runs, so ``iau --help``
and argument errors stay fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer

from iau_cli import __version__
from iau_cli.cli import audit, demo, train, unlearn

app = typer.Typer(
    name="iau",
    help="Machine unlearning for PyTorch classifiers with Influence Approximation Unlearning (IAU).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)


def boundary(command: Callable[..., Any]) -> Callable[..., Any]:
    """Known errors (bad input) → one line on stderr and exit 2; bugs keep their traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from iau_cli.errors import IauError

        try:
            return command(*args, **kwargs)
        except IauError as exc:
            message = " ".join(str(exc).split())
            sys.stderr.write(f"iau: error: {message}\n")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            sys.stderr.write("iau: interrupted\n")
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"iau {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Train, unlearn, audit and benchmark. Exit codes: 0 ok, 1 audit failed, 2 bad input."""


for module in (train, unlearn, audit, demo):
    app.command(module.NAME, help=module.command.__doc__, no_args_is_help=getattr(module, "NO_ARGS_HELP", True))(
        boundary(module.command)
    )


def main() -> None:
    app(prog_name="iau")
