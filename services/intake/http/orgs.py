"""`GET/PUT /v1/orgs/{org}/delegation`: who besides owners may submit privacy requests.

Erasure and export requests are owner-only by default. An owner may delegate subject-level
requests (one data subject, not a whole organisation) to the org's admins with
`{"admins_submit_subject_requests": true}`, and take it back with `false`. Each change is
audited (OrgDelegationChanged, with the old and new value). Admins can never shorten the
recovery window below the org's default, delegated or not.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StrictBool

from services.intake.http.bodies import Delegation, ok
from services.intake.http.contract import answers
from services.intake.http.deps import Owner, Uow, fail
from services.intake.service import orgs
from services.intake.service.errors import ServiceError

router = APIRouter()


class DelegationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    admins_submit_subject_requests: StrictBool


def _view(org: str, on: bool) -> dict[str, Any]:
    return {
        "org_id": org,
        "admins_submit_subject_requests": on,
        "rule": "erasure and export requests are owner-only"
        + ("; admins may submit subject-level ones" if on else ""),
    }


@router.get(
    "/v1/orgs/{org}/delegation",
    response_model=None,
    responses={200: ok(Delegation, "Who may submit."), **answers(403)},
)
async def get_delegation(org: str, request: Request, who: Owner, uow: Uow) -> dict[str, Any]:
    try:
        return _view(org, await orgs.delegation(uow, who, org))
    except ServiceError as exc:
        await fail(request, exc, who)


@router.put(
    "/v1/orgs/{org}/delegation",
    response_model=None,
    responses={200: ok(Delegation, "Who may submit, now."), **answers(400, 403, 413, 415)},
)
async def put_delegation(
    org: str, body: DelegationIn, request: Request, who: Owner, uow: Uow
) -> dict[str, Any]:
    on = body.admins_submit_subject_requests
    try:
        await orgs.set_delegation(uow, who, org, on)
    except ServiceError as exc:
        await fail(request, exc, who)
    return _view(org, on)
