"""The stored reference table: keyed hashes of row ids and their targets, checked at load and
looked up by id. What the targets are and how they are made: :mod:`iau_cli.core.references`."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from iau_cli.io.forgotten import operator_keys

if TYPE_CHECKING:
    import torch

TENSOR_KEYS = "keys"
TENSOR_TARGET = "target"
# The same target for held-out rows of the test split's evaluation half (what `iau audit` measures
# on): the residual φ − target is then comparable between forget and held-out rows (iau_cli.recipes.audit).
TENSOR_HELDOUT_KEYS = "heldout_keys"
TENSOR_HELDOUT_TARGET = "heldout_target"


def row_keys(ids: Sequence[str], secret: bytes) -> np.ndarray:
    """8-byte keyed hashes of ids as int64 (HMAC-SHA256 under ``secret``)."""
    out = np.empty(len(ids), dtype=np.int64)
    for n, sample_id in enumerate(ids):
        digest = hmac.new(secret, b"iau-reference\x00" + sample_id.encode("utf-8", "surrogatepass"), hashlib.sha256)
        out[n] = int.from_bytes(digest.digest()[:8], "big", signed=True)
    return out


def check_tensors(meta: dict[str, Any] | None, tensors: dict[str, torch.Tensor]) -> str | None:
    """What is wrong with a checkpoint's reference table (None when it is sound or absent)."""
    import torch  # here, not at the top: the CLI's output guard reads checkpoint metadata without torch

    if not tensors:  # none, or stripped from the file: lookups then say so (no targets, rule matched)
        return None
    heldout = {TENSOR_HELDOUT_KEYS, TENSOR_HELDOUT_TARGET}
    names = set(tensors)
    if meta is None or names - heldout != {TENSOR_KEYS, TENSOR_TARGET} or len(names & heldout) == 1:
        return "the reference table is incomplete (its metadata and both tensors, keys and target, go together)"
    pairs = [("", TENSOR_KEYS, TENSOR_TARGET)]
    if heldout <= names:  # tables written before the audit used held-out targets have none
        pairs.append(("held-out ", TENSOR_HELDOUT_KEYS, TENSOR_HELDOUT_TARGET))
    for what, key_name, target_name in pairs:
        keys, target = tensors[key_name], tensors[target_name]
        if keys.dtype != torch.int64 or keys.dim() != 1 or target.dim() != 1 or target.dtype != torch.float32:
            return f"the reference table's {what}tensors are not 1-D int64 keys and float32 targets"
        if len(keys) != len(target):
            return f"the reference table has {len(keys)} {what}keys and {len(target)} {what}targets"
        if len(keys) > 1 and not bool((keys[1:] >= keys[:-1]).all()):
            return f"the reference table's {what}keys are not sorted"
        if not bool(torch.isfinite(target).all()):
            return f"the reference table has non-finite {what}targets"
    return None


def _lookup(
    meta: dict[str, Any], tensors: dict[str, torch.Tensor], ids: Sequence[str], names: tuple[str, str]
) -> np.ndarray | None:
    """The stored values of ``ids`` in one keyed table (NaN where absent); None: the key is missing."""
    secret = operator_keys().get(meta["key_id"]) if "key_id" in meta else bytes.fromhex(meta["salt"])
    if secret is None:
        return None
    table = tensors[names[0]].numpy()
    values = tensors[names[1]].numpy().astype(np.float64)
    wanted = row_keys(ids, secret)
    at = np.clip(np.searchsorted(table, wanted), 0, max(len(table) - 1, 0))
    found = table[at] == wanted if len(table) else np.zeros(len(ids), dtype=bool)
    return np.where(found, values[at] if len(table) else np.nan, np.nan)


def lookup_targets(
    meta: dict[str, Any] | None, tensors: dict[str, torch.Tensor], ids: Sequence[str]
) -> tuple[np.ndarray, str]:
    """Per id: its stored target φ (NaN where the table has none), and where the targets came from."""
    missing = np.full(len(ids), np.nan)
    if meta is None:
        return missing, "none (the checkpoint was trained without reference models)"
    if TENSOR_KEYS not in tensors or TENSOR_TARGET not in tensors:
        return missing, "none (the reference tensors were removed from the checkpoint)"
    out = _lookup(meta, tensors, ids, (TENSOR_KEYS, TENSOR_TARGET))
    if out is None:
        return missing, "unreadable (its operator key is not in IAU_ID_KEY_FILE)"
    return out, f"{meta['models']} reference models trained without each row"


def lookup_heldout_targets(
    meta: dict[str, Any] | None, tensors: dict[str, torch.Tensor], ids: Sequence[str]
) -> np.ndarray | None:
    """Per held-out id (evaluation half): its stored target (NaN where the table has none); None when
    the checkpoint has no held-out targets or their operator key is not available."""
    if meta is None or TENSOR_HELDOUT_KEYS not in tensors or TENSOR_HELDOUT_TARGET not in tensors:
        return None
    return _lookup(meta, tensors, ids, (TENSOR_HELDOUT_KEYS, TENSOR_HELDOUT_TARGET))
