"""Keyed subject hashes: how a person appears in audit rows, logs and traces."""

from __future__ import annotations

import hashlib
import hmac


def normalise_identity(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "email":
        value = value.lower()
    return f"{kind}:{value}"


def subject_hash(key: bytes, identities: dict[str, str]) -> str:
    """HMAC-SHA256 over the sorted, normalised identities; stable across services."""
    canonical = "\n".join(sorted(normalise_identity(k, v) for k, v in identities.items() if v))
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()
