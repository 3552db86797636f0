"""Self-describing safetensors checkpoints: tensors, namespaced metadata, lineage, atomic writes.

A checkpoint holds the model's ``state_dict`` and, as JSON strings under ``iau.*`` metadata keys,
everything needed to rebuild the model and find its data. The ids it has forgotten are stored as
salted hashes, never in clear. An optional gradient ledger (issue: cost follows the request) is
stored as extra tensors under a reserved prefix that :func:`load_checkpoint` separates out.

Loading never unpickles: only safetensors and JSON are parsed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iau_cli import __version__
from iau_cli.errors import CheckpointError
from iau_cli.io.files import Outputs, file_sha256
from iau_cli.io.forgotten import ForgottenIds
from iau_cli.io.references import check_tensors

FORMAT_VERSION = 1
LEDGER_PREFIX = "__iau_ledger__."
REFERENCE_PREFIX = "__iau_reference__."
META_KEYS = ("iau.format", "iau.version", "iau.model", "iau.data", "iau.train", "iau.lineage", "iau.forgotten")


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string (seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class CheckpointMeta:
    """The ``iau.*`` metadata of a checkpoint, decoded."""

    model: dict[str, Any]
    data: dict[str, Any]
    train: dict[str, Any]
    lineage: list[dict[str, Any]] = field(default_factory=list)
    forgotten: ForgottenIds = field(default_factory=ForgottenIds)
    ledger: dict[str, Any] | None = None
    references: dict[str, Any] | None = None  # iau_cli.core.references: the reference models' summary
    format: int = FORMAT_VERSION
    version: str = __version__

    def to_metadata(self) -> dict[str, str]:
        metadata = {
            "iau.format": str(self.format),
            "iau.version": self.version,
            "iau.model": json.dumps(self.model, sort_keys=True),
            "iau.data": json.dumps(self.data, sort_keys=True),
            "iau.train": json.dumps(self.train, sort_keys=True),
            "iau.lineage": json.dumps(self.lineage),
            "iau.forgotten": json.dumps(self.forgotten.to_json()),
        }
        if self.ledger is not None:
            metadata["iau.ledger"] = json.dumps(self.ledger, sort_keys=True)
        if self.references is not None:
            metadata["iau.references"] = json.dumps(self.references, sort_keys=True)
        return metadata

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str, *, need_keys: bool = True) -> CheckpointMeta:
        missing = [k for k in META_KEYS if k not in metadata]
        if "iau.format" in missing:
            raise CheckpointError(
                f"{source}: a plain safetensors file without iau metadata; pass --config CONFIG.yaml "
                "describing its model and data"
            )
        text = metadata["iau.format"]
        if not (text.isascii() and text.lstrip("-").isdigit() and len(text) <= 6):
            raise CheckpointError(f"{source}: iau.format {text[:20]!r} is not a version number")
        fmt = int(text)
        if fmt > FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: checkpoint format {fmt} is newer than this iau supports ({FORMAT_VERSION}); upgrade iau"
            )
        if missing:
            raise CheckpointError(f"{source}: metadata is incomplete (missing {', '.join(missing)})")
        if fmt < 1:
            raise CheckpointError(f"{source}: iau.format {fmt} is not a version number (a positive integer)")
        size = sum(len(v) for v in metadata.values())
        if size > MAX_METADATA_CHARS:
            raise CheckpointError(
                f"{source}: iau metadata is {size:,} characters, over the {MAX_METADATA_CHARS:,} limit"
            )
        try:
            decoded = {
                key: json.loads(metadata[key])
                for key in META_KEYS[2:] + ("iau.ledger", "iau.references")
                if key in metadata
            }
            check_schema(decoded)
            forgotten = ForgottenIds.from_json(decoded["iau.forgotten"], need_keys=need_keys)
            check_forgotten_against_lineage(forgotten, decoded["iau.lineage"])
            return cls(
                format=fmt,
                version=metadata["iau.version"],
                model=decoded["iau.model"],
                data=decoded["iau.data"],
                train=decoded["iau.train"],
                lineage=decoded["iau.lineage"],
                forgotten=forgotten,
                ledger=decoded.get("iau.ledger"),
                references=decoded.get("iau.references"),
            )
        except RecursionError:
            raise CheckpointError(f"{source}: iau metadata is nested too deeply to be real") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{source}: iau metadata is corrupt ({exc})") from None
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {exc}") from None


MAX_METADATA_CHARS = 64 << 20  # a million forgotten ids take about 22 MB


def check_forgotten_against_lineage(forgotten: ForgottenIds, lineage: list[dict[str, Any]]) -> None:
    """The forgotten record is bound to the lineage: it holds as many ids as the unlearn events
    recorded, and (for events that carry it) the digest the last one recorded. An edited record —
    emptied, so that a later retrain would train *on* forgotten rows again — is refused.
    ``CheckpointError``: the file was edited after iau wrote it."""
    events = [e for e in lineage if e.get("event") == "unlearn"]
    expected = sum(int(e.get("ids", 0)) + int(e.get("test_ids", 0)) for e in events)
    if len(forgotten) != expected:
        raise CheckpointError(
            f"the forgotten-id record holds {len(forgotten)} id(s) but the lineage's unlearn events recorded "
            f"{expected}: the file was edited after iau wrote it; use the checkpoint iau wrote (or its parent)"
        )
    recorded = events[-1].get("forgotten_sha256") if events else None  # older events carry none
    if recorded is not None and recorded != forgotten.digest():
        raise CheckpointError(
            "the forgotten-id record differs from the one its last unlearn event recorded (forgotten_sha256): the "
            "file was edited after iau wrote it; use the checkpoint iau wrote (or its parent)"
        )


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_int(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_schema(decoded: dict[str, Any]) -> None:
    """Each ``iau.*`` value has the type and shape iau writes; ``ValueError`` names the first that
    does not (called before anything is built from the metadata)."""
    # Long on purpose: one check per metadata key, in the order of the format (docs/DESIGN:
    # checkpoint).
    model = decoded["iau.model"]
    _need(isinstance(model, dict), "iau.model is not a mapping")
    _need(isinstance(model.get("name"), str) and model["name"], "iau.model.name is not a model name")
    _need(isinstance(model.get("args", {}), dict), "iau.model.args is not a mapping")
    shape = model.get("input_shape")
    _need(isinstance(shape, list) and all(_is_int(v, 1) for v in shape), "iau.model.input_shape is not a shape")
    _need(_is_int(model.get("num_classes"), 2), "iau.model.num_classes is not a class count")
    code = model.get("code", {"folder": "", "sha256": "0" * 64})
    _need(
        isinstance(code, dict)
        and isinstance(code.get("folder"), str)
        and isinstance(code.get("sha256"), str)
        and len(code["sha256"]) == 64,
        "iau.model.code is not a code pin (folder, sha256)",
    )
    data = decoded["iau.data"]
    _need(isinstance(data, dict) and isinstance(data.get("config", {}), dict), "iau.data is not a mapping")
    _need(isinstance(data.get("fingerprint", {}), dict), "iau.data.fingerprint is not a mapping")
    _need(isinstance(decoded["iau.train"], dict), "iau.train is not a mapping")
    lineage = decoded["iau.lineage"]
    _need(isinstance(lineage, list) and bool(lineage), "iau.lineage is not a list of events")
    _need(all(isinstance(e, dict) and isinstance(e.get("event"), str) for e in lineage), "a lineage event is malformed")
    _need(lineage[0]["event"] in ("train", "import"), "the lineage does not start with train or import")
    _need(all(_is_int(e.get("ids", 0)) for e in lineage), "a lineage event's id count is not an integer")
    for event in lineage:
        for key in ("time", "method", "iau_version", "ids_digest", "parent_sha256", "params_sha256"):
            _need(isinstance(event.get(key, ""), str), f"a lineage event's {key} is not text")
    forgotten = decoded["iau.forgotten"]
    _need(isinstance(forgotten, dict), "iau.forgotten is not a mapping")
    salt = forgotten.get("salt")
    _need(isinstance(salt, str) and len(salt) >= 16 and len(salt) % 2 == 0, "iau.forgotten.salt is not hex")
    bytes.fromhex(salt)
    _need(isinstance(forgotten.get("hashes", ""), str), "iau.forgotten.hashes is not base64 text")
    _need(_is_int(forgotten.get("count", 0)), "iau.forgotten.count is not an integer")
    ledger = decoded.get("iau.ledger")
    if ledger is not None:
        _need(isinstance(ledger, dict), "iau.ledger is not a mapping")
        _need(_is_int(ledger.get("count")), "iau.ledger.count is not an integer")
        _need(isinstance(ledger.get("params_sha256"), str), "iau.ledger.params_sha256 is not a digest")
        drift = ledger.get("drift", 0.0)
        _need(isinstance(drift, (int, float)) and not isinstance(drift, bool), "iau.ledger.drift is not a number")
    references = decoded.get("iau.references")
    if references is not None:  # written by iau_cli.core.references.compute_references
        _need(isinstance(references, dict), "iau.references is not a mapping")
        _need(_is_int(references.get("models"), 2), "iau.references.models is not a model count")
        fit = references.get("fit")
        _need(
            isinstance(fit, list)
            and len(fit) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in fit),
            "iau.references.fit is not two numbers",
        )
        if "key_id" in references:
            _need(isinstance(references["key_id"], str), "iau.references.key_id is not text")
        else:
            salt = references.get("salt")
            _need(isinstance(salt, str) and len(salt) == 32, "iau.references.salt is not hex")
            bytes.fromhex(salt)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the state dict, its metadata, the ledger tensors, and the file's hash."""

    path: Path
    state_dict: dict[str, Any]
    meta: CheckpointMeta | None
    sha256: str
    ledger_tensors: dict[str, Any] = field(default_factory=dict)
    reference_tensors: dict[str, Any] = field(default_factory=dict)
    _params_digest: str | None = field(default=None, repr=False)

    def params_digest(self) -> str:
        """``params_sha256`` of the stored state dict (computed once)."""
        if self._params_digest is None:
            self._params_digest = params_sha256(self.state_dict)
        return self._params_digest


def params_sha256(state_dict: dict[str, Any]) -> str:
    """A digest of a state dict's tensors (names, dtypes, shapes, bytes) in name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The raw metadata of a safetensors file, without loading tensors."""
    from safetensors import safe_open

    if Path(path).is_dir():
        raise CheckpointError(f"{path}: is a folder, not a .safetensors file")
    with _reading(path):
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})


def recorded_data_paths(path: str | os.PathLike[str]) -> dict[str, str]:
    """The data files a checkpoint's metadata names (for the output guard; empty when unreadable)."""
    try:
        config = json.loads(read_metadata(path).get("iau.data", "{}")).get("config", {})
        return {f"{split} data": str(config[split]) for split in ("train", "test") if config.get(split)}
    except (CheckpointError, ValueError, AttributeError, TypeError):
        return {}


def load_checkpoint(path: str | os.PathLike[str], *, require_meta: bool = True, need_keys: bool = True) -> Checkpoint:
    """Load tensors and metadata; ``require_meta=False`` accepts a plain state dict (meta is None);
    ``need_keys=False`` reads a keyed forgotten record without its operator key (counted, never matched)."""
    from safetensors.torch import load_file

    path = Path(path)
    metadata = read_metadata(path)
    with _reading(path):
        tensors = load_file(str(path))
    if metadata.get("iau.format") is None and not require_meta:
        meta = None
    else:
        meta = CheckpointMeta.from_metadata(metadata, str(path), need_keys=need_keys)
    extra = (LEDGER_PREFIX, REFERENCE_PREFIX)
    state = {k: v for k, v in tensors.items() if not k.startswith(extra)}
    ledger = {k[len(LEDGER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(LEDGER_PREFIX)}
    references = {k[len(REFERENCE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(REFERENCE_PREFIX)}
    if meta is not None:
        problem = check_tensors(meta.references, references)
        if problem:
            raise CheckpointError(f"{path}: {problem}")
    return Checkpoint(
        path=path,
        state_dict=state,
        meta=meta,
        sha256=file_sha256(path),
        ledger_tensors=ledger,
        reference_tensors=references,
    )


@contextlib.contextmanager
def _reading(path: str | os.PathLike[str]) -> Iterator[None]:
    from safetensors import SafetensorError

    try:
        yield
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a .safetensors file") from None
    except PermissionError:
        raise CheckpointError(f"{path}: permission denied") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        if _is_torch_pickle(path):
            raise CheckpointError(
                f"{path}: a PyTorch pickle (torch.save), not a safetensors file; iau never unpickles. Convert it in "
                "your own Python, where you trust the file: import torch; from safetensors.torch import save_file; "
                f"save_file(torch.load({Path(path).name!r}, weights_only=True), 'model.safetensors'); then pass that "
                "file with --config describing its model and data (README: Checkpoints)"
            ) from None
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt: {exc})") from None


def _is_torch_pickle(path: str | os.PathLike[str]) -> bool:
    """A torch.save file: a zip archive holding ``…/data.pkl`` (PyTorch ≥ 1.6; its member names
    are read, nothing is unpickled), a bare pickle (protocol 2–5), or a file named ``.pt``/``.pth``."""
    import zipfile

    if Path(path).suffix in (".pt", ".pth"):
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
        if head == b"PK":
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def save_checkpoint(
    path: str | os.PathLike[str],
    state_dict: dict[str, Any],
    meta: CheckpointMeta,
    *,
    ledger_tensors: dict[str, Any] | None = None,
    reference_tensors: dict[str, Any] | None = None,
    overwrite: bool = False,
    outputs: Outputs | None = None,
) -> str:
    """Write a checkpoint atomically and return its sha256.

    With ``outputs`` the file is only staged there, published with the run's other outputs by
    :meth:`Outputs.publish`; without, it is published at once. Without ``overwrite`` an existing
    file is never replaced, even by a concurrent writer (see :class:`iau_cli.io.files.Outputs`).
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    for name, value in (ledger_tensors or {}).items():
        tensors[LEDGER_PREFIX + name] = value.detach().cpu().contiguous().clone()
    for name, value in (reference_tensors or {}).items():
        tensors[REFERENCE_PREFIX + name] = value.detach().cpu().contiguous().clone()
    metadata = meta.to_metadata()

    def write(temp: Path) -> None:
        save_file(tensors, str(temp), metadata=metadata)

    if outputs is not None:
        return outputs.stage(Path(path), write, overwrite=overwrite, primary=True)
    with Outputs() as own:
        digest = own.stage(Path(path), write, overwrite=overwrite, primary=True)
        own.publish()
    return digest


@dataclass
class NewCheckpoint:
    """A checkpoint a recipe made, not yet written: its weights, metadata and tensor tables — or a
    byte-identical copy of the file ``copy_of``. Whoever owns the outputs stages it (:meth:`stage`)."""

    state: dict[str, Any] | None
    meta: CheckpointMeta | None
    ledger_tensors: dict[str, Any] | None = None
    reference_tensors: dict[str, Any] | None = None
    copy_of: Path | None = None

    def stage(self, outputs: Outputs, path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
        """Stage it in ``outputs`` (published with the run's other outputs); its sha256."""
        if self.copy_of is not None:
            return outputs.stage_copy(self.copy_of, Path(path), overwrite=overwrite)
        assert self.state is not None and self.meta is not None
        return save_checkpoint(
            path,
            self.state,
            self.meta,
            ledger_tensors=self.ledger_tensors,
            reference_tensors=self.reference_tensors,
            overwrite=overwrite,
            outputs=outputs,
        )
