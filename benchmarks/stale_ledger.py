"""How wrong is a stale gradient ledger, against how far the parameters moved?

Trains the memorizing built-in workload (sample_configs/purchase_mlp.yaml), forgets the first
N learned rows with the default rule (N = 3, 10, 30, 60), and compares the ledger each child
carries (the retain sum at the parent's parameters) with the retain sum recomputed at the
child's own parameters: relative error ‖carried − true‖ / ‖true‖ against the relative parameter
move recorded as the ledger's drift. Usage: python benchmarks/stale_ledger.py [WORKDIR]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from iau_cli.config import preset  # noqa: E402
from iau_cli.core.ledger import compute_ledger
from iau_cli.io.ids import ForgetRequest
from iau_cli.recipes.train import restore, train
from iau_cli.recipes.unlearn import UnlearnRequest, unlearn


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "stale-ledger-work")
    work.mkdir(exist_ok=True)
    original = work / "original.safetensors"
    if not original.exists():
        train(preset("purchase-mlp"), original, device="cpu")
    parent = restore(original)
    learned = [parent.data.train.ids[i] for i in parent.partition().learn]
    print("| forget rows | relative parameter move (ledger drift) | relative error of the carried sum |")
    print("|---|---|---|")
    for n in (3, 10, 30, 60):
        out = work / f"u{n}.safetensors"
        request = ForgetRequest(ids=learned[:n], duplicates=0, source="bench")
        unlearn(UnlearnRequest(checkpoint=str(original), forget=request, out=str(out), overwrite=True, device="cpu"))
        child = restore(out)
        carried = child.checkpoint.ledger_tensors
        _, true = compute_ledger(child.model, child.data, child.partition().learn, child.device)
        error = math.sqrt(sum(float(((carried[k] - true[k]) ** 2).sum()) for k in true))
        norm = math.sqrt(sum(float((true[k] ** 2).sum()) for k in true))
        print(f"| {n} | {child.meta.ledger['drift']:.1e} | {error / norm:.0%} |")


if __name__ == "__main__":
    main()
