"""`GET/PUT /v1/orgs/{org}/retention`: an organisation's retention policy, for its owners.

The body of PUT maps categories to days, e.g. `{"messages": 30, "logs": 14}`; categories not
named keep their value. Each value is a whole number of days, 1..3650; anything else is a
422 naming the category and the range. Every change is audited with old and new values.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from services.intake import retention
from services.intake.http.bodies import RetentionPolicy, ok
from services.intake.http.contract import answers
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


@router.get(
    "/v1/orgs/{org}/retention",
    response_model=None,
    responses={200: ok(RetentionPolicy, "The policy and its defaults."), **answers(403)},
)
async def get_retention(org: str, request: Request, who: Owner, rt: Rt, uow: Uow) -> dict[str, Any]:
    try:
        return _view(org, await policies.policy(uow, rt.datamap, who, org), rt.datamap)
    except ServiceError as exc:
        await fail(request, exc, who)


# The body is read as any JSON and checked by the service (every wrong category named at
# once); its shape is documented here. Categories are the data map's (GET shows them).
POLICY_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {
                    "type": "integer",
                    "minimum": retention.MIN_DAYS,
                    "maximum": retention.MAX_DAYS,
                },
                "description": "category -> days; categories not named keep their value",
                "example": {"messages": 30},
            }
        }
    },
}


def document_categories(doc: dict[str, Any], dm: DataMap) -> None:
    """The PUT body's categories, from the data map this intake runs with."""
    body = doc["paths"]["/v1/orgs/{org}/retention"]["put"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    schema["propertyNames"] = {"enum": sorted(retention.categories(dm))}


@router.put(
    "/v1/orgs/{org}/retention",
    response_model=None,
    responses={200: ok(RetentionPolicy, "The policy, changed."), **answers(400, 403, 413, 415)},
    openapi_extra={"requestBody": POLICY_BODY},
)
async def put_retention(
    org: str,
    request: Request,
    who: Owner,
    rt: Rt,
    uow: Uow,
    body: Annotated[Any, Body(include_in_schema=False)] = None,
) -> dict[str, Any]:
    try:
        new = await policies.set_policy(uow, rt.datamap, who, org, body)
    except ServiceError as exc:
        await fail(request, exc, who)
    return _view(org, new, rt.datamap)
