"""Keyed subject hashes: how a person appears in audit rows, logs and traces.

The organisation is part of the hashed text, so one person known to two tenants gets two
unrelated hashes: the audit trail of one tenant cannot be joined with another's. Hashes
stored before this change (no org in the text) stay as they were: the identities are gone,
so they cannot be recomputed; they are still compared only within their own org.
"""

from __future__ import annotations

import hashlib
import hmac


def normalise_identity(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "email":
        value = value.lower()
    return f"{kind}:{value}"


def subject_hash(key: bytes, org_id: str, identities: dict[str, str]) -> str:
    """HMAC-SHA256 over the org and the sorted, normalised identities; stable across services."""
    lines = sorted(normalise_identity(k, v) for k, v in identities.items() if v)
    # The org line comes first and is tagged, so no identity can pose as an org.
    canonical = "\n".join([f"org:{org_id}", *lines])
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()
