"""`GET /v1/audit`: the audit trail over HTTP, for an organisation's owners.

Filters: org (the caller's own; another org is refused), job, action, time range
(`from`/`to` on occurred_at). Keyset pagination: pass `next_cursor` back as `cursor`.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from services.intake.http.bodies import AuditPage, ok
from services.intake.http.contract import INSTANT_SCHEMA, answers, instant
from services.intake.http.deps import Owner, fail, runtime
from services.intake.service.errors import ServiceError
from services.intake.service.orgs import own_org
from shared.readmodels import audit as audit_store

router = APIRouter()
CURSOR = "^([0-9]{1,18})?$"  # an audit sequence number (bigint); empty: the first page


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "event_id": str(row["event_id"]),
        "occurred_at": row["occurred_at"].isoformat(),
        "recorded_at": row["recorded_at"].isoformat(),
        "actor": row["actor"],
        "action": row["action"],
        "org_id": row["org_id"],
        "job_id": str(row["job_id"]) if row["job_id"] else None,
        "subject_hash": row["subject_hash"],
        "details": row["details"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


@router.get(
    "/v1/audit",
    response_model=None,
    responses={200: ok(AuditPage, "A page of the audit trail, oldest first."), **answers(400, 403)},
)
async def list_audit(
    request: Request,
    who: Owner,
    org: str | None = None,
    job: uuid.UUID | None = None,
    action: str | None = None,
    since: Annotated[str | None, Query(alias="from", json_schema_extra=INSTANT_SCHEMA)] = None,
    until: Annotated[str | None, Query(alias="to", json_schema_extra=INSTANT_SCHEMA)] = None,
    cursor: Annotated[str | None, Query(json_schema_extra={"pattern": CURSOR})] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    try:
        own_org(who, org if org is not None else who.org_id, "audit trail")
    except ServiceError as exc:
        await fail(request, exc, who)
    start, end = instant(since, "from"), instant(until, "to")
    if cursor and not re.fullmatch(CURSOR, cursor):
        raise HTTPException(400, "cursor is the `next_cursor` of the previous page")
    after = int(cursor) if cursor else 0
    rows = await audit_store.query(
        runtime(request).pool,
        audit_store.Query(
            org_id=who.org_id,
            job_id=job,
            action=action,
            since=start,
            until=end,
            after_seq=after,
            limit=limit,
        ),
    )
    return {
        "items": [_view(r) for r in rows],
        "next_cursor": str(rows[-1]["seq"]) if len(rows) == limit else None,
    }
