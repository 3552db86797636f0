"""What the commands share: option aliases, consoles, progress, and writing reports and JSON."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from iau_cli.errors import OutputError
from iau_cli.io.files import Outputs, resolved, write_text_atomic

JsonOpt = Annotated[
    str | None,
    typer.Option("--json", metavar="PATH|-", help="Also write the result as JSON to PATH, or to stdout with -."),
]
ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", metavar="PATH", help="Save the report: Markdown (.md), a web page (.html) or text."),
]
ReportFormatOpt = Annotated[
    str | None,
    typer.Option("--report-format", metavar="md|html|txt", help="The report's format, whatever its extension."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No report or progress; only errors (and --json).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override a config value, e.g. --set train.epochs=5 (repeatable)."),
]
CheckpointArg = Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="A .safetensors checkpoint.")]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint-code",
        help="Import the model class the checkpoint names (runs its code); remembered for that exact code "
        "in IAU_TRUST_FILE, so later commands need no flag (README: Bring your own model).",
    ),
]
AllowDataChangeOpt = Annotated[
    bool, typer.Option("--allow-data-change", help="Proceed although the data fingerprint changed.")
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", metavar="CONFIG.yaml", help="Run config (model and data) for a plain safetensors file."),
]


def boundary(command: Callable[..., Any]) -> Callable[..., Any]:
    """Known errors (bad input) → one line on stderr and exit 2; bugs keep their traceback. A stop
    signal is an interruption however it surfaces: a ``KeyboardInterrupt`` that library code turned
    into another error (torch reports one raised inside its callbacks as "could not determine the
    shape…") is still reported as the interruption, not as bad input or a bug."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from iau_cli import signals
        from iau_cli.errors import IauError

        _CHECKED_OUTPUTS.clear()
        json_target, overwrite = kwargs.get("json_target"), bool(kwargs.get("overwrite"))
        try:
            if json_target in (None, "-"):  # else once the output guard passed the JSON (check_output_paths)
                signals.install()
                signals.deliver()
            result = command(*args, **kwargs)
            signals.deliver()  # a command that ran no guard
            signals.finished()  # published: a signal now must not turn the exit status into a failure
            return result
        except KeyboardInterrupt as exc:
            _interrupted(getattr(exc, "signum", None), json_target, overwrite)
        except IauError as exc:
            if signals.acted is not None:
                _interrupted(signals.acted, json_target, overwrite)
            message = " ".join(str(exc).split())
            sys.stderr.write(f"iau: error: {message}\n")
            _json_error(json_target, exc.kind, message, overwrite)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            # Whoever read standard output went away. Say so once, and point stdout at /dev/null so
            # that Python's final flush does not fail again.
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.stderr.write("iau: error: standard output was closed (broken pipe); files, if any, were written\n")
            raise typer.Exit(2) from None
        except typer.Exit:
            raise  # the command's own exit (bench after Ctrl-C: its partial results are published)
        except Exception:
            if signals.acted is not None:
                _interrupted(signals.acted, json_target, overwrite)
            raise
        finally:
            signals.stop_timer()  # a signal held during a failed publication does not outlive the run

    return wrapper


def _interrupted(signum: int | None, json_target: str | None, overwrite: bool) -> None:
    """Ctrl-C → 130; SIGTERM / SIGHUP → 128 + the signal; the error JSON says ``interrupted``."""
    import signal

    if signum is None or signum == signal.SIGINT:
        sys.stderr.write("iau: interrupted\n")
        _json_error(json_target, "interrupted", "interrupted (Ctrl-C)", overwrite)
        raise typer.Exit(130) from None
    name = signal.Signals(signum).name
    sys.stderr.write(f"iau: terminated ({name})\n")
    _json_error(json_target, "interrupted", f"terminated ({name})", overwrite)
    raise typer.Exit(128 + signum) from None


_CHECKED_OUTPUTS: set[Path] = set()
"""Output files this command's guard found safe to write (see ``check_output_paths``)."""


def _json_error(target: str | None, kind: str, message: str, overwrite: bool = False) -> None:
    """Under ``--json`` a failure still writes JSON, ``{"error": {"kind", "message"}}``, so a script
    can branch on ``error.kind`` instead of reading English from stderr. A file is written only if
    the output guard passed it (each command runs the guard first): an error report must never
    replace an input or another output, and the guard may be what failed."""
    if target is None:
        return
    from iau_cli.cli.report import to_json

    text = to_json({"error": {"kind": kind, "message": message}})
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(target).expanduser()
    if resolved(path) not in _CHECKED_OUTPUTS:
        return
    try:
        # Never over a record another run published meanwhile (only over an error record), unless
        # --overwrite: a failed run must not replace a concurrent run's success record.
        write_text_atomic(path, text, overwrite=overwrite, replace_error=True)
    except OutputError:
        pass  # the JSON file itself cannot be written: stderr already says what failed


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def check_output_paths(
    outputs: dict[str, Any],
    *,
    checkpoint: Any = None,
    ids: Any = None,
    config: Any = None,
    run_config: Any = None,
    others: dict[str, Any] | None = None,
    overwrite: bool = False,
    report_format: str | None = None,
) -> None:
    """Fail before any work if an output is a folder, exists (without ``overwrite``), cannot be
    written, is another output, or would replace an input: the checkpoint(s), the ids file, the
    config, or the data they name. A ``report_format`` must be one iau writes."""
    import os

    from iau_cli.config import BUILTIN_PREFIX
    from iau_cli.io.checkpoint import recorded_data_paths
    from iau_cli.io.files import check_outputs
    from iau_cli.io.forgotten import KEY_FILE_ENV

    inputs: dict[str, Any] = {
        "checkpoint": checkpoint,
        "ids file": ids,
        "config": config,
        "operator key file": os.environ.get(KEY_FILE_ENV) or None,
        **(others or {}),
    }
    if run_config is not None:
        inputs.update({"train data": run_config.data.train, "test data": run_config.data.test})
    for label, path in {"checkpoint": checkpoint, **(others or {})}.items():
        if path is not None and Path(path).is_file():
            inputs.update({f"{label}'s {k}": v for k, v in recorded_data_paths(path).items()})
    inputs = {k: v for k, v in inputs.items() if v is not None and not str(v).startswith(BUILTIN_PREFIX)}
    _check_inputs(inputs)
    # iau's own built-in datasets are inputs of every command that may read them (builtin: data).
    inputs["built-in data folder"] = str(Path(__file__).resolve().parents[1] / "builtin")
    files = {resolved(v) for v in outputs.values() if v not in (None, "-")}
    _CHECKED_OUTPUTS.difference_update(files)  # a later, fuller check that fails withdraws an earlier pass
    if report_format is not None and report_format not in REPORT_FORMATS:
        from iau_cli.errors import ConfigError

        raise ConfigError(f"--report-format {report_format!r}: expected one of {', '.join(REPORT_FORMATS)}")
    json_target = outputs.get("--json")
    if json_target not in (None, "-"):
        # The JSON target alone first: if it is safe, a failure of any other check still gets its
        # error object there (a script branches on it).
        others = {f"{label} output": value for label, value in outputs.items() if label != "--json" and value != "-"}
        with contextlib.suppress(OutputError):
            check_outputs({"--json": json_target}, {**inputs, **others}, overwrite=overwrite)
            _CHECKED_OUTPUTS.add(resolved(json_target))
    from iau_cli import signals

    signals.install()  # the JSON target is known safe: signals now stop the run (with its error JSON)
    signals.deliver()  # and one that arrived before
    check_outputs(outputs, inputs, overwrite=overwrite)
    _CHECKED_OUTPUTS.update(files)


def _check_inputs(inputs: dict[str, Any]) -> None:
    """No input is a device, FIFO or socket: a FIFO would hang the run and a device would be read
    without end (``iau train /dev/zero``). ``-`` is stdin; folders are judged where they are read."""
    import stat

    from iau_cli.errors import ConfigError

    for label, value in inputs.items():
        if value in (None, "-"):
            continue
        try:
            mode = os.stat(Path(value).expanduser()).st_mode
        except (OSError, ValueError):
            continue  # missing: the command that reads it says so in its own words
        if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            raise ConfigError(f"{value}: the {label} is not a regular file (a device, FIFO or socket)")


REPORT_FORMATS = ("md", "html", "txt")


@dataclass
class Publish:
    """The output flags every command shares: where the JSON and the report go, and how."""

    json_target: str | None = None
    report_path: Path | None = None
    report_format: str | None = None
    quiet: bool = False
    overwrite: bool = False


def emit(
    report: Any,
    data: dict[str, Any],
    flags: Publish,
    *,
    outputs: Outputs | None = None,
    inputs: dict[str, Any] | None = None,
    files: dict[str, tuple[Path, str]] | None = None,
    reports: list[tuple[Path, str]] | None = None,
) -> None:
    """Publish every output of the run together, then show the report.

    ``outputs`` holds what the library staged (the checkpoint); the ``files`` (label → path, text),
    the report and the JSON are staged beside it and all are published at once, so a failure
    publishes nothing. The JSON and the report carry a retention record: the iau version, the UTC
    time, the command line, and the full sha256 of every input (``inputs``: label → path) and of
    every other output. ``reports`` (path, format) are more copies of the report, with the record
    too (bench's ``--markdown``). The report is shown on stdout (stderr when JSON goes to stdout).
    """
    from rich.console import Console

    from iau_cli.cli.render import render
    from iau_cli.cli.report import to_json
    from iau_cli.core import distributed

    if not distributed.is_main():
        return  # under torchrun only rank 0 writes and reports
    json_target, report_path, overwrite = flags.json_target, flags.report_path, flags.overwrite
    with outputs if outputs is not None else Outputs() as staged:
        for path, text in (files or {}).values():
            staged.stage_text(Path(path), text, overwrite=overwrite)
        record = retention_record(inputs or {}, staged.digests())
        report.tables.append(record_table(record))
        copies = [(Path(report_path), flags.report_format)] if report_path is not None else []
        for path, report_format in copies + list(reports or []):
            text = render_report(report, path, report_format)
            record["outputs"][str(path)] = staged.stage_text(path, text, overwrite=overwrite)
        data = {**data, "record": record}
        if json_target not in (None, "-"):
            staged.stage_text(Path(json_target), to_json(data), overwrite=overwrite, replace_error=True)
        staged.publish()
        from iau_cli import signals

        signals.finished()  # the run's outputs are committed: it ends as the success it is
    if not flags.quiet:
        console = Console(stderr=True) if json_target == "-" else Console()
        if not console.is_terminal:
            console.width = max(console.width, 140)  # logs and pipes: wide tables stay on one line
        console.print(render(report))
    if json_target == "-":
        sys.stdout.write(to_json(data))
        sys.stdout.flush()


def retention_record(inputs: dict[str, Any], outputs: dict[str, str]) -> dict[str, Any]:
    """Who made this, when, from what: version, UTC time, argv, and full sha256 of inputs and outputs."""
    from iau_cli import __version__
    from iau_cli.io.checkpoint import utc_now
    from iau_cli.io.files import file_sha256

    hashed: dict[str, Any] = {}
    for label, value in inputs.items():
        if value is None:
            continue
        if isinstance(value, tuple):  # (path shown, sha256 already known: stdin ids)
            hashed[label] = {"path": str(value[0]), "sha256": value[1]}
        elif Path(value).is_file():
            hashed[label] = {"path": str(value), "sha256": file_sha256(value)}
    return {
        "iau_version": __version__,
        "time": utc_now(),
        "command": ["iau", *sys.argv[1:]],
        "inputs": hashed,
        "outputs": dict(outputs),
    }


def record_table(record: dict[str, Any]) -> Any:
    from iau_cli.cli.report import Table

    rows = [["iau version", record["iau_version"]], ["time (UTC)", record["time"]]]
    rows += [[f"input: {label}", f"{v['path']}  sha256 {v['sha256']}"] for label, v in record["inputs"].items()]
    rows += [[f"output: {path}", f"sha256 {digest}"] for path, digest in record["outputs"].items()]
    return Table("Record", ["", ""], rows)


def render_report(report: Any, path: Path, report_format: str | None = None) -> str:
    """The report as a file's text: Markdown, a standalone HTML page, or plain text — chosen by
    ``report_format`` when given, else by the extension (.md, .html/.htm; anything else is text)."""
    from rich.console import Console

    from iau_cli.cli.render import render

    if report_format is None:
        suffix = path.suffix.lower()
        report_format = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}.get(suffix, "txt")
    if report_format == "md":
        return report.to_markdown()
    if report_format == "html":
        return report.to_html()
    console = Console(record=True, file=io.StringIO(), width=110, color_system=None)
    console.print(render(report))
    return console.export_text()


@contextlib.contextmanager
def progress_sink(enabled: bool) -> Iterator[Any]:
    """A progress callable for the library, drawn as Rich progress bars on stderr."""
    from iau_cli.progress import no_progress

    if not enabled or not sys.stderr.isatty():
        yield no_progress
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err_console(),
        transient=True,
    ) as progress:

        def sink(label: str, completed: float, total: float) -> None:
            # "task · detail": one bar per task, its description updated with the detail (epoch, loss, phase).
            key = label.split(" · ", 1)[0]
            if key not in tasks:
                tasks[key] = progress.add_task(label, total=total)
            progress.update(tasks[key], completed=completed, total=total, description=label)

        yield sink
