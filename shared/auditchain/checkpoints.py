"""Signed checkpoints of the chain head: plain functions, no database.

The signed message is plain text, so it can be rebuilt with a shell and checked with
`openssl pkeyutl -verify -rawin` (docs/audit-verify.md):

    lethe-audit-checkpoint/v1
    seq=<seq>
    head_hash=<hex sha256 of row seq>
    signed_at=<UTC ISO 8601, microseconds>
    key_id=<first 16 hex of sha256(raw public key)>
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head_hash: str
    signed_at: datetime
    key_id: str
    signature: str


def message(seq: int, head_hash: str, signed_at: datetime, kid: str) -> bytes:
    ts = signed_at.astimezone(UTC).isoformat(timespec="microseconds")
    return (
        f"lethe-audit-checkpoint/v1\nseq={seq}\nhead_hash={head_hash}\n"
        f"signed_at={ts}\nkey_id={kid}\n"
    ).encode()


def sign(key: Ed25519PrivateKey, seq: int, head_hash: str, signed_at: datetime) -> Checkpoint:
    signed_at = signed_at.astimezone(UTC)  # timestamptz keeps microseconds, as signed
    kid = key_id(public_raw(key.public_key()))
    sig = key.sign(message(seq, head_hash, signed_at, kid))
    return Checkpoint(seq, head_hash, signed_at, kid, base64.b64encode(sig).decode())


def check(cp: Checkpoint, trusted: dict[str, bytes]) -> str | None:
    """None when the signature is valid under a trusted key; else why not."""
    public = trusted.get(cp.key_id)
    if public is None:
        return f"signed by key {cp.key_id}, which is not a trusted key"
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(
            base64.b64decode(cp.signature), message(cp.seq, cp.head_hash, cp.signed_at, cp.key_id)
        )
    except (InvalidSignature, ValueError):
        return "signature does not verify"
    return None
