"""The audit chain: rows hash-linked so any rewrite of history is detectable.

hash = sha256(prev_hash || canonical_json(row)), where the row is everything but the hashes.
Audit rows hold no raw personal data: payload fields marked PII are dropped.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditRow:
    seq: int
    event_id: uuid.UUID
    occurred_at: datetime
    recorded_at: datetime
    actor: str
    action: str
    org_id: str | None
    job_id: uuid.UUID | None
    subject_hash: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


def canonical_json(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(
    prev_hash: str,
    *,
    seq: int,
    event_id: uuid.UUID,
    occurred_at: datetime,
    recorded_at: datetime,
    actor: str,
    action: str,
    org_id: str | None,
    job_id: uuid.UUID | None,
    subject_hash: str | None,
    details: dict[str, Any],
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "event_id": str(event_id),
            "occurred_at": _ts(occurred_at),
            "recorded_at": _ts(recorded_at),
            "actor": actor,
            "action": action,
            "org_id": org_id,
            "job_id": str(job_id) if job_id else None,
            "subject_hash": subject_hash,
            "details": details,
        }
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def check_row(row: AuditRow, expected_prev: str, expected_seq: int) -> str | None:
    if row.seq != expected_seq:
        return f"sequence gap: expected {expected_seq}, found {row.seq}"
    if row.prev_hash != expected_prev:
        return "prev_hash does not match the previous row's hash"
    fields = {k: v for k, v in row.__dict__.items() if k not in ("prev_hash", "hash")}
    if row_hash(row.prev_hash, **fields) != row.hash:
        return "hash does not match the row's contents"
    return None
