"""`GET/PUT /v1/orgs/{org}/delegation`: who besides owners may submit privacy requests;
`GET/PUT /v1/orgs/{org}/privacy-centre`: the subject-facing pages, off by default.

Erasure and export requests are owner-only by default. An owner may delegate subject-level
requests (one data subject, not a whole organisation) to the org's admins with
`{"admins_submit_subject_requests": true}`, and take it back with `false`. Each change is
audited (OrgDelegationChanged, with the old and new value). Admins can never shorten the
recovery window below the org's default, delegated or not.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from services.intake.http.bodies import Delegation, ok
from services.intake.http.contract import answers
from services.intake.http.deps import Owner, Uow, fail
from services.intake.service import orgs, privacy
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


class PrivacyCentreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool
    slug: str | None = Field(
        None,
        max_length=63,
        pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        description="Where the pages live: /privacy/{slug}. Unset: kept, or the org id.",
    )


class PrivacyCentre(BaseModel):
    org_id: str
    enabled: bool
    slug: str | None
    url: str | None = Field(description="The centre's page while it is on.")


def _centre(request: Request, org: str, enabled: bool, slug: str | None) -> dict[str, Any]:
    base = request.app.state.runtime.settings.public_api_url.rstrip("/")
    url = f"{base}/privacy/{slug}" if enabled and slug else None
    return {"org_id": org, "enabled": enabled, "slug": slug, "url": url}


@router.get(
    "/v1/orgs/{org}/privacy-centre",
    response_model=None,
    responses={200: ok(PrivacyCentre, "The privacy centre's setting."), **answers(403)},
)
async def get_privacy_centre(org: str, request: Request, who: Owner, uow: Uow) -> dict[str, Any]:
    try:
        return _centre(request, org, *await privacy.centre(uow, who, org))
    except ServiceError as exc:
        await fail(request, exc, who)


@router.put(
    "/v1/orgs/{org}/privacy-centre",
    response_model=None,
    responses={
        200: ok(PrivacyCentre, "The privacy centre's setting, now."),
        **answers(400, 403, 409, 413, 415),
    },
)
async def put_privacy_centre(
    org: str, body: PrivacyCentreIn, request: Request, who: Owner, uow: Uow
) -> dict[str, Any]:
    """Owners turn the centre on (`enabled: true`) or off; every change is audited
    (PrivacyCentreChanged). A slug another organisation has is a 409."""
    try:
        on, slug = await privacy.set_centre(uow, who, org, body.enabled, body.slug)
    except ServiceError as exc:
        await fail(request, exc, who)
    return _centre(request, org, on, slug)
