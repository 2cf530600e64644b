"""Signatures of Lethe's outgoing calls (webhooks, connector calls), Stripe-style:
`Lethe-Signature: t=<unix seconds>,v1=<hex>` where v1 = HMAC-SHA256(secret, "<t>." + raw
body). A receiver recomputes it over the raw body, compares in constant time, rejects a `t`
older than its tolerance (default 5 minutes), and remembers `Lethe-Event-Id`s it has seen
(ids are stable across retries): a replayed request is then either too old or already
seen."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Lethe-Signature"
EVENT_HEADER = "Lethe-Event-Id"
TOLERANCE_SECONDS = 300


class BadSignature(ValueError):
    pass


def _mac(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> int:
    """The signed timestamp when `header` signs `body` recently enough; else BadSignature."""
    if not header:
        raise BadSignature(f"no {HEADER} header")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError) as exc:
        raise BadSignature("no timestamp in the signature") from exc
    now = time.time() if now is None else now
    if abs(now - t) > tolerance:
        raise BadSignature("timestamp outside the tolerance (a replay?)")
    expected = _mac(secret, t, body)
    # bytes: a non-ASCII header is a bad signature, not a TypeError
    if not hmac.compare_digest(expected.encode(), parts.get("v1", "").encode()):
        raise BadSignature("signature does not match the body")
    return t
