"""OpenDSR requests (OpenDSR's own table; the job is intake's)."""

from __future__ import annotations

import uuid
from typing import Any

from services.intake.opendsr import OpenDSRRequest
from services.intake.store.db import Db

_OPENDSR_FACTS = (
    "SELECT j.id, j.type, j.status, j.due_at, j.extended_due_at, j.received_at, j.done, "
    "j.result, j.request_fingerprint, o.api_version, o.request_fingerprint AS dsr_fingerprint, "
    "o.subject_request_id FROM lethe.jobs j JOIN lethe.opendsr_requests o ON o.job_id = j.id "
)


async def opendsr_request(
    db: Db, org_id: str, subject_request_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any] | None:
    """The OpenDSR request and the facts of its job (`lock`: the job row, FOR UPDATE)."""
    row = await db.fetchrow(
        _OPENDSR_FACTS
        + "WHERE o.org_id = $1 AND o.subject_request_id = $2"
        + (" FOR UPDATE OF j" if lock else ""),
        org_id,
        subject_request_id,
    )
    return dict(row) if row else None


async def record_opendsr(
    db: Db, job_id: uuid.UUID, org_id: str, req: OpenDSRRequest, fingerprint: str
) -> None:
    """Idempotent: written with the job, and again (a no-op) after it."""
    await db.execute(
        "INSERT INTO lethe.opendsr_requests (job_id, org_id, subject_request_id, "
        "subject_request_type, regulation, api_version, property_id, submitted_time, "
        "status_callback_urls, request_fingerprint) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        job_id,
        org_id,
        uuid.UUID(req.subject_request_id),
        req.subject_request_type,
        req.regulation,
        req.api_version,
        None if req.property_id is None else str(req.property_id),
        req.submitted_time,
        req.status_callback_urls,
        fingerprint,
    )
