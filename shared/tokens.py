"""Download tokens: HMAC-signed, bound to one export, one recipient and an expiry.

A token proves only that Lethe issued it; intake still checks it is not revoked, that the
export is ready and that the caller belongs to the export's organisation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime


class TokenError(ValueError):
    pass


@dataclass(frozen=True)
class DownloadToken:
    token_id: uuid.UUID
    job_id: uuid.UUID
    recipient_hash: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, token: DownloadToken) -> str:
    body = json.dumps(
        {
            "t": str(token.token_id),
            "j": str(token.job_id),
            "r": token.recipient_hash,
            "x": int(token.expires_at.timestamp()),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def verify(key: bytes, text: str, now: datetime) -> DownloadToken:
    """The token's claims if the signature holds and it has not expired."""
    try:
        body_b64, mac_b64 = text.split(".")
        body, mac = _unb64(body_b64), _unb64(mac_b64)
    except ValueError as exc:
        raise TokenError("malformed token") from exc
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), mac):
        raise TokenError("token signature does not match (altered or not ours)")
    try:
        claims = json.loads(body)
        token = DownloadToken(
            token_id=uuid.UUID(claims["t"]),
            job_id=uuid.UUID(claims["j"]),
            recipient_hash=claims["r"],
            expires_at=datetime.fromtimestamp(claims["x"], UTC),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenError("malformed token") from exc
    if token.expires_at <= now:
        raise TokenError(f"link expired at {token.expires_at.isoformat()}")
    return token
