"""iau bench [CONFIG.yaml]"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iau_cli.cli.common import (
    DeviceOpt,
    JsonOpt,
    OverwriteOpt,
    Publish,
    QuietOpt,
    ReportFormatOpt,
    ReportOpt,
    check_output_paths,
    emit,
    progress_sink,
)

NAME = "bench"
NO_ARGS_HELP = False


def command(
    config: Annotated[
        Path | None,
        typer.Argument(
            metavar="CONFIG.yaml", help="Bench config; default: a quick grid on purchase-mlp, noisy-mlp and digits-mlp."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for cached models and runs.jsonl (resumable).")
    ] = Path("bench-out"),
    seeds: Annotated[int | None, typer.Option("--seeds", min=1, help="Seeds per cell (overrides the config).")] = None,
    ratios: Annotated[
        str | None,
        typer.Option(
            "--ratios",
            metavar="R1,R2",
            help="Request sizes as fractions, e.g. 0.01,0.05. With --sizes or alone, replaces the config's ratios and sizes.",
        ),
    ] = None,
    sizes: Annotated[
        str | None,
        typer.Option(
            "--sizes",
            metavar="N1,N2",
            help="Request sizes in rows, e.g. 2,5,30. With --ratios or alone, replaces the config's ratios and sizes.",
        ),
    ] = None,
    chain: Annotated[
        int | None,
        typer.Option(
            "--chain",
            min=1,
            help="Requests per cell, forgotten in sequence, each from the previous output; the final model is "
            "judged against one retrained without all of them (overrides the config).",
        ),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods", metavar="LABEL|N,…", help="Only these methods: labels or 1-based positions in the config."
        ),
    ] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", metavar="PATH", help="Write the tables as Markdown.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", metavar="PATH.png", help="Chart of removal vs utility vs time.")
    ] = None,
    device: DeviceOpt = "auto",
    json_target: JsonOpt = None,
    report: ReportOpt = None,
    report_format: ReportFormatOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Compare unlearning methods on the same data and seeds: time, RTE, memory, accuracy, MIA, Tug-of-War.

    The config (YAML) lists workloads, methods, ratios (fractions), sizes (rows), chain (requests
    forgotten in sequence) and seeds; each key is described in iau_cli.recipes.bench.BenchConfig.
    """
    # typer declares every flag in the signature; the body folds the flags into the bench config,
    # guards the outputs, runs, publishes.
    import dataclasses

    from iau_cli.errors import ConfigError
    from iau_cli.recipes.bench import load_bench_config, require_matplotlib, run_bench
    from iau_cli.recipes.bench import plot as draw

    bench_config, base = load_bench_config(config)
    changes: dict[str, object] = {}
    if seeds is not None:
        changes["seeds"] = seeds
    if chain is not None:
        changes["chain"] = chain
    if ratios is not None or sizes is not None:  # the request sizes on the command line replace the config's
        changes["ratios"] = _numbers("--ratios", ratios, float)
        changes["sizes"] = _numbers("--sizes", sizes, int)
    if methods is not None:
        wanted = [m.strip() for m in methods.split(",") if m.strip()]
        known = {m.label: m for m in bench_config.methods}
        known.update({str(n): m for n, m in enumerate(bench_config.methods, start=1)})
        unknown = [m for m in wanted if m not in known]
        if unknown:
            listed = ", ".join(f"{n}: {m.label}" for n, m in enumerate(bench_config.methods, start=1))
            raise ConfigError(f"--methods: unknown label(s) {', '.join(unknown)}; known: {listed}")
        changes["methods"] = [known[m] for m in wanted]
    bench_config = dataclasses.replace(bench_config, **changes)  # checked again (config.Checked)
    from iau_cli.errors import OutputError
    from iau_cli.recipes.bench import workload_inputs

    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: --out is a file; the bench needs a folder for its models and runs.jsonl")
    check_output_paths(
        {"--json": json_target, "--report": report, "--markdown": markdown, "--plot": plot},
        config=config,
        others={"bench folder (--out)": out, **workload_inputs(bench_config, base)},
        overwrite=overwrite,
        report_format=report_format,
    )
    if plot is not None:
        require_matplotlib()  # before the bench runs, not after
    from iau_cli.core import distributed
    from iau_cli.io.files import Outputs

    with progress_sink(not quiet) as progress:
        result = run_bench(bench_config, out, base=base, device=device, progress=progress)
    with Outputs() as staged:
        if plot is not None and distributed.is_main():
            staged.stage(plot, lambda temp: draw(result, temp), overwrite=overwrite)
        from iau_cli.cli.reports import report_for

        emit(
            report_for(result),
            result.to_dict(),
            Publish(json_target, report, report_format, quiet, overwrite),
            outputs=staged,
            inputs={"config": config},
            reports=[(markdown, "md")] if markdown else None,
        )
    if result.interrupted:  # Ctrl-C 130; SIGTERM / SIGHUP 128 + the signal (iau_cli.signals)
        from iau_cli.signals import exit_code

        raise typer.Exit(exit_code())


def _numbers(flag: str, text: str | None, kind: type) -> list:
    from iau_cli.errors import ConfigError

    try:
        return [kind(part) for part in (text or "").split(",") if part.strip()]
    except ValueError:
        what = "whole numbers" if kind is int else "numbers"
        raise ConfigError(f"{flag} {text!r}: expected {what} separated by commas") from None
