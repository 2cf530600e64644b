"""What the auditor records of an event: the next row of the chain, without personal data.

The chain's rules (hashes, checks) are in shared/auditchain/rows.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.auditchain.rows import (  # noqa: F401  (re-exported: the auditor's vocabulary)
    GENESIS,
    AuditRow,
    canonical_json,
    check_row,
    row_hash,
)
from shared.events import Envelope, payload_model


def details_of(env: Envelope) -> dict[str, Any]:
    """What the audit row keeps of the payload: never fields marked as personal data."""
    model = payload_model(env.type)
    if model is None:
        return {"unregistered_type": True}
    try:
        return model.model_validate(env.payload).audit_details()
    except ValidationError:
        return {"invalid_payload": True}


def next_row(env: Envelope, *, prev_seq: int, prev_hash: str, recorded_at: datetime) -> AuditRow:
    # Round-trip precision of timestamptz: microseconds.
    occurred_at = env.occurred_at.astimezone(UTC)
    fields: dict[str, Any] = {
        "seq": prev_seq + 1,
        "event_id": env.event_id,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "actor": f"{env.actor.kind}:{env.actor.id}",
        "action": env.type,
        "org_id": env.org_id,
        "job_id": env.job_id,
        "subject_hash": env.subject_hash,
        "details": details_of(env),
    }
    return AuditRow(**fields, prev_hash=prev_hash, hash=row_hash(prev_hash, **fields))


def chain(
    envs: list[Envelope], *, prev_seq: int, prev_hash: str, recorded_at: datetime
) -> list[AuditRow]:
    """The next rows of the chain for `envs`, in their order, each linked to the one before:
    a batch is hashed in memory and written at once."""
    rows: list[AuditRow] = []
    for env in envs:
        row = next_row(env, prev_seq=prev_seq, prev_hash=prev_hash, recorded_at=recorded_at)
        rows.append(row)
        prev_seq, prev_hash = row.seq, row.hash
    return rows
