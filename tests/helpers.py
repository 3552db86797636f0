"""Helpers for CLI tests."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from iau_cli.cli.app import app


def run_cli(*args: str, input: str | bytes | None = None) -> Result:
    """Invoke ``iau`` in-process; stdout and stderr stay separate."""
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_bad_input(result: Result, *fragments: str) -> None:
    """Exit 2, one line on stderr that contains every fragment, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
