"""Edge signatures on group records (Ed25519, the `cryptography` package; no hand-written crypto).

A CRC finds damage, not forgery: anyone who can write a stream can recompute it. An edge that
holds a signing key signs every record it codes, so the cloud and every reader holding the edge's
public key can tell the edge's records from anyone else's:

    record_binding(header, record)  ─┐   (header incl. group list and encrypted group ids,
    nonce + payload                  ─┴─▶ Ed25519 ─▶ record.signature {key_id, signature}

Each record is signed on its own, so a reader that asks the cloud for one group can verify that
group without the others (selective decode stays selective). Because the binding holds the header,
a signed record also pins which groups the frame had and which of them were encrypted: stripping a
record's encryption, moving it to another frame or group, or relabelling it breaks the signature.
A reader that trusts keys (`TrustedKeys`) refuses unsigned records, so removing a signature is
detected as well.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from proto import bitstream_pb2 as pb

from .bitstream import record_binding
from .errors import SignatureError

ALGORITHM = "Ed25519"
SIGNATURE_BYTES = 64
KEY_ID_CHARS = 64  # our key ids are 16 hex digits; the validator bounds what a stream may claim
_CONTEXT = b"roistream record signature v1\0"  # a signature over these bytes means nothing elsewhere


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def signed_bytes(header: pb.FrameHeader, record: pb.GroupRecord) -> bytes:
    """What a record's signature covers: its binding (header + metadata), nonce and payload."""
    return _CONTEXT + record_binding(header, record) + record.encryption.nonce + record.payload


@dataclass(frozen=True)
class VerifyKey:
    """An edge's public key, as the cloud and readers hold it."""

    key_id: str
    public: Ed25519PublicKey

    @classmethod
    def load(cls, path: Path | str) -> "VerifyKey":
        try:
            public = serialization.load_pem_public_key(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a PEM public key: {exc}") from exc
        if not isinstance(public, Ed25519PublicKey):
            raise ValueError(f"{path}: a roistream verify key is an {ALGORITHM} public key")
        return cls(key_id_of(public), public)

    def save(self, path: Path | str) -> None:
        Path(path).write_bytes(self.public.public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo))


@dataclass(frozen=True)
class SigningKey:
    """An edge's private key: signs the records it codes."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(Ed25519PrivateKey.generate())

    @property
    def verify_key(self) -> VerifyKey:
        public = self.private.public_key()
        return VerifyKey(key_id_of(public), public)

    @property
    def key_id(self) -> str:
        return self.verify_key.key_id

    def save(self, path: Path | str) -> None:
        """Write the private key as PKCS#8 PEM, readable by the owner only."""
        pem = self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)

    @classmethod
    def load(cls, path: Path | str) -> "SigningKey":
        try:
            private = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path}: a roistream signing key is an {ALGORITHM} private key")
        return cls(private)

    def sign(self, header: pb.FrameHeader, record: pb.GroupRecord) -> None:
        """Sign a record whose metadata, nonce and payload are final (before its CRC)."""
        record.signature.key_id = self.key_id
        record.signature.signature = self.private.sign(signed_bytes(header, record))


class TrustedKeys:
    """The edge public keys a reader accepts; with any key given, every record must be signed by one."""

    def __init__(self, keys: list[VerifyKey] | tuple[VerifyKey, ...] = ()):
        self._keys = {k.key_id: k for k in keys}

    @classmethod
    def load(cls, paths: list[Path] | tuple[Path, ...]) -> "TrustedKeys":
        return cls([VerifyKey.load(p) for p in paths])

    def __bool__(self) -> bool:
        return bool(self._keys)

    def verify(self, header: pb.FrameHeader, record: pb.GroupRecord) -> None:
        what = f"group {record.group_id}"
        if not record.HasField("signature"):
            raise SignatureError(f"{what} is not signed, and this reader accepts only signed records")
        key = self._keys.get(record.signature.key_id)
        if key is None:
            raise SignatureError(f"{what} is signed with key {record.signature.key_id!r}, which is not trusted")
        try:
            key.public.verify(record.signature.signature, signed_bytes(header, record))
        except InvalidSignature:
            raise SignatureError(f"{what}: the signature does not match (the record or its frame header "
                                 "was altered after the edge signed it)") from None
