"""Approvals: the jobs awaiting approval with their deadlines, an admin's approve and deny
buttons (on this list and on the job's page), and the owners' setting of which channels ask
for approval. The same use cases as the API (`service.approvals`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.intake.domain.approvals import CHANNELS
from services.intake.http.deps import runtime, uow
from services.intake.http.views import job_view
from services.intake.service import approvals
from services.intake.service.errors import ServiceError
from services.intake.web.common import (
    PREFIX,
    Session,
    WebError,
    all_values,
    checked_form,
    render,
    sentence,
    session,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)
WebSession = Annotated[Session, Depends(session)]
CHANNEL_WORDS = {
    "api": "REST API",
    "web": "Web UI",
    "kafka": "Upstream services (Kafka)",
    "opendsr": "OpenDSR",
    "privacy_centre": "Privacy centre",
    "bulk": "Bulk requests",
}


@router.get("/approvals", response_class=HTMLResponse)
async def approvals_page(request: Request, s: WebSession, saved: bool = False) -> Response:
    now = datetime.now(UTC)
    rows = await approvals.awaiting(uow(request), s.who)
    on = await approvals.channels(uow(request), s.who, s.who.org_id)
    return render(
        request,
        "approvals.html",
        s,
        jobs=[job_view(r, now) for r in rows],
        channels=[(c, CHANNEL_WORDS[c], c in on) for c in CHANNELS],
        saved=saved,
    )


@router.post("/approvals/settings")
async def save_settings(request: Request, s: WebSession) -> Response:
    await checked_form(request, s, "owner")
    chosen = all_values(await request.body(), "channel")
    try:
        await approvals.set_channels(uow(request), s.who, s.who.org_id, chosen)
    except ServiceError as exc:
        raise WebError(exc.status, sentence(exc.message)) from exc
    return RedirectResponse(f"{PREFIX}/approvals?saved=true", 303)


async def _decide(request: Request, s: Session, job_id: uuid.UUID, approve: bool) -> Response:
    data = await checked_form(request, s, "admin")
    reason = data.get("reason", "").strip()[:2000] or None
    links = runtime(request).settings.status_links()
    try:
        await approvals.decide(
            uow(request), s.who, job_id, approve=approve, reason=reason, links=links
        )
    except ServiceError as exc:
        raise WebError(exc.status, sentence(exc.message)) from exc
    done = "approved" if approve else "denied"
    return RedirectResponse(f"{PREFIX}/jobs/{job_id}?done={done}", 303)


@router.post("/jobs/{job_id}/approve")
async def approve(request: Request, job_id: uuid.UUID, s: WebSession) -> Response:
    return await _decide(request, s, job_id, True)


@router.post("/jobs/{job_id}/deny")
async def deny(request: Request, job_id: uuid.UUID, s: WebSession) -> Response:
    return await _decide(request, s, job_id, False)
