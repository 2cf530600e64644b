"""`POST /v1/requests` and `/v1/jobs`: submit a request, list and read jobs, send commands."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.intake import deadlines, store
from services.intake.domain import RequestIn
from services.intake.domain.requests import NOT_SPACE, NUMBER
from services.intake.http.bodies import Accepted, JobEvents, JobList, JobView, ok
from services.intake.http.contract import INSTANT_SCHEMA, answers, instant
from services.intake.http.deps import Admin, Owner, Rt, Uow, Viewer, fail, runtime
from services.intake.http.views import decode_cursor, encode_cursor, job_view, task_view
from services.intake.service import jobs, requests, tasks
from services.intake.service.errors import ServiceError
from shared import lifecycle
from shared.events.jobs import Item

router = APIRouter()


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=2000)


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: str = Field(min_length=1, max_length=63)
    key: str = Field(min_length=1, max_length=200)


class RestoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[ItemIn] | None = Field(None, min_length=1, max_length=10_000)
    reason: str | None = Field(None, max_length=2000)


def _only(field: str) -> dict[str, Any]:
    other = "months" if field == "days" else "days"
    given = {"type": "integer", "minimum": 1, "maximum": 400 if field == "days" else 12}
    return {"required": [field], "properties": {field: given, other: {"type": "null"}}}


class ExtendIn(BaseModel):
    """Days, or (GDPR) calendar months; the legal limits are checked by `deadlines`, which
    names the rule. The reason is sent to the requester."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        # What `deadlines` always refuses, in the schema: days or months (one), and a reason.
        json_schema_extra={"required": ["reason"], "oneOf": [_only("days"), _only("months")]},
    )
    days: Annotated[int, Field(ge=1, le=400), NUMBER] | None = None
    months: Annotated[int, Field(ge=1, le=12), NUMBER] | None = None
    reason: str | None = Field(
        None,
        max_length=2000,
        json_schema_extra={"pattern": rf"{NOT_SPACE}[\s\S]+{NOT_SPACE}", "type": "string"},
    )


@router.post(
    "/v1/requests",
    status_code=202,
    responses={
        202: ok(JobView, "Accepted: the new job."),
        200: ok(
            JobView,
            "Nothing new was started: the same `request_id` again with the same request (its "
            "job), or a request for a subject who already has an open job of this type "
            "(`duplicate_of` names that job; yours is linked to it and its requester is told "
            "when it is done).",
        ),
        **answers(400, 403, 409, 413, 415, 429),
    },
)
async def submit(body: RequestIn, request: Request, who: Admin, rt: Rt, uow: Uow) -> JSONResponse:
    try:
        requests.take_turn(rt.limiter, who)
        with rt.tracer.start_as_current_span("intake submit request"):
            done = await requests.submit(uow, body, who, rt.submit_policy(), channel="http")
    except ServiceError as exc:
        await fail(request, exc, who)
    view = job_view(done.job, datetime.now(UTC))
    if done.duplicate_of is not None:
        view["duplicate_of"] = str(done.duplicate_of)
        view["linked_request_id"] = str(done.link_id)
        view["note"] = (
            f"not started: this subject already has an open {view['type']} job "
            f"({view['status']}); your request is linked to it and you are told when it is done"
        )
    return JSONResponse(view, status_code=202 if done.created else 200)


@router.get(
    "/v1/jobs",
    response_model=None,
    responses={200: ok(JobList, "The org's jobs, newest first."), **answers(400, 403, 404)},
)
async def list_jobs(
    who: Viewer,
    rt: Rt,
    status: Annotated[str | None, Query(json_schema_extra={"enum": list(lifecycle.STATES)})] = None,
    type: Annotated[Literal["erasure", "export", "retention"] | None, Query()] = None,
    org: str | None = None,
    overdue: bool = False,
    due_before: Annotated[str | None, Query(json_schema_extra=INSTANT_SCHEMA)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    if status is not None and status not in lifecycle.STATES:
        raise HTTPException(422, f"status: one of {', '.join(lifecycle.STATES)}")
    if org is not None and org != who.org_id:
        raise HTTPException(404, f"no organisation {org} for this key")
    now = datetime.now(UTC)
    rows = await store.list_jobs(
        rt.pool,
        who.org_id,
        status=status,
        job_type=type,
        overdue_at=now if overdue else None,
        due_before=instant(due_before, "due_before"),
        after=decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    return {
        "jobs": [job_view(r, now) for r in rows],
        "next_cursor": encode_cursor(rows[-1]) if len(rows) == limit else None,
    }


@router.get(
    "/v1/jobs/{job_id}",
    response_model=None,
    responses={200: ok(JobView, "The job."), **answers(403, 404)},
)
async def get_job(job_id: uuid.UUID, request: Request, who: Viewer, uow: Uow) -> dict[str, Any]:
    try:
        row = await jobs.get(uow, who, job_id)
    except ServiceError as exc:
        await fail(request, exc, who)
    view = job_view(row, datetime.now(UTC))
    view["tasks"] = [task_view(t) for t in await store.job_tasks(uow.pool, job_id)]
    return view


@router.get(
    "/v1/jobs/{job_id}/events",
    response_model=None,
    responses={200: ok(JobEvents, "The job's timeline."), **answers(403, 404)},
)
async def events(job_id: uuid.UUID, request: Request, who: Viewer, uow: Uow) -> dict[str, Any]:
    try:
        await jobs.get(uow, who, job_id)
    except ServiceError as exc:
        await fail(request, exc, who)
    rows = await store.job_events(uow.pool, job_id)
    return {
        "events": [
            {
                "event_id": str(r["event_id"]),
                "type": r["type"],
                "occurred_at": r["occurred_at"].isoformat(),
                "actor": r["actor"],
                "details": r["details"],
            }
            for r in rows
        ]
    }


def _accepted(job_id: uuid.UUID, command: str, row: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"job_id": str(job_id), "accepted": command, "status": row["status"]}, 202)


@router.post(
    "/v1/jobs/{job_id}/cancel",
    status_code=202,
    responses={202: ok(Accepted, "Cancel accepted."), **answers(400, 403, 404, 409, 413, 415)},
)
async def cancel(
    job_id: uuid.UUID, request: Request, who: Admin, uow: Uow, body: CancelIn | None = None
) -> JSONResponse:
    """Stop a running job between batches. An export stops with its partial file deleted;
    one already ready or expired is refused (409) with the reason."""
    try:
        row = await jobs.cancel(uow, who, job_id, body.reason if body else None)
    except ServiceError as exc:
        await fail(request, exc, who)
    return _accepted(job_id, "cancel", row)


@router.post(
    "/v1/jobs/{job_id}/restore",
    status_code=202,
    responses={202: ok(Accepted, "Restore accepted."), **answers(400, 403, 404, 409, 413, 415)},
)
async def restore(
    job_id: uuid.UUID, request: Request, who: Owner, uow: Uow, body: RestoreIn | None = None
) -> JSONResponse:
    items = [Item(table=i.table, key=i.key) for i in body.items] if body and body.items else None
    try:
        row = await jobs.restore(uow, who, job_id, items, body.reason if body else None)
    except ServiceError as exc:
        await fail(request, exc, who)
    return _accepted(job_id, "restore", row)


@router.post(
    "/v1/jobs/{job_id}/extend",
    response_model=None,
    responses={
        200: ok(JobView, "The job, with its new deadline."),
        **answers(400, 403, 404, 409, 413, 415),
    },
)
async def extend(
    job_id: uuid.UUID, body: ExtendIn, request: Request, who: Admin, rt: Rt, uow: Uow
) -> dict[str, Any]:
    ask = deadlines.Extension(days=body.days, months=body.months, reason=body.reason)
    try:
        row = await jobs.extend(
            uow, who, job_id, ask, datetime.now(UTC), rt.settings.status_links()
        )
    except ServiceError as exc:
        await fail(request, exc, who)
    return job_view(row, datetime.now(UTC))


class WaiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, pattern=rf"{NOT_SPACE}")


@router.post(
    "/v1/jobs/{job_id}/tasks/{task}/done",
    response_model=None,
    responses={200: ok(JobView, "The job, the task done."), **answers(400, 403, 404, 409)},
)
async def task_done(
    job_id: uuid.UUID, task: str, request: Request, who: Admin, uow: Uow
) -> dict[str, Any]:
    """Confirm a manual task done: the system was erased by hand. The job completes when its
    last open task closes (it waits in `awaiting_tasks` after the purge)."""
    return await _close(job_id, task, "done", None, request, who, uow)


@router.post(
    "/v1/jobs/{job_id}/tasks/{task}/waive",
    response_model=None,
    responses={
        200: ok(JobView, "The job, the task waived."),
        **answers(400, 403, 404, 409, 413, 415),
    },
)
async def task_waive(
    job_id: uuid.UUID, task: str, body: WaiveIn, request: Request, who: Admin, uow: Uow
) -> dict[str, Any]:
    """Waive a manual task, with the reason (audited): nothing to erase there."""
    return await _close(job_id, task, "waived", body.reason, request, who, uow)


async def _close(
    job_id: uuid.UUID,
    task: str,
    outcome: tasks.Outcome,
    reason: str | None,
    request: Request,
    who: Admin,
    uow: Uow,
) -> dict[str, Any]:
    try:
        links = runtime(request).settings.status_links()
        row = await tasks.close(uow, who, job_id, task, outcome, reason, links)
    except ServiceError as exc:
        await fail(request, exc, who)
    view = job_view(row, datetime.now(UTC))
    view["tasks"] = [task_view(t) for t in await store.job_tasks(uow.pool, job_id)]
    return view
