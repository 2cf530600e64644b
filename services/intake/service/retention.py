"""An organisation's retention policy (days per category), for its owners: read and change it
(from the API and the web page alike). Every change is audited with old and new values."""

from __future__ import annotations

from typing import Any

from services.intake import retention
from services.intake.domain import Caller
from services.intake.service.errors import Invalid
from services.intake.service.orgs import own_org
from services.intake.service.uow import UnitOfWork
from shared.datamap import DataMap


def validate(body: Any, known: dict[str, int]) -> dict[str, int]:
    """The changes, or Invalid listing every problem by category."""
    if not isinstance(body, dict) or not body:
        raise Invalid('body: an object of category -> days, e.g. {"messages": 30}')
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
        raise Invalid("; ".join(errors), errors)
    return {str(k): int(v) for k, v in body.items()}


async def policy(uow: UnitOfWork, dm: DataMap, who: Caller, org: str) -> dict[str, int]:
    own_org(who, org, "retention policy")
    return await retention.get_policy(uow.pool, dm, org)


async def set_policy(
    uow: UnitOfWork, dm: DataMap, who: Caller, org: str, body: Any
) -> dict[str, int]:
    """Apply the changes; categories not named keep their value. Returns the new policy."""
    own_org(who, org, "retention policy")
    changes = validate(body, retention.categories(dm))
    async with uow:  # the policy and its audit event commit together
        _, new = await retention.set_policy(uow, dm, org, changes, who.actor)
    return new
