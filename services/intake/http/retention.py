"""`GET/PUT /v1/orgs/{org}/retention`: an organisation's retention policy, for its owners.

The body of PUT maps categories to days, e.g. `{"messages": 30, "logs": 14}`; categories not
named keep their value. Each value is a whole number of days, 1..3650; anything else is a
422 naming the category and the range. Every change is audited with old and new values.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from services.intake import retention
from services.intake.http.deps import Owner, Rt, Uow, fail
from services.intake.service import retention as policies
from services.intake.service.errors import ServiceError
from shared.datamap import DataMap

router = APIRouter()


def _view(org: str, policy: dict[str, int], dm: DataMap) -> dict[str, Any]:
    return {
        "org_id": org,
        "policy": policy,
        "defaults": retention.categories(dm),
        "range": [retention.MIN_DAYS, retention.MAX_DAYS],
    }


@router.get("/v1/orgs/{org}/retention")
async def get_retention(org: str, request: Request, who: Owner, rt: Rt, uow: Uow) -> dict[str, Any]:
    try:
        return _view(org, await policies.policy(uow, rt.datamap, who, org), rt.datamap)
    except ServiceError as exc:
        await fail(request, exc, who)


@router.put("/v1/orgs/{org}/retention")
async def put_retention(
    org: str, request: Request, who: Owner, rt: Rt, uow: Uow, body: Annotated[Any, Body()] = None
) -> dict[str, Any]:
    try:
        new = await policies.set_policy(uow, rt.datamap, who, org, body)
    except ServiceError as exc:
        await fail(request, exc, who)
    return _view(org, new, rt.datamap)
