"""Reference statistics: what a model that never saw a row outputs on it, measured once at training.

A deletion should leave each forgotten row where a model retrained without it would put it — not
merely make the forget rows' loss *distribution* look held-out (a per-example attacker, U-LiRA:
Hayes, Shumailov, Triantafillou, Khalifa, Papernot 2024, tells such a model from a retrained one).
What a retrained model does on one row can be estimated the way shadow models estimate it in
membership inference (LiRA: Carlini et al. 2022): from models trained without that row.

So ``iau train`` also trains ``train.references`` reference models (default 4) on halves of the
learned rows, in complementary pairs drawn by id hash: every learned row is left out of exactly
half of them. Per learned row it stores φ̄, the mean over the references that did not see the row
of φ = log(p_y / (1 − p_y)) (the logit-scaled confidence in the row's label). A model trained on
half the rows is less confident than one trained on all of them, so φ̄ is mapped to the full model's
scale by a line fitted on held-out rows (the calibration half of the test split, which no model
saw): φ_full ≈ a + b·φ̄. The target of row i is ``a + b·φ̄_i``. Cost: one-off, K half-size trainings
(K/2 × a plain training at the default recipe), amortized over every later request like the ledger.

Storage: two tensors, ``keys`` (8-byte keyed hashes of the learned ids, sorted) and ``target``
(float32, in key order). The keys are HMACs under the operator key when ``IAU_ID_KEY_FILE`` is set
at training time (the table then says nothing about which ids were learned to someone without the
key), else under a random salt kept in the metadata (the same exposure as unkeyed forgotten ids:
anyone with the data can hash its ids). The table covers every row learned at training time and is
never edited: a request does not change it, so it cannot be differenced to name a request.

How the targets age: a later request's rows were left out of references that *did* see the rows
forgotten before it. Those references carry the earlier rows' small influence on the new rows —
second order, the same approximation a retrained-without-the-new-rows model would make relative to
one retrained without all. Rows learned after training (``--allow-data-change``) have no target;
the method then falls back to a held-out quantile target for them and says so.

Held-out targets, for the audit. The same target is stored for every row of the test split's
evaluation half: the mean φ of K/2 references (one of each complementary pair, chosen by id hash —
as many as a learned row's target averages, so both targets are equally noisy), mapped by the same
line. A model that never saw a forget row leaves it as far from its target as it leaves a held-out
row from its own, whatever makes the row hard — a wrong label in the training split only, say —
so `iau audit` compares those residuals instead of raw losses (its null then holds on data whose
splits differ). Keys are hashed like the targets'; stored as ``heldout_keys`` / ``heldout_target``.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Any

import numpy as np
import torch

from iau_cli.config import RunConfig
from iau_cli.core.metrics import predict
from iau_cli.core.training import RowPartition, train_model
from iau_cli.io.data import DataBundle, Split, unit_hash
from iau_cli.io.forgotten import operator_keys
from iau_cli.io.references import (
    TENSOR_HELDOUT_KEYS,
    TENSOR_HELDOUT_TARGET,
    TENSOR_KEYS,
    TENSOR_TARGET,
    row_keys,
)
from iau_cli.progress import Progress, no_progress


def phi(model: torch.nn.Module, split: Split, rows: np.ndarray, device: torch.device) -> np.ndarray:
    """φ = log(p_y/(1 − p_y)) of ``model`` on ``rows`` of ``split`` (float64, streamed)."""
    return predict(model, split, rows, device, keep_margins=True).margins.astype(np.float64)


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float | None]:
    """Least-squares y ≈ a + b·x, and the correlation of x and y (b clipped to [0.25, 4])."""
    if len(x) < 3 or float(np.std(x)) == 0.0 or float(np.std(y)) == 0.0:
        return float(np.mean(y) - np.mean(x)) if len(x) else 0.0, 1.0, None
    b = float(np.cov(x, y, bias=True)[0, 1] / np.var(x))
    b = min(max(b, 0.25), 4.0)  # a degenerate fit must not invert or explode the scale
    a = float(np.mean(y) - b * np.mean(x))
    return a, b, float(np.corrcoef(x, y)[0, 1])


def compute_references(
    config: RunConfig,
    data: DataBundle,
    rows: RowPartition,
    model: torch.nn.Module,
    device: torch.device,
    *,
    progress: Progress = no_progress,
) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    """Train the reference models and return (metadata, tensors); (None, {}) when turned off."""
    # Long on purpose: the K trainings, the line fit and the two tables are one pass over the same rows.

    count = config.train.references
    if count == 0 or len(rows.learn) < 4:
        return None, {}
    started = time.perf_counter()
    learn_ids = [data.train.ids[r] for r in rows.learn]
    calibration = data.test.halves()[0]
    sums = np.zeros(len(rows.learn))
    seen_by = np.zeros(len(rows.learn))
    calibration_phi = np.zeros(len(calibration))
    evaluation = data.test.halves()[1]
    evaluation_ids = [data.test.ids[r] for r in evaluation]
    # per evaluation row: which reference of each complementary pair it averages (by id hash)
    side = np.array([unit_hash(f"iau-heldout-side-{config.train.seed}", i) < 0.5 for i in evaluation_ids])
    evaluation_sums = np.zeros(len(evaluation))
    for k in range(count):
        in_half = np.array([unit_hash(f"iau-reference-{config.train.seed}-{k // 2}", i) < 0.5 for i in learn_ids])
        if k % 2:
            in_half = ~in_half
        if not in_half.any() or in_half.all():  # tiny data: a half must have rows and leave some out
            in_half = np.arange(len(learn_ids)) % 2 == k % 2
        seed = (config.train.seed + 7919 * (k + 1)) % 2**63  # any seed the config allows
        recipe = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))

        def report(what: str, done: int, total: int, k: int = k) -> None:
            progress(f"train · reference model {k + 1}/{count} · {what.removeprefix('train · ')}", done, total)

        reference, _ = train_model(recipe, data, RowPartition(rows.learn[in_half], rows.val), device, progress=report)
        left_out = np.flatnonzero(~in_half)
        sums[left_out] += phi(reference, data.train, rows.learn[left_out], device)
        seen_by[left_out] += 1
        calibration_phi += phi(reference, data.test, calibration, device)
        chosen = side == bool(k % 2)
        if chosen.any():
            evaluation_sums[chosen] += phi(reference, data.test, evaluation[chosen], device)
    mean_phi = sums / np.maximum(seen_by, 1)
    # The line is fitted on calibration rows' mean over all K references, though a learned row's
    # φ̄ is a mean over K/2: the regression on the noisier K/2 mean shrinks every target toward the
    # average (regression to the mean), and the forget rows then stay more confident than retrained
    # models leave them — measured on 10 chained requests of 30 purchase rows: Tug-of-War 0.86
    # against 0.96 with the K-mean fit. The K-mean slope keeps the targets spread as retrained
    # models' outputs are spread.
    calibration_phi /= count
    a, b, correlation = _fit_line(calibration_phi, phi(model, data.test, calibration, device))
    target = (a + b * mean_phi).astype(np.float32)
    heldout_target = (a + b * evaluation_sums / (count // 2)).astype(np.float32)  # K is even (config check)
    keys = operator_keys()
    meta: dict[str, Any] = {"models": count, "rows": int(len(rows.learn)), "fit": [a, b]}
    if keys:
        key_id, secret = next(iter(keys.items()))
        meta["key_id"] = key_id
    else:
        salt = secrets.token_hex(16)
        secret = bytes.fromhex(salt)
        meta["salt"] = salt
    hashed = row_keys(learn_ids, secret)
    order = np.argsort(hashed, kind="stable")
    meta.update(
        calibration_rows=int(len(calibration)),
        calibration_correlation=correlation,
        seconds=time.perf_counter() - started,
    )
    tensors = {TENSOR_KEYS: torch.from_numpy(hashed[order]), TENSOR_TARGET: torch.from_numpy(target[order])}
    heldout_hashed = row_keys(evaluation_ids, secret)
    heldout_order = np.argsort(heldout_hashed, kind="stable")
    tensors[TENSOR_HELDOUT_KEYS] = torch.from_numpy(heldout_hashed[heldout_order])
    tensors[TENSOR_HELDOUT_TARGET] = torch.from_numpy(heldout_target[heldout_order])
    return meta, tensors
