"""`GET/PUT /v1/orgs/{org}/retention`: an organisation's retention policy, for its owners.

The body of PUT maps categories to days, e.g. `{"messages": 30, "logs": 14}`; categories not
named keep their value. Each value is a whole number of days, 1..3650; anything else is a
422 naming the category and the range. Every change is audited with old and new values.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request

from services.intake import retention
from services.intake.auth import audit_refusal, role, runtime
from services.intake.domain import Caller
from shared.datamap import DataMap

router = APIRouter()
Owner = Annotated[Caller, Depends(role("owner"))]


def datamap(request: Request) -> DataMap:
    """The data map intake checked against the live database at start."""
    return runtime(request).datamap


async def _own_org(request: Request, who: Caller, org: str) -> None:
    if org != who.org_id:
        await audit_refusal(request, "retention policy of another organisation", who)
        raise HTTPException(403, f"your key belongs to organisation {who.org_id}, not {org}")


def _view(org: str, policy: dict[str, int], dm: DataMap) -> dict[str, Any]:
    return {
        "org_id": org,
        "policy": policy,
        "defaults": retention.categories(dm),
        "range": [retention.MIN_DAYS, retention.MAX_DAYS],
    }


def validate(body: Any, known: dict[str, int]) -> dict[str, int]:
    """The changes, or a 422 listing every problem by category."""
    if not isinstance(body, dict) or not body:
        raise HTTPException(422, 'body: an object of category -> days, e.g. {"messages": 30}')
    errors = []
    lo, hi = retention.MIN_DAYS, retention.MAX_DAYS
    for cat, days in body.items():
        if cat not in known:
            errors.append(f"{cat}: unknown category (one of {', '.join(known)})")
        elif isinstance(days, bool) or not isinstance(days, int):
            errors.append(f"{cat}: must be a whole number of days between {lo} and {hi}")
        elif not lo <= days <= hi:
            errors.append(f"{cat}: {days} is outside the range {lo}..{hi} days")
    if errors:
        raise HTTPException(422, "; ".join(errors))
    return {str(k): int(v) for k, v in body.items()}


@router.get("/v1/orgs/{org}/retention")
async def get_retention(org: str, request: Request, who: Owner) -> dict[str, Any]:
    await _own_org(request, who, org)
    dm = datamap(request)
    return _view(org, await retention.get_policy(runtime(request).pool, dm, org), dm)


@router.put("/v1/orgs/{org}/retention")
async def put_retention(
    org: str, request: Request, who: Owner, body: Annotated[Any, Body()] = None
) -> dict[str, Any]:
    await _own_org(request, who, org)
    dm = datamap(request)
    changes = validate(body, retention.categories(dm))
    rt = runtime(request)
    _, new = await retention.set_policy(rt.pool, dm, org, changes, who.actor)
    rt.relay.wake()
    return _view(org, new, dm)
