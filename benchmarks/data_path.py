"""The training data path against a plain in-memory PyTorch loop, in one run (issue 13).

    python benchmarks/data_path.py [--epochs 3] [--repeats 3] [--out benchmarks/results/data_path.json]

Workloads (made here from a seed or from the built-in digits; nothing is downloaded):

- wide parquet: 6,000 rows × 600 float columns, 100 classes; MLP (256 hidden);
- built-in digits: 1,438 rows × 64 columns, 10 classes; MLP (128 hidden);
- image folder: 4,000 grayscale 28×28 PNGs (jittered digits), read as an image folder and
  resized to 32×32; LeNet-5.

Every workload uses Adam (lr 1e-3), batch 64 and gradient restriction α = 0.005 (per-tensor norms),
in iau and in the plain loop alike. The plain loop holds the tensors in memory, draws batches with
``torch.randperm`` and computes the same GR loss; it is the ceiling iau's loop is measured against
(median samples/s over ``repeats`` runs of ``epochs`` epochs each, after a warm-up run).

For the image folder the script also times what a user waits for with a cold feature cache: load
+ the first epoch (decoding every PNG), then the later epochs. ``--memory-budget 1M`` forces the
memory-mapped store (``IAU_MEMORY_BUDGET``); run it to see that path's speed. The script only uses
``load_data`` and ``train_model``, so it runs unchanged against an older checkout (``PYTHONPATH``)
for before/after figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-epochs", type=int, default=3, help="epochs of the image-folder runs")
    parser.add_argument("--workloads", default="wide,digits,images")
    parser.add_argument("--memory-budget", default=None, help="IAU_MEMORY_BUDGET for this run, e.g. 1M")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both loops run there)")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep (and reuse) the generated data here")
    parser.add_argument("--cache-dir", default=None, help="IAU_CACHE_DIR for this run (default: a fresh, cold one)")
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args()


ARGS = parse()
if ARGS.memory_budget is not None:
    os.environ["IAU_MEMORY_BUDGET"] = ARGS.memory_budget
# By default every run starts from a cold feature cache, so the figures include encoding.
os.environ["IAU_CACHE_DIR"] = ARGS.cache_dir or tempfile.mkdtemp(prefix="iau-bench-cache-")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from iau_cli.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from iau_cli.core.models import build_model  # noqa: E402
from iau_cli.core.training import partition_rows, train_model  # noqa: E402
from iau_cli.io.data import BUILTIN_DATASETS, load_data  # noqa: E402

RECIPE = {"lr": 1e-3, "batch_size": 64, "gr_alpha": 0.005}


def digits_pixels() -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(BUILTIN_DATASETS["digits"]["train"])
    pixels = np.stack([table.column(c).to_numpy() for c in table.column_names[2:]], axis=1).astype(np.float32)
    return pixels, table.column("label").to_numpy()


def make_wide(folder: Path) -> RunConfig:
    config = RunConfig(
        data=DataConfig(train=str(folder / "wide_train.parquet"), test=str(folder / "wide_test.parquet")),
        model=ModelConfig(name="mlp", args={"hidden": [256]}),
        train=TrainConfig(**RECIPE),
    )
    if (folder / "wide_test.parquet").exists():
        return config
    rng = np.random.default_rng(0)
    n, width, classes = 6000, 600, 100
    centers = rng.normal(size=(classes, width)).astype(np.float32)
    labels = rng.integers(0, classes, n)
    features = centers[labels] + rng.normal(scale=2.0, size=(n, width)).astype(np.float32)
    test = np.arange(n) % 5 == 0
    for name, mask in (("train", ~test), ("test", test)):
        columns = {"id": [f"{name}-{i}" for i in np.flatnonzero(mask)], "label": labels[mask]}
        columns.update({f"f{j}": features[mask, j] for j in range(width)})
        pq.write_table(pa.table(columns), folder / f"wide_{name}.parquet")
    return config


def make_digits() -> RunConfig:
    from iau_cli.io.data import builtin_config

    return RunConfig(
        data=builtin_config("digits"),
        model=ModelConfig(name="mlp", args={"hidden": [128]}),
        train=TrainConfig(**RECIPE),
    )


def make_images(folder: Path, count: int = 4000) -> RunConfig:
    from PIL import Image

    root = folder / "images"
    config = RunConfig(
        data=DataConfig(
            train=str(root / "train"), test=str(root / "test"), grayscale=True, resize=[32, 32], mean=0.5, std=0.5
        ),
        model=ModelConfig(name="lenet5"),
        train=TrainConfig(**RECIPE),
    )
    if (root / "test").exists():
        return config
    pixels, labels = digits_pixels()
    rng = np.random.default_rng(1)
    for split, n in (("train", count), ("test", count // 4)):
        for i in range(n):
            label = int(labels[i % len(labels)])
            image = pixels[i % len(labels)].reshape(8, 8) / 16.0
            big = np.kron(image, np.ones((3, 3)))  # 24×24
            canvas = np.zeros((28, 28))
            dy, dx = rng.integers(0, 5, 2)
            canvas[dy : dy + 24, dx : dx + 24] = big
            canvas = np.clip(canvas + rng.normal(scale=0.05, size=canvas.shape), 0, 1)
            target = root / split / str(label)
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray((canvas * 255).astype(np.uint8)).save(target / f"{i:05d}.png")
    return config


def gr_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """The plain loop's own GR: CE + α·Σ over parameter tensors of ‖∇ CE‖₂ (a double backward)."""
    ce = F.cross_entropy(model(x), y)
    if alpha == 0:
        return ce
    grads = torch.autograd.grad(ce, list(model.parameters()), create_graph=True)
    return ce + alpha * sum(g.norm() for g in grads)


DEVICE = torch.device(ARGS.device)


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(config: RunConfig, x: torch.Tensor, y: torch.Tensor, epochs: int, alpha: float) -> float:
    """Samples/s of a plain loop on in-memory tensors (same model, optimizer, batch size and GR)."""
    torch.manual_seed(0)
    model = build_model(config.model.name, config.model.args, list(x.shape[1:]), int(y.max()) + 1).to(DEVICE)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    batch = config.train.batch_size
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(y), device=DEVICE)
        for start in range(0, len(y), batch):
            index = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            gr_loss(model, x[index], y[index], alpha).backward()
            optimizer.step()
    synchronize()
    return epochs * len(y) / (time.perf_counter() - started)


def iau_loop(config: RunConfig, data: object, epochs: int) -> tuple[float, float]:
    """(samples/s of iau's training loop, wall seconds of the whole train_model call)."""
    run = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=epochs))
    rows = partition_rows(data, run.train)  # type: ignore[arg-type]
    started = time.perf_counter()
    _, stats = train_model(run, data, rows, DEVICE)  # type: ignore[arg-type]
    synchronize()
    return stats.samples_per_second, time.perf_counter() - started


def decoded(data: object) -> tuple[torch.Tensor, torch.Tensor]:
    """The training rows as two in-memory tensors, through iau's own decoding (done once, untimed)."""
    split = data.train  # type: ignore[attr-defined]
    xs, ys = zip(*split.batches(None, 1024))
    return torch.cat(xs).contiguous().to(DEVICE), torch.cat(ys).contiguous().to(DEVICE)


def measure(name: str, config: RunConfig, epochs: int, repeats: int) -> dict:
    started = time.perf_counter()
    data = load_data(config.data)
    load_seconds = time.perf_counter() - started
    first_epoch_sps, first_epoch_wall = iau_loop(config, data, 1)  # warm-up; on images the first pass decodes
    x, y = decoded(data)
    plain_loop(config, x, y, 1, RECIPE["gr_alpha"])  # warm-up
    iau_runs, plain_runs, plain_nogr = [], [], []
    for _ in range(repeats):
        iau_runs.append(iau_loop(config, data, epochs)[0])
        plain_runs.append(plain_loop(config, x, y, epochs, RECIPE["gr_alpha"]))
        plain_nogr.append(plain_loop(config, x, y, epochs, 0.0))
    result = {
        "workload": name,
        "rows": len(y),
        "load_seconds": load_seconds,
        "first_epoch_seconds": load_seconds + first_epoch_wall,
        "iau_samples_per_second": statistics.median(iau_runs),
        "plain_samples_per_second": statistics.median(plain_runs),
        "plain_no_gr_samples_per_second": statistics.median(plain_nogr),
        "iau_runs": iau_runs,
        "plain_runs": plain_runs,
    }
    result["ratio"] = result["iau_samples_per_second"] / result["plain_samples_per_second"]
    print(
        f"{name:8s} rows {len(y):6,d}  load {load_seconds:6.2f}s  load+epoch1 {result['first_epoch_seconds']:7.2f}s  "
        f"iau {result['iau_samples_per_second']:8,.0f}/s  plain {result['plain_samples_per_second']:8,.0f}/s  "
        f"ratio {result['ratio']:.2f}  (plain without GR {result['plain_no_gr_samples_per_second']:,.0f}/s)",
        flush=True,
    )
    return result


def main() -> None:
    torch.manual_seed(0)
    folder = ARGS.data_dir or Path(tempfile.mkdtemp(prefix="iau-data-path-"))
    folder.mkdir(parents=True, exist_ok=True)
    makers = {"wide": lambda: make_wide(folder), "digits": make_digits, "images": lambda: make_images(folder)}
    results = []
    for name in ARGS.workloads.split(","):
        epochs = ARGS.image_epochs if name == "images" else ARGS.epochs
        results.append(measure(name, makers[name](), epochs, ARGS.repeats))
    meta = {
        "label": ARGS.label,
        "device": torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "cpu",
        "memory_budget": os.environ.get("IAU_MEMORY_BUDGET", "default"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
    }
    if ARGS.out is not None:
        ARGS.out.parent.mkdir(parents=True, exist_ok=True)
        ARGS.out.write_text(json.dumps({"meta": meta, "epochs": ARGS.epochs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
