"""Sign-in, the jobs list, live progress (server-sent events) and the submit form."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.intake import domain, store
from services.intake.http.deps import audit_refusal, runtime, uow
from services.intake.http.views import decode_cursor, encode_cursor, job_view
from services.intake.service import requests
from services.intake.service.errors import DuplicateRequest, Forbidden, RateLimited, ServiceError
from services.intake.web.common import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    PREFIX,
    Session,
    WebError,
    checked_form,
    form,
    render,
    sentence,
    session,
)
from services.intake.web.forms import submit_from_form
from services.intake.web.progress import not_final, progress_events, sse
from shared import lifecycle
from shared.compare import same_secret

router = APIRouter(prefix=PREFIX, include_in_schema=False)
SESSION_HOURS = 8
WebSession = Annotated[Session, Depends(session)]


def _cookie_args(request: Request) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": "/",
    }


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home() -> Response:
    return RedirectResponse(f"{PREFIX}/jobs", 303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, error: str | None = None) -> Response:
    csrf = secrets.token_urlsafe(24)
    resp = render(request, "login.html", None, 401 if error else 200, csrf=csrf, error=error)
    resp.set_cookie(LOGIN_CSRF_COOKIE, csrf, max_age=3600, **_cookie_args(request))
    return resp


@router.post("/login")
async def login(request: Request) -> Response:
    data = await form(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not same_secret(data.get("csrf", ""), expected):
        return await login_page(request, "The sign-in form expired. Please try again.")
    key = data.get("api_key", "").strip()
    rt = runtime(request)
    who = await store.caller_for_key(rt.pool, key) if key else None
    if who is None:
        await audit_refusal(request, "web sign-in with an unknown or revoked API key")
        return await login_page(request, "That API key is unknown or was revoked.")
    token, _ = await store.open_session(rt.pool, who.key_id, timedelta(hours=SESSION_HOURS))
    resp = RedirectResponse(f"{PREFIX}/jobs", 303)
    resp.set_cookie(COOKIE, token, max_age=SESSION_HOURS * 3600, **_cookie_args(request))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return resp


@router.post("/logout")
async def logout(request: Request, s: WebSession) -> Response:
    await checked_form(request, s, "viewer")
    await store.close_session(runtime(request).pool, s.token)
    resp = RedirectResponse(f"{PREFIX}/login", 303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(
    request: Request,
    s: WebSession,
    status: str = "",
    type: str = "",
    overdue: bool = False,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 25,
) -> Response:
    if status and status not in lifecycle.STATES:
        raise WebError(400, f"There is no job status '{status}'.")
    if type and type not in ("erasure", "export", "retention"):
        raise WebError(400, "A job is an erasure, an export or a retention run.")
    try:
        after = decode_cursor(cursor) if cursor else None
    except Exception as exc:
        raise WebError(400, "That page link is not valid; start from the first page.") from exc
    now = datetime.now(UTC)
    rows = await store.list_jobs(
        runtime(request).pool,
        s.who.org_id,
        status=status or None,
        job_type=type or None,
        overdue_at=now if overdue else None,
        due_before=None,
        after=after,
        limit=limit,
    )
    jobs = [job_view(r, now) for r in rows]
    return render(
        request,
        "jobs.html",
        s,
        jobs=jobs,
        states=lifecycle.STATES,
        active=[j["id"] for j in jobs if not_final(j["status"])],
        filters={"status": status, "type": type, "overdue": overdue},
        next_cursor=encode_cursor(rows[-1]) if len(rows) == limit else None,
    )


@router.get("/stream")
async def stream(
    request: Request, s: WebSession, job: Annotated[list[uuid.UUID], Query(max_length=200)]
) -> Response:
    return sse(request, progress_events(request, job, s.who.org_id), "key", str(s.who.key_id))


@router.get("/submit", response_class=HTMLResponse)
async def submit_page(request: Request, s: WebSession) -> Response:
    refusal = domain.submit_refusal(s.who)
    if refusal:
        raise WebError(403, refusal[:1].upper() + refusal[1:] + ".")
    return _submit_form(request, s, {}, {})


def _submit_form(
    request: Request, s: Session, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> Response:
    defaults = {
        "type": "erasure",
        "scope": "subject",
        "regulation": "gdpr",
        "format": "both",
        "link_ttl_hours": "24",
        "recovery_window_days": str(s.who.recovery_window_days),
        "request_id": f"web-{uuid.uuid4()}",
    }
    return render(request, "submit.html", s, status, v=defaults | values, errors=errors)


@router.post("/submit")
async def submit(request: Request, s: WebSession) -> Response:
    data = await checked_form(request, s, "admin")
    req, errors = submit_from_form(data, s.who.org_name)
    if req is None:
        return _submit_form(request, s, data, errors, 422)
    rt = runtime(request)
    try:
        requests.take_turn(rt.limiter, s.who)
        done = await requests.submit(
            uow(request), req, s.who, rt.submit_policy(), channel="http", source="web"
        )
    except ServiceError as exc:
        return await _submit_refused(request, s, data, exc)
    # A request linked to the subject's open job says so on that job's page.
    said = "duplicate" if done.duplicate_of else "submitted"
    return RedirectResponse(f"{PREFIX}/jobs/{done.job['id']}?done={said}", 303)


async def _submit_refused(
    request: Request, s: Session, data: dict[str, str], exc: ServiceError
) -> Response:
    """The form again, with the refusal next to its field (a forbidden one audited)."""
    if isinstance(exc, RateLimited):
        message = "Too many submissions just now; wait a minute and retry."
        return _submit_form(request, s, data, {"_": message}, 429)
    if isinstance(exc, DuplicateRequest):
        message = "This form was already used for another request; reload."
        return _submit_form(request, s, data, {"_": message}, 409)
    if isinstance(exc, Forbidden):
        await audit_refusal(request, exc.audit_reason, s.who)
    field = "confirm_org_name" if "confirm_org_name" in exc.message else "_"
    message = (
        f"Type the organisation's name exactly as it is: {s.who.org_name}"
        if field == "confirm_org_name"
        else sentence(exc.message)
    )
    return _submit_form(request, s, data, {field: message}, exc.status)
