"""The record of forgotten ids: keyed hashes, never the ids themselves.

Without an operator key each id is stored as a salted sha256 prefix. The salt sits in the
checkpoint, so anyone holding the checkpoint *and* the data can hash every row's id and see who
was forgotten (ids have little entropy). With an operator key — a secret kept outside the
checkpoint, in the file named by ``IAU_ID_KEY_FILE`` — ids are stored as HMAC-SHA256 under that
key, and the checkpoint plus its data reveal nothing; iau then also masks the row digests it
records for deleted rows (:mod:`iau_cli.io.rowprint`), which would otherwise identify a one-row request.

Key rotation: the key file holds one key per line, the newest first. New ids are hashed with the
first key; ids hashed with an older key stay readable while that key is still listed (each group
of hashes records its key's id, an HMAC of a constant, never the key). Keep retired keys in the
file for as long as checkpoints that use them are in service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from iau_cli.errors import CheckpointError, ConfigError

KEY_FILE_ENV = "IAU_ID_KEY_FILE"
HASH_BYTES = 16
_MODULUS = 1 << 256
ENUMERABLE_WARNING = (
    "forgotten ids are stored as salted hashes without an operator key: anyone with this checkpoint and its "
    f"data can tell which ids were forgotten. Set {KEY_FILE_ENV} to a secret key file (README: private forgotten ids)"
)


KEY_FILE_LIMIT = 1 << 16


def operator_keys() -> dict[str, bytes]:
    """key id → key, from ``IAU_ID_KEY_FILE`` (newest first; empty when unset)."""
    path = os.environ.get(KEY_FILE_ENV, "")
    if not path:
        return {}
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{KEY_FILE_ENV}={path}: not a regular file (a device or FIFO); point it at the key file")
        with open(path, "rb") as handle:
            raw = handle.read(KEY_FILE_LIMIT + 1)
        if len(raw) > KEY_FILE_LIMIT:
            raise ConfigError(
                f"{KEY_FILE_ENV}={path}: larger than {KEY_FILE_LIMIT:,} bytes; a key file holds a few keys"
            )
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{KEY_FILE_ENV}={path}: cannot read the key file ({reason})") from None
    keys = [line.strip().encode() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not keys:
        raise ConfigError(f"{KEY_FILE_ENV}={path}: no key in the file (one secret per line, newest first)")
    if any(len(k) < 16 for k in keys):
        raise ConfigError(f"{KEY_FILE_ENV}={path}: a key is shorter than 16 characters; use a long random secret")
    return {key_id(k): k for k in keys}


def key_id(key: bytes) -> str:
    """A key's public name: 16 hex digits of an HMAC of a constant (says nothing about the key)."""
    return hmac.new(key, b"iau-operator-key-id", hashlib.sha256).hexdigest()[:16]


def _unpack(text: str) -> set[bytes]:
    packed = base64.b64decode(text, validate=True)  # not lenient: stray characters are corruption
    if len(packed) % HASH_BYTES:
        raise ValueError("forgotten-id hashes have a bad length")
    return {packed[i : i + HASH_BYTES] for i in range(0, len(packed), HASH_BYTES)}


def _pack(hashes: set[bytes]) -> str:
    return base64.b64encode(b"".join(sorted(hashes))).decode()


@dataclass
class ForgottenIds:
    """The ids a lineage has forgotten: salted sha256 prefixes (``hashes``) and, per operator key,
    HMAC prefixes (``keyed``). ``keys`` are the operator keys available to this process."""

    salt: str = field(default_factory=lambda: secrets.token_hex(16))
    hashes: set[bytes] = field(default_factory=set)
    keyed: dict[str, set[bytes]] = field(default_factory=dict)
    keys: dict[str, bytes] = field(default_factory=operator_keys, repr=False, compare=False)

    @property
    def current_key(self) -> tuple[str, bytes] | None:
        return next(iter(self.keys.items()), None)

    @property
    def private(self) -> bool:
        """Whether new ids are hashed with an operator key."""
        return self.current_key is not None

    def digest(self) -> str:
        """sha256 of the record (salt, hashes and keyed groups, in canonical order): what each
        unlearn event records as ``forgotten_sha256``, so an edited record is detected."""
        h = hashlib.sha256(bytes.fromhex(self.salt))
        for value in sorted(self.hashes):
            h.update(b"s" + value)
        for kid in sorted(self.keyed):
            h.update(b"k" + kid.encode())
            for value in sorted(self.keyed[kid]):
                h.update(value)
        return h.hexdigest()

    @property
    def holds_keyed_ids(self) -> bool:
        """Whether any forgotten id is recorded under an operator key (then nothing may be kept
        that names them by differencing, such as a gradient ledger over the rows left)."""
        return any(self.keyed.values())

    def _salted(self, sample_id: str) -> bytes:
        return hashlib.sha256(bytes.fromhex(self.salt) + sample_id.encode()).digest()[:HASH_BYTES]

    def _hmac(self, key: bytes, sample_id: str) -> bytes:
        return hmac.new(key, bytes.fromhex(self.salt) + sample_id.encode(), hashlib.sha256).digest()[:HASH_BYTES]

    def contains(self, sample_id: str) -> bool:
        if self.hashes and self._salted(sample_id) in self.hashes:
            return True
        return any(
            group and kid in self.keys and self._hmac(self.keys[kid], sample_id) in group
            for kid, group in self.keyed.items()
        )

    def add(self, ids: Iterable[str]) -> None:
        current = self.current_key
        if current is None:
            self.hashes.update(self._salted(i) for i in ids)
        else:
            self.keyed.setdefault(current[0], set()).update(self._hmac(current[1], i) for i in ids)

    def list_digest(self, ids: Iterable[str]) -> str:
        """A digest of an id list (order and duplicates do not matter): salted, or keyed."""
        current = self.current_key
        digest = hmac.new(current[1], digestmod=hashlib.sha256) if current else hashlib.sha256()
        digest.update(bytes.fromhex(self.salt))
        for sample_id in sorted(set(ids)):
            digest.update(sample_id.encode() + b"\n")
        return digest.hexdigest()

    def mask(self, value: int, context: str) -> tuple[int, str | None]:
        """``value`` hidden under the current key (value + HMAC(key, context) mod 2**256), with the
        key's id; unchanged (and None) without a key."""
        current = self.current_key
        if current is None:
            return value, None
        return (value + self._pad(current[1], context)) % _MODULUS, current[0]

    def unmask(self, value: int, kid: str | None, context: str) -> int:
        if kid is None:
            return value
        return (value - self._pad(self.keys[kid], context)) % _MODULUS

    @staticmethod
    def _pad(key: bytes, context: str) -> int:
        return int.from_bytes(hmac.new(key, b"iau-row-mask\n" + context.encode(), hashlib.sha256).digest(), "little")

    def __len__(self) -> int:
        return len(self.hashes) + sum(len(group) for group in self.keyed.values())

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"salt": self.salt, "count": len(self), "hashes": _pack(self.hashes)}
        if self.keyed:
            value["keyed"] = {kid: _pack(group) for kid, group in self.keyed.items()}
        return value

    @classmethod
    def from_json(
        cls, value: dict[str, Any], keys: dict[str, bytes] | None = None, *, need_keys: bool = True
    ) -> ForgottenIds:
        """Parse a record; every group's key must be at hand unless ``need_keys`` is False (then
        the groups without one are kept, counted, and never matched)."""
        keys = operator_keys() if keys is None else keys
        keyed_json = value.get("keyed", {})
        if not isinstance(keyed_json, dict) or not all(isinstance(v, str) for v in keyed_json.values()):
            raise ValueError("iau.forgotten.keyed is not a mapping of key ids to hashes")
        unknown = [kid for kid in keyed_json if kid not in keys]
        if unknown and need_keys:
            raise CheckpointError(
                f"the forgotten ids are keyed with operator key {unknown[0]}, which is not in "
                f"{KEY_FILE_ENV or 'the key file'}; add that key (keep retired keys listed after the current one)"
            )
        record = cls(
            salt=value["salt"],
            hashes=_unpack(value.get("hashes", "")),
            keyed={kid: _unpack(text) for kid, text in keyed_json.items()},
            keys=keys,
        )
        if "count" in value and value["count"] != len(record):
            raise ValueError(f"iau.forgotten says {value['count']} ids but holds {len(record)} hashes")
        return record
