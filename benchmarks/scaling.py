"""How the cost of `iau unlearn` follows the request, not the dataset (issue: gradient ledger).

    python benchmarks/scaling.py [--sizes 1000,5000,20000,50000] [--forget 50]
                                 [--forget-sizes 10,50,200,1000] [--at 20000] [--repeats 3]

Builds training sets of 1k → 50k rows from the built-in digits (each row a jittered copy of a
digit, with its own id), trains the built-in MLP recipe briefly on each, then times whole
`iau unlearn -O rule=adam-sign` processes (a rule that needs the retained rows' gradient; the
default samples retained rows instead) forgetting the same number of ids, with the checkpoint's
fresh gradient ledger and with the ledger stripped (the retain gradient is then recomputed over
every row). The built-in digits request at the end runs the default rule.
Reports median wall time, the library's own time split, and the peak RSS of each process
(/usr/bin/time), plus whole-process start-up time of `iau --help`. Then the same requests at 5k and 50k
rows with a memory budget below the data's size (``--mapped-budget``, the memory-mapped feature
store): the first process encodes into a fresh feature cache, the next ones map it. Each run of
this script starts from the feature cache the user has (``IAU_CACHE_DIR``), except the mapped runs.
Writes JSON and a PNG chart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from iau_cli.config import preset  # noqa: E402
from iau_cli.io.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from iau_cli.io.data import BUILTIN_DATASETS  # noqa: E402
from iau_cli.recipes.train import train  # noqa: E402

IAU = [sys.executable, "-m", "iau_cli"]


def make_rows(size: int, folder: Path) -> Path:
    path = folder / f"rows-{size}.parquet"
    if path.exists():
        return path
    base = pq.read_table(BUILTIN_DATASETS["digits"]["train"])
    pixels = np.stack([base.column(c).to_numpy() for c in base.column_names[2:]], axis=1).astype(np.float32)
    labels = base.column("label").to_numpy()
    rng = np.random.default_rng(size)
    pick = np.arange(size) % len(labels)
    jittered = np.clip(pixels[pick] + rng.normal(scale=0.7, size=(size, pixels.shape[1])), 0, 16).astype(np.float32)
    columns = {"id": [f"syn-{i:06d}" for i in range(size)], "label": labels[pick]}
    columns.update({name: jittered[:, j] for j, name in enumerate(base.column_names[2:])})
    pq.write_table(pa.table(columns), path)
    return path


def checkpoints(size: int, folder: Path) -> tuple[Path, Path]:
    with_ledger = folder / f"model-{size}.safetensors"
    without = folder / f"model-{size}-noledger.safetensors"
    if not with_ledger.exists():
        config = preset("digits-mlp")
        data = dataclasses.replace(config.data, train=str(make_rows(size, folder)), test="builtin:digits")
        config = dataclasses.replace(config, data=data, train=dataclasses.replace(config.train, epochs=3))
        train(config, with_ledger, device="cpu")
    if not without.exists():
        loaded = load_checkpoint(with_ledger)
        save_checkpoint(without, loaded.state_dict, dataclasses.replace(loaded.meta, ledger=None))
    return with_ledger, without


def run_child(args: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Run a command and return (wall seconds, its own peak RSS in bytes, stdout).

    The peak comes from /usr/bin/time, which forks the command itself: a child forked straight
    from this process would report at least *this* process's peak RSS (Linux carries a forked
    child's memory high-water mark over its exec), and this process trains models.
    """
    started = time.perf_counter()
    process = subprocess.run(["/usr/bin/time", "-f", "IAU_PEAK_KB=%M", *args], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({process.returncode}): {process.stderr}")
    peak = re.search(r"IAU_PEAK_KB=(\d+)", process.stderr)
    return elapsed, int(peak.group(1)) * 1024 if peak else 0, process.stdout


LEDGER_RULE = ["-O", "rule=adam-sign"]
"""The ledger sections time a rule that needs the retain gradient (the default samples retained rows)."""


def unlearn_once(model: Path, ids: Path, out: Path, env: dict | None = None, extra: tuple[str, ...] = ()) -> dict:
    if out.exists():
        out.unlink()
    command = [*IAU, "unlearn", str(model), "-f", str(ids), "-o", str(out), "-q", "--json", "-", *extra]
    wall, rss, stdout = run_child(command, env)
    result = json.loads(stdout)
    return {"wall": wall, "rss": rss, "seconds": result["seconds"], "ledger": result["ledger"].get("path")}


def measure(model: Path, ids: Path, out: Path, repeats: int, env: dict | None = None) -> dict:
    runs = [unlearn_once(model, ids, out, env, tuple(LEDGER_RULE)) for _ in range(repeats)]
    method = [r["seconds"]["gradients"] + r["seconds"]["update"] for r in runs]
    return {
        "wall_median": statistics.median(r["wall"] for r in runs),
        "method_median": statistics.median(method),
        "load_median": statistics.median(r["seconds"]["load"] for r in runs),
        "peak_rss_mb": max(r["rss"] for r in runs) / 2**20,
        "path": runs[0]["ledger"],
        "walls": [r["wall"] for r in runs],
    }


def write_ids(folder: Path, size: int, count: int) -> Path:
    path = folder / f"ids-{size}-{count}.txt"
    rng = np.random.default_rng(count)
    chosen = sorted(rng.choice(size, size=count, replace=False))
    path.write_text("\n".join(f"syn-{i:06d}" for i in chosen) + "\n")
    return path


def startup(repeats: int = 10) -> dict:
    found = {}
    for label, args in (
        ("iau --help", ["--help"]),
        ("iau unlearn --help", ["unlearn", "--help"]),
        ("iau unlearn (no args)", ["unlearn"]),
    ):
        command = [str(Path(sys.executable).with_name("iau")), *args]
        walls = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(command, capture_output=True)
            walls.append(time.perf_counter() - started)
        found[label] = statistics.median(walls)
    return found


def builtin_unlearn(work: Path, repeats: int = 5) -> dict:
    """Whole `iau unlearn` processes forgetting 50 ids of the built-in digits (the sample MLP
    recipe, fresh ledger, features cached): median wall time and the library's own split."""
    model = work / "digits-mlp.safetensors"
    if not model.exists():
        train(preset("digits-mlp"), model, device="cpu")
    ids = work / "digits-ids.txt"
    train_ids = pq.read_table(BUILTIN_DATASETS["digits"]["train"], columns=["id"]).column("id").to_pylist()
    rng = np.random.default_rng(0)
    ids.write_text("\n".join(rng.choice(train_ids, size=50, replace=False).tolist()) + "\n")
    unlearn_once(model, ids, work / "out.safetensors")  # the feature cache is warm from here on
    runs = [unlearn_once(model, ids, work / "out.safetensors") for _ in range(repeats)]
    return {
        "wall_median": statistics.median(r["wall"] for r in runs),
        "walls": [r["wall"] for r in runs],
        "seconds_median": {k: statistics.median(r["seconds"][k] for r in runs) for k in runs[0]["seconds"]},
        "path": runs[0]["ledger"],
    }


def mapped_store(args: argparse.Namespace) -> list[dict]:
    """`iau unlearn` with a memory budget smaller than the data (the memory-mapped feature store):
    the first process encodes into a fresh cache, the next ones map it."""
    found = []
    for size in (5000, 50000):
        with_ledger, without = checkpoints(size, args.work)
        ids = write_ids(args.work, size, args.forget)
        cache = args.work / f"cache-mapped-{size}"
        if cache.exists():
            import shutil

            shutil.rmtree(cache)
        env = {**os.environ, "IAU_MEMORY_BUDGET": args.mapped_budget, "IAU_CACHE_DIR": str(cache)}
        for label, model in (("ledger", with_ledger), ("no ledger", without)):
            cold = unlearn_once(model, ids, args.work / "out.safetensors", env, tuple(LEDGER_RULE))
            warm = measure(model, ids, args.work / "out.safetensors", args.repeats, env)
            row = {
                "rows": size,
                "variant": label,
                "budget": args.mapped_budget,
                "cold_wall": cold["wall"],
                "cold_peak_rss_mb": cold["rss"] / 2**20,
                **warm,
            }
            found.append(row)
            print(
                f"mapped rows={size:6d} {label:9s} first (encodes) {row['cold_wall']:.2f}s {row['cold_peak_rss_mb']:.0f} MB; "
                f"then wall {row['wall_median']:.2f}s peak {row['peak_rss_mb']:.0f} MB ({row['path']})",
                flush=True,
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000,50000")
    parser.add_argument("--forget", type=int, default=50)
    parser.add_argument("--forget-sizes", default="10,50,200,1000")
    parser.add_argument("--at", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mapped-budget", default="1M", help="IAU_MEMORY_BUDGET of the memory-mapped runs")
    parser.add_argument("--work", type=Path, default=Path("bench-out/scaling"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scaling.json"))
    parser.add_argument("--chart", type=Path, default=Path("benchmarks/results/scaling.png"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    by_rows, by_forget = [], []
    for size in sizes:
        with_ledger, without = checkpoints(size, args.work)
        ids = write_ids(args.work, size, args.forget)
        for label, model in (("ledger", with_ledger), ("no ledger", without)):
            row = {
                "rows": size,
                "forget": args.forget,
                "variant": label,
                **measure(model, ids, args.work / "out.safetensors", args.repeats),
            }
            by_rows.append(row)
            print(
                f"rows={size:6d} {label:9s} wall {row['wall_median']:.2f}s method {row['method_median']:.3f}s load {row['load_median']:.2f}s peak {row['peak_rss_mb']:.0f} MB ({row['path']})",
                flush=True,
            )
    with_ledger, without = checkpoints(args.at, args.work)
    for count in [int(c) for c in args.forget_sizes.split(",")]:
        ids = write_ids(args.work, args.at, count)
        for label, model in (("ledger", with_ledger), ("no ledger", without)):
            row = {
                "rows": args.at,
                "forget": count,
                "variant": label,
                **measure(model, ids, args.work / "out.safetensors", args.repeats),
            }
            by_forget.append(row)
            print(
                f"forget={count:5d} {label:9s} wall {row['wall_median']:.2f}s method {row['method_median']:.3f}s peak {row['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    mapped = mapped_store(args)
    start = startup()
    for label, seconds in start.items():
        print(f"{label:24s} {seconds:.3f} s (median of 10 whole processes)")
    digits = builtin_unlearn(args.work)
    start["iau unlearn (built-in digits, 50 ids)"] = digits["wall_median"]
    print(
        f"iau unlearn, built-in digits, 50 ids, fresh ledger: {digits['wall_median']:.2f} s median of 5 "
        f"{[round(w, 2) for w in digits['walls']]}; library split {digits['seconds_median']}",
        flush=True,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = {"by_rows": by_rows, "by_forget": by_forget, "mapped": mapped, "startup": start}
    args.out.write_text(json.dumps(results, indent=2))
    chart(by_rows, by_forget, args.chart)


def chart(by_rows: list[dict], by_forget: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    for variant, style in (("ledger", "o-"), ("no ledger", "s--")):
        rows = [r for r in by_rows if r["variant"] == variant]
        forget = [r for r in by_forget if r["variant"] == variant]
        axes[0][0].plot([r["rows"] for r in rows], [r["method_median"] for r in rows], style, label=variant)
        axes[0][1].plot([r["rows"] for r in rows], [r["peak_rss_mb"] for r in rows], style, label=variant)
        axes[1][0].plot([r["forget"] for r in forget], [r["method_median"] for r in forget], style, label=variant)
        axes[1][1].plot([r["forget"] for r in forget], [r["peak_rss_mb"] for r in forget], style, label=variant)
    axes[0][0].set(
        xscale="log",
        yscale="log",
        xlabel="training rows",
        ylabel="unlearning s (gradients + update)",
        title="time vs training rows (50 ids)",
    )
    axes[0][1].set(
        xscale="log", xlabel="training rows", ylabel="peak RSS of the process (MB)", title="memory vs training rows"
    )
    axes[1][0].set(
        xscale="log", yscale="log", xlabel="forget ids", ylabel="unlearning s", title="time vs forget-set size"
    )
    axes[1][1].set(xscale="log", xlabel="forget ids", ylabel="peak RSS (MB)", title="memory vs forget-set size")
    for axis in axes.flat:
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
