"""The compliance report, for an organisation's owners: the one use case behind
`GET /v1/reports/compliance` (JSON, CSV) and the web UI's report page and exports."""

from __future__ import annotations

from datetime import datetime

from services.intake import store
from services.intake.domain import Caller, Refused
from services.intake.domain import reports as domain
from services.intake.service.errors import Forbidden, Invalid
from services.intake.store.db import Db

OWNERS_ONLY = "the compliance report is for the organisation's owners (owner role)"


async def compliance_report(
    db: Db, who: Caller, first: str | None, last: str | None, now: datetime
) -> domain.ComplianceReport:
    """Months `first`..`last` (YYYY-MM, both included) of the caller's own organisation.
    Forbidden (403) below owner; Invalid (422) naming the rule a bad range breaks."""
    if who.role != "owner":
        raise Forbidden(
            f"{OWNERS_ONLY}; your key's role is {who.role}",
            audit_reason=f"role {who.role} below owner: compliance report",
        )
    try:
        rng = domain.month_range(first, last, now.date())
    except Refused as exc:
        raise Invalid(exc.reason) from exc
    rows = await store.compliance_figures(
        db,
        who.org_id,
        rng.start,
        rng.end,
        now,
        closed_states=domain.CLOSED,
        closing_events=domain.CLOSING_EVENTS,
    )
    return domain.compile_report(who.org_id, rng, rows, now)
