"""The approval step over HTTP: the org's setting (owners), the jobs awaiting approval, and
an admin's decision on one (`approvals` service; `lethe jobs approve|deny` calls these)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from services.intake.domain import Caller
from services.intake.domain.approvals import CHANNELS
from services.intake.domain.requests import NOT_SPACE
from services.intake.http.bodies import JobList, JobView, ok
from services.intake.http.contract import answers
from services.intake.http.deps import Admin, Owner, Rt, Uow, Viewer, fail
from services.intake.http.views import job_view
from services.intake.runtime import Runtime
from services.intake.service import approvals
from services.intake.service.errors import ServiceError
from services.intake.service.uow import UnitOfWork

router = APIRouter()
ChannelName = Literal["api", "web", "kafka", "opendsr", "privacy_centre", "bulk"]
assert set(ChannelName.__args__) == set(CHANNELS)  # type: ignore[attr-defined]


class ApprovalSetting(BaseModel):
    org_id: str
    channels: list[str] = Field(description="Channels whose new jobs wait for approval.")
    rule: str


class ApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channels: list[ChannelName] = Field(
        max_length=len(CHANNELS),
        description="Channels whose new jobs wait for an admin's approval; [] turns it off.",
    )


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=2000, description="Told to the requester.")


class DenyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(
        max_length=2000,
        description="Why: told to the requester and kept in the audit trail.",
        json_schema_extra={"pattern": NOT_SPACE},
    )


def _setting(org: str, channels: list[str]) -> dict[str, Any]:
    rule = (
        f"new jobs from {', '.join(channels)} wait for an admin's approval"
        if channels
        else "no approval step: new jobs start at once"
    )
    return {"org_id": org, "channels": channels, "rule": rule}


@router.get(
    "/v1/orgs/{org}/approvals",
    response_model=None,
    responses={200: ok(ApprovalSetting, "The approval setting."), **answers(403)},
)
async def get_setting(org: str, request: Request, who: Owner, uow: Uow) -> dict[str, Any]:
    try:
        return _setting(org, await approvals.channels(uow, who, org))
    except ServiceError as exc:
        await fail(request, exc, who)


@router.put(
    "/v1/orgs/{org}/approvals",
    response_model=None,
    responses={
        200: ok(ApprovalSetting, "The approval setting, now."),
        **answers(400, 403, 413, 415),
    },
)
async def put_setting(
    org: str, body: ApprovalIn, request: Request, who: Owner, uow: Uow
) -> dict[str, Any]:
    try:
        chosen = await approvals.set_channels(uow, who, org, list(body.channels))
    except ServiceError as exc:
        await fail(request, exc, who)
    return _setting(org, chosen)


@router.get(
    "/v1/approvals",
    response_model=None,
    responses={200: ok(JobList, "Jobs awaiting approval, nearest deadline first."), **answers()},
)
async def awaiting(who: Viewer, uow: Uow) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "jobs": [job_view(r, now) for r in await approvals.awaiting(uow, who)],
        "next_cursor": None,
    }


async def _decide(
    job_id: uuid.UUID,
    request: Request,
    who: Caller,
    rt: Runtime,
    uow: UnitOfWork,
    approve: bool,
    reason: str | None,
) -> dict[str, Any]:
    try:
        row = await approvals.decide(
            uow,
            who,
            job_id,
            approve=approve,
            reason=reason,
            links=rt.settings.status_links(),
        )
    except ServiceError as exc:
        await fail(request, exc, who)
    return job_view(row, datetime.now(UTC))


@router.post(
    "/v1/jobs/{job_id}/approve",
    response_model=None,
    responses={
        200: ok(JobView, "Approved: the job, sent to its worker."),
        **answers(400, 403, 404, 409, 413, 415),
    },
)
async def approve(
    job_id: uuid.UUID, request: Request, who: Admin, rt: Rt, uow: Uow, body: ApproveIn | None = None
) -> dict[str, Any]:
    """Approve a job awaiting approval (admin or owner): it starts now; the requester is told."""
    return await _decide(job_id, request, who, rt, uow, True, body.reason if body else None)


@router.post(
    "/v1/jobs/{job_id}/deny",
    response_model=None,
    responses={
        200: ok(JobView, "Denied: the job, ended `denied`."),
        **answers(400, 403, 404, 409, 413, 415),
    },
)
async def deny(
    job_id: uuid.UUID, body: DenyIn, request: Request, who: Admin, rt: Rt, uow: Uow
) -> dict[str, Any]:
    """Deny a job awaiting approval (admin or owner), with the reason the requester is told:
    it ends `denied`, nothing done."""
    return await _decide(job_id, request, who, rt, uow, False, body.reason)
