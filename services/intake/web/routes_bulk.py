"""The bulk request page: a CSV of subjects (a file read by the browser into the form, or
pasted), sent as one bulk request through the same use case as `POST /v1/bulk-requests`;
then the bulk job's counts and its subjects."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.intake.domain import bulk as rules
from services.intake.http.bulk import bulk_view
from services.intake.http.deps import audit_refusal, runtime, uow
from services.intake.service import bulk, requests
from services.intake.service.errors import Forbidden, ServiceError
from services.intake.store import bulk as bulk_store
from services.intake.web.common import PREFIX, WebError, checked_form, render, sentence
from services.intake.web.forms import field_messages
from services.intake.web.routes import WebSession

router = APIRouter(prefix=PREFIX, include_in_schema=False)
FIELDS = ("type", "regulation", "due_in_days", "recovery_window_days", "notify_email", "reason")


def _page(
    request: Request, s: Any, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> Response:
    defaults = {
        "type": "erasure",
        "regulation": "gdpr",
        "recovery_window_days": str(s.who.recovery_window_days),
        "request_id": f"web-bulk-{uuid.uuid4()}",
    }
    v = defaults | {k: values[k] for k in values if k != "csv"}
    limit = f"{rules.MAX_SUBJECTS:,}"
    return render(request, "bulk.html", s, status, v=v, errors=errors, limit=limit)


@router.get("/bulk", response_class=HTMLResponse)
async def bulk_page(request: Request, s: WebSession) -> Response:
    if not s.may_submit():
        raise WebError(403, "Your role cannot submit requests in this organisation.")
    return _page(request, s, {}, {})


def _body(data: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {k: data[k].strip() for k in FIELDS if data.get(k, "").strip()}
    for name in ("due_in_days", "recovery_window_days"):
        if name in body and body[name].isdigit():
            body[name] = int(body[name])
    body["request_id"] = data.get("request_id") or None
    body["subjects"] = rules.parse_csv(data.get("csv", ""))
    return body


@router.post("/bulk")
async def submit_bulk(request: Request, s: WebSession) -> Response:
    data = await checked_form(request, s, "admin")
    try:
        body = rules.BulkRequestIn.model_validate(_body(data))
    except rules.CsvRefused as exc:
        return _page(request, s, data, {"csv": sentence(str(exc))}, 413 if exc.too_many else 422)
    except ValidationError as exc:
        return _page(request, s, data, field_messages(exc), 422)
    rt = runtime(request)
    try:
        requests.take_turn(rt.limiter, s.who)
        done = await bulk.submit_bulk(uow(request), body, s.who, rt.submit_policy(), channel="http")
    except ServiceError as exc:
        if isinstance(exc, Forbidden):
            await audit_refusal(request, exc.audit_reason, s.who)
        return _page(request, s, data, {"_": sentence(exc.message)}, exc.status)
    return RedirectResponse(f"{PREFIX}/bulk/{done.bulk['id']}", 303)


@router.get("/bulk/{bulk_id}", response_class=HTMLResponse)
async def bulk_job_page(request: Request, s: WebSession, bulk_id: uuid.UUID) -> Response:
    pool = runtime(request).pool
    row = await bulk_store.get_bulk(pool, s.who.org_id, bulk_id)
    if row is None:
        raise WebError(404, "There is no such bulk request in your organisation.")
    view = bulk_view(row, await bulk.summary(uow(request), row))
    subjects = await bulk_store.subjects_page(pool, bulk_id, 0, 200)
    return render(request, "bulk_job.html", s, b=view, subjects=subjects)
