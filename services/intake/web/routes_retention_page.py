"""Retention: the org's policy per category with its allowed range (the same checks and audit
as `PUT /v1/orgs/{org}/retention`), the schedule's last and next run, what each run removed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.intake import retention, store
from services.intake.http.deps import runtime, uow
from services.intake.service import retention as policies
from services.intake.service.errors import Invalid
from services.intake.web.common import PREFIX, Session, checked_form, render, require, session

router = APIRouter(prefix=PREFIX, include_in_schema=False)
WebSession = Annotated[Session, Depends(session)]


def next_run(expr: str, now: datetime) -> datetime | None:
    """The first scheduled time after `now` (within about a year); None for a bad schedule."""
    try:
        return retention.Cron.parse(expr).next(now)
    except retention.CronError:
        return None


async def _page(
    request: Request,
    s: Session,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    saved: bool = False,
    status: int = 200,
) -> Response:
    rt = runtime(request)
    dm = rt.datamap
    policy = await retention.get_policy(rt.pool, dm, s.who.org_id)
    runs = await store.recent_runs(rt.pool, s.who.org_id)
    schedule = rt.settings.retention_schedule
    return render(
        request,
        "retention.html",
        s,
        status,
        policy=policy,
        defaults=retention.categories(dm),
        values=values or {k: str(v) for k, v in policy.items()},
        errors=errors or {},
        lo=retention.MIN_DAYS,
        hi=retention.MAX_DAYS,
        runs=runs,
        schedule=schedule,
        last_run=runs[0] if runs else None,
        next_run=next_run(schedule, datetime.now(UTC)),
        saved=saved,
    )


@router.get("/retention", response_class=HTMLResponse)
async def retention_page(request: Request, s: WebSession, saved: bool = False) -> Response:
    await require(request, s, "owner")
    return await _page(request, s, saved=saved)


@router.post("/retention", response_class=HTMLResponse)
async def save_retention(request: Request, s: WebSession) -> Response:
    data = await checked_form(request, s, "owner")
    dm = runtime(request).datamap
    known = retention.categories(dm)
    values = {c: data.get(f"days_{c}", "").strip() for c in known}
    lo, hi = retention.MIN_DAYS, retention.MAX_DAYS
    errors: dict[str, str] = {}
    changes: dict[str, int] = {}
    for cat, text in values.items():
        try:
            changes[cat] = int(text)
        except ValueError:
            errors[cat] = f"Give a whole number of days from {lo} to {hi}."
    if not errors:
        try:
            await policies.set_policy(uow(request), dm, s.who, s.who.org_id, changes)
        except Invalid as exc:
            for part in exc.errors:
                cat, _, why = part.partition(": ")
                errors[cat if cat in known else "_"] = (
                    f"Keep {cat} from {lo} to {hi} days." if cat in known else why
                )
    if errors:
        return await _page(request, s, values, errors, status=422)
    return RedirectResponse(f"{PREFIX}/retention?saved=true", 303)
