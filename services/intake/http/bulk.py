"""`/v1/bulk-requests`: many subjects in one request, their progress and outcomes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.intake.domain import bulk as rules
from services.intake.http.bodies import ok
from services.intake.http.contract import answers
from services.intake.http.deps import Admin, Rt, Uow, Viewer, fail
from services.intake.service import bulk, requests
from services.intake.service.errors import ServiceError
from services.intake.store import bulk as bulk_store

router = APIRouter()


class BulkView(BaseModel):
    id: str
    org_id: str
    type: str
    request_id: str | None
    channel: str
    created_at: str
    finished_at: str | None = Field(description="When the last subject's outcome was known.")
    total: int
    decided: int = Field(description="Subjects with a final outcome.")
    percent: float
    counts: dict[str, int] = Field(description=f"Subjects per outcome: {', '.join(rules.OUTCOMES)}")


class BulkSubject(BaseModel):
    row: int = Field(description="The subject's position in the list (from 1).")
    job_id: str | None = Field(description="Its own job (none for a rejected row).")
    subject_hash: str | None
    outcome: str = Field(description=", ".join(rules.OUTCOMES))
    reason: str | None
    job_status: str | None
    decided_at: str | None
    download_url: str | None = Field(description="An export's link, while it is ready.")


class BulkSubjects(BaseModel):
    subjects: list[BulkSubject]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")


def bulk_view(row: dict[str, Any], summary: rules.Summary) -> dict[str, Any]:
    total = summary.total
    return {
        "id": str(row["id"]),
        "org_id": row["org_id"],
        "type": row["type"],
        "request_id": row["request_id"],
        "channel": row["channel"],
        "created_at": row["created_at"].isoformat(),
        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
        "total": total,
        "decided": summary.decided,
        "percent": round(100 * summary.decided / total, 1) if total else 100.0,
        "counts": summary.counts,
    }


@router.post(
    "/v1/bulk-requests",
    status_code=202,
    responses={
        202: ok(BulkView, "Accepted: the bulk job, one job per valid subject."),
        200: ok(BulkView, "The same `request_id` again with the same list: its bulk job."),
        **answers(400, 403, 409, 413, 415, 429),
    },
)
async def submit(
    body: rules.BulkRequestIn, request: Request, who: Admin, rt: Rt, uow: Uow
) -> JSONResponse:
    """Up to 5,000 subjects of one request type; more is a 413 naming the limit. A row that
    is not a valid subject gets the outcome `rejected` with its reason; the others go on."""
    try:
        requests.take_turn(rt.limiter, who)
        with rt.tracer.start_as_current_span("intake submit bulk request"):
            done = await bulk.submit_bulk(uow, body, who, rt.submit_policy(), channel="http")
    except ServiceError as exc:
        await fail(request, exc, who)
    summary = await bulk.summary(uow, done.bulk)
    return JSONResponse(bulk_view(done.bulk, summary), status_code=202 if done.created else 200)


async def _bulk(rt: Rt, who: Viewer, bulk_id: uuid.UUID) -> dict[str, Any]:
    row = await bulk_store.get_bulk(rt.pool, who.org_id, bulk_id)
    if row is None:
        raise HTTPException(404, f"no bulk request {bulk_id} for this key's organisation")
    return row


@router.get(
    "/v1/bulk-requests/{bulk_id}",
    response_model=None,
    responses={200: ok(BulkView, "Counts per outcome and progress."), **answers(403, 404)},
)
async def get_bulk(bulk_id: uuid.UUID, who: Viewer, rt: Rt, uow: Uow) -> dict[str, Any]:
    row = await _bulk(rt, who, bulk_id)
    return bulk_view(row, await bulk.summary(uow, row))


@router.get(
    "/v1/bulk-requests/{bulk_id}/subjects",
    response_model=None,
    responses={200: ok(BulkSubjects, "The subjects in list order."), **answers(403, 404)},
)
async def subjects(
    bulk_id: uuid.UUID,
    who: Viewer,
    rt: Rt,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    await _bulk(rt, who, bulk_id)
    rows = await bulk_store.subjects_page(rt.pool, bulk_id, int(cursor or 0), limit)
    return {
        "subjects": [_subject(r) for r in rows],
        "next_cursor": str(rows[-1]["row_no"]) if len(rows) == limit else None,
    }


def _subject(r: dict[str, Any]) -> dict[str, Any]:
    result = r["job_result"] if isinstance(r["job_result"], dict) else {}
    link = result.get("results_url") if r["job_status"] == "ready" else None
    return {
        "row": r["row_no"],
        "job_id": str(r["job_id"]) if r["job_id"] else None,
        "subject_hash": r["subject_hash"],
        "outcome": r["outcome"],
        "reason": r["reason"],
        "job_status": r["job_status"],
        "decided_at": r["decided_at"].isoformat() if r["decided_at"] else None,
        "download_url": link if isinstance(link, str) else None,
    }
