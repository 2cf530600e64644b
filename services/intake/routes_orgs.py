"""`GET/PUT /v1/orgs/{org}/delegation`: who besides owners may submit privacy requests.

Erasure and export requests are owner-only by default. An owner may delegate subject-level
requests (one data subject, not a whole organisation) to the org's admins with
`{"admins_submit_subject_requests": true}`, and take it back with `false`. Each change is
audited (OrgDelegationChanged, with the old and new value). Admins can never shorten the
recovery window below the org's default, delegated or not.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from services.intake import store
from services.intake.auth import audit_refusal, runtime
from services.intake.domain import Caller
from services.intake.routes_common import Owner

router = APIRouter()


class DelegationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    admins_submit_subject_requests: bool


async def _own_org(request: Request, who: Caller, org: str) -> None:
    if org != who.org_id:
        await audit_refusal(request, "delegation of another organisation", who)
        raise HTTPException(403, f"your key belongs to organisation {who.org_id}, not {org}")


def _view(org: str, on: bool) -> dict[str, Any]:
    return {
        "org_id": org,
        "admins_submit_subject_requests": on,
        "rule": "erasure and export requests are owner-only"
        + ("; admins may submit subject-level ones" if on else ""),
    }


@router.get("/v1/orgs/{org}/delegation")
async def get_delegation(org: str, request: Request, who: Owner) -> dict[str, Any]:
    await _own_org(request, who, org)
    found = await store.get_org(runtime(request).pool, org)
    assert found is not None
    return _view(org, found["admins_submit_subject_requests"])


@router.put("/v1/orgs/{org}/delegation")
async def put_delegation(
    org: str, body: DelegationIn, request: Request, who: Owner
) -> dict[str, Any]:
    await _own_org(request, who, org)
    rt = runtime(request)
    await store.set_delegation(rt.pool, org, body.admins_submit_subject_requests, who.actor)
    rt.relay.wake()
    return _view(org, body.admins_submit_subject_requests)
