"""Per-group encryption with AES-256-GCM (the `cryptography` package; no hand-written crypto).

The additional authenticated data binds the ciphertext to its frame header (stream id, frame
index, size, weights) and to its record's metadata (group id, label, block mask, quality), so a
payload moved to another frame or group, or relabelled, fails authentication.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptionError

ALGORITHM = "AES-256-GCM"
NONCE_BYTES = 12
TAG_BYTES = 16  # the GCM tag the ciphertext carries after the sealed payload


@dataclass(frozen=True)
class EncryptionKey:
    key_id: str
    secret: bytes

    @classmethod
    def generate(cls) -> "EncryptionKey":
        secret = AESGCM.generate_key(bit_length=256)
        return cls(hashlib.sha256(secret).hexdigest()[:16], secret)

    def save(self, path: Path) -> None:
        """Write the key as JSON, readable by the owner only."""
        data = {"algorithm": ALGORITHM, "key_id": self.key_id, "key": base64.b64encode(self.secret).decode()}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)

    @classmethod
    def load(cls, path: Path) -> "EncryptionKey":
        try:
            data = json.loads(Path(path).read_text())
            secret = base64.b64decode(data["key"], validate=True)
            key_id = str(data["key_id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a roistream key file: {exc}") from exc
        if len(secret) != 32:
            raise ValueError(f"{path}: an {ALGORITHM} key has 32 bytes, this one has {len(secret)}")
        return cls(key_id, secret)


class Keyring:
    """Keys by key id; what a decoder or query client holds."""

    def __init__(self, keys: list[EncryptionKey] | tuple[EncryptionKey, ...] = ()):
        self._keys = {k.key_id: k for k in keys}

    def get(self, key_id: str) -> EncryptionKey | None:
        return self._keys.get(key_id)

    def __bool__(self) -> bool:
        return bool(self._keys)


def seal(key: EncryptionKey, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Encrypt; returns (nonce, ciphertext with tag)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(key.secret).encrypt(nonce, plaintext, aad)


def open_sealed(key: EncryptionKey, nonce: bytes, ciphertext: bytes, aad: bytes, what: str) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise DecryptionError(f"{what}: nonce has {len(nonce)} bytes, expected {NONCE_BYTES}")
    try:
        return AESGCM(key.secret).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptionError(f"{what}: authentication failed (wrong key, or the ciphertext was "
                              "altered or moved from another frame or group)") from None
