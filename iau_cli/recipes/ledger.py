"""The gradient ledger: Σ of per-sample training-loss gradients over the rows a checkpoint learns from.

With a ledger computed at the checkpoint's own parameters, the retain-set gradient of a request is
``ledger − Σ_forget ∇ℓ``: one pass over the forget rows instead of the whole training set.

Freshness is exact, never guessed: the ledger records the digest of the parameters it was computed
at and its row count. After an unlearning step the parameters move, so the carried-forward ledger
(parent ledger minus the forget rows' gradients, both at the parent's parameters) is *stale*; it
records how far the parameters moved (relative L2 drift). A stale ledger is never used — the drift
bounds nothing about the sum's error — so the next request recomputes the retain gradient; ``unlearn
--ledger-refresh now`` or ``iau ledger refresh`` recompute the ledger at the current parameters.
Under an operator key no ledger is kept after a deletion (it would name the forgotten rows by
differencing; docs/RELIABILITY.md, threat model).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iau_cli import __version__
from iau_cli.core import distributed
from iau_cli.core.ledger import LedgerState, compute_ledger, ledger_state
from iau_cli.errors import ConfigError, OutputError
from iau_cli.io.checkpoint import Checkpoint, NewCheckpoint, load_checkpoint, utc_now
from iau_cli.io.files import Outputs, check_writable
from iau_cli.progress import Progress, no_progress
from iau_cli.recipes.train import restore, write_checkpoint


@dataclass
class LedgerResult:
    """The outcome of ``iau ledger refresh`` / ``iau ledger show``."""

    checkpoint: str
    status: str
    detail: str
    rows: int | None
    """Rows the ledger sums over (None when there is no ledger)."""
    drift: float | None
    """Relative parameter drift since it was computed (0 when fresh; None when absent or mismatched)."""
    out: str | None = None
    seconds: float = 0.0
    child: NewCheckpoint | None = field(default=None, repr=False)  # refresh_ledger() made it; not in the JSON

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "child"}


def show_ledger(
    path: str, *, device: str = "cpu", trust_code: bool = False, allow_data_change: bool = False
) -> LedgerResult:
    """Whether a checkpoint's ledger is fresh, stale (and by how much) or absent.

    The ledger holds no id, so no operator key is needed: where the forgotten ids are keyed with a
    key not at hand, the file alone decides (the ledger's tensors against the weights, its recorded
    parameters against these), and the rows are the ledger's own count, not matched against the
    data. Otherwise the data is read too, and its rows must be the ones the ledger covers."""

    checkpoint = load_checkpoint(path, need_keys=False)
    forgotten = checkpoint.meta.forgotten if checkpoint.meta else None
    keyless = forgotten is not None and any(kid not in forgotten.keys for kid in forgotten.keyed)
    if keyless:
        state = _file_state(checkpoint)
        note = (
            "; rows not matched against the data (the forgotten ids are keyed and their operator key is not at hand)"
            if state.status in ("fresh", "stale")
            else ""
        )
        return _result(path, state, checkpoint, note)
    restored = restore(path, device=device, trust_code=trust_code, allow_data_change=allow_data_change)
    return _result(path, ledger_state(restored.checkpoint, restored.model, len(restored.partition().learn)), checkpoint)


def _file_state(checkpoint: Checkpoint) -> LedgerState:
    """:func:`ledger_state` from the file alone: its stored weights stand in for the model."""
    meta, tensors = checkpoint.meta.ledger if checkpoint.meta else None, checkpoint.ledger_tensors
    if meta and tensors:
        weights = checkpoint.state_dict
        if any(name not in weights or weights[name].shape != t.shape for name, t in tensors.items()):
            return LedgerState("mismatch", float("inf"), "the ledger's tensors do not match the model's parameters")
        if meta.get("params_sha256") == checkpoint.params_digest() and meta.get("exact", True):
            return LedgerState("fresh", 0.0, "computed at these parameters")
        drift = float(meta.get("drift", float("inf")))
        return LedgerState("stale", drift, f"computed at earlier parameters (they moved {drift:.1e} relative)")
    return LedgerState("absent", float("inf"), "the checkpoint has no gradient ledger")


def _result(path: str, state: LedgerState, checkpoint: Checkpoint, note: str = "") -> LedgerResult:
    """The states as a user reads them: an absent or mismatched ledger covers no rows and has no drift."""
    meta = checkpoint.meta.ledger if checkpoint.meta else None
    if state.status in ("absent", "mismatch"):
        keyed = checkpoint.meta is not None and checkpoint.meta.forgotten.holds_keyed_ids
        if state.status == "absent" and keyed:
            detail = (
                "no ledger is kept after a keyed deletion: a sum over the rows left would name the forgotten ones "
                "by differencing (docs/RELIABILITY.md: threat model)"
            )
        elif state.status == "absent":
            detail = state.reason + " (a plain state dict writes none; iau ledger refresh --out NEW records one)"
        else:
            detail = state.reason
        return LedgerResult(str(path), state.status, detail, None, None)
    return LedgerResult(str(path), state.status, state.reason + note, int(meta["count"]) if meta else None, state.drift)


def make_refreshed(
    path: str,
    *,
    device: str = "auto",
    trust_code: bool = False,
    allow_data_change: bool = False,
    progress: Progress = no_progress,
) -> LedgerResult:
    """Recompute the ledger at the checkpoint's parameters (one pass over its rows): the result, with
    the new checkpoint in ``result.child`` — nothing written (the CLI stages it at a path that is
    not ``path``: an input is never modified; :func:`refresh_ledger` writes it)."""
    started = time.perf_counter()
    restored = restore(
        path, device=device, trust_code=trust_code, allow_data_change=allow_data_change, progress=progress
    )
    if restored.meta.forgotten.holds_keyed_ids:
        raise ConfigError(
            f"{path}: its forgotten ids are keyed, and a ledger over the rows left would name them by differencing "
            "(total gradient − ledger); iau keeps no ledger after a keyed deletion (docs/RELIABILITY.md: threat model)"
        )
    learn = restored.partition().learn
    meta, tensors = compute_ledger(restored.model, restored.data, learn, restored.device, progress=progress)
    event = {
        "event": "ledger-refresh",
        "time": utc_now(),
        "iau_version": __version__,
        "parent_sha256": restored.checkpoint.sha256,
        "params_sha256": meta["params_sha256"],
    }
    new_meta = dataclasses.replace(restored.meta, ledger=meta, lineage=[*restored.meta.lineage, event])
    child = NewCheckpoint(restored.model.state_dict(), new_meta, tensors, restored.checkpoint.reference_tensors)
    result = LedgerResult(str(path), "fresh", "recomputed at these parameters", len(learn), 0.0)
    result.seconds, result.child = time.perf_counter() - started, child
    return result


def refresh_ledger(
    path: str,
    out: str,
    *,
    overwrite: bool = False,
    device: str = "auto",
    trust_code: bool = False,
    allow_data_change: bool = False,
    progress: Progress = no_progress,
) -> LedgerResult:
    """:func:`make_refreshed`, and the new checkpoint written to ``out`` — never ``path``, never an
    existing file without ``overwrite`` (both refused before any work; the lock held throughout)."""
    if Path(out).resolve() == Path(path).resolve():
        raise OutputError(f"{out}: the output would replace the input checkpoint; choose another --out")
    check_writable(Path(out), overwrite=overwrite)
    with Outputs() as own:
        if distributed.is_main():
            own.lock(out)
        result = make_refreshed(
            path, device=device, trust_code=trust_code, allow_data_change=allow_data_change, progress=progress
        )
        assert result.child is not None
        result.out = str(out)
        write_checkpoint(result.child, out, own, overwrite=overwrite)
        if distributed.is_main():
            own.publish()
    return result
