"""Sign-in, the jobs list, live progress (server-sent events) and the submit form."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from services.intake import domain, store
from services.intake.api import decode_cursor, encode_cursor, job_view
from services.intake.auth import audit_refusal, runtime
from services.intake.web import store as web_store
from services.intake.web.common import (
    COOKIE,
    HERE,
    LOGIN_CSRF_COOKIE,
    PREFIX,
    Session,
    SignInRequired,
    WebError,
    checked_form,
    form,
    render,
    session,
)
from services.intake.web.forms import submit_from_form
from shared import lifecycle
from shared.kafka import current_trace

router = APIRouter(prefix=PREFIX, include_in_schema=False)
SESSION_HOURS = 8
STREAM_SECONDS = 600  # an SSE stream ends after this; the browser reconnects by itself
WebSession = Annotated[Session, Depends(session)]


def install(app: FastAPI) -> None:
    """Routers, static files and the two page-level answers (sign in; refusal page)."""
    from services.intake.web import routes_admin, routes_job, routes_retention_page

    app.include_router(router)
    app.include_router(routes_job.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_admin.public)
    app.include_router(routes_retention_page.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="web-static")

    @app.exception_handler(SignInRequired)
    async def to_sign_in(request: Request, _: SignInRequired) -> Response:
        if request.url.path.endswith("/stream"):
            return Response("sign in again", 401)
        return RedirectResponse(f"{PREFIX}/login", 303)

    @app.exception_handler(WebError)
    async def refusal_page(request: Request, exc: WebError) -> Response:
        token = request.cookies.get(COOKIE)
        found = await web_store.session_caller(runtime(request).pool, token) if token else None
        s = Session(found[0], found[1], token or "") if found else None
        return render(request, "error.html", s, exc.status, message=exc.message)


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
    if not expected or not secrets.compare_digest(data.get("csrf", ""), expected):
        return await login_page(request, "The sign-in form expired. Please try again.")
    key = data.get("api_key", "").strip()
    rt = runtime(request)
    who = await store.caller_for_key(rt.pool, key) if key else None
    if who is None:
        await audit_refusal(request, "web sign-in with an unknown or revoked API key")
        return await login_page(request, "That API key is unknown or was revoked.")
    token, _ = await web_store.open_session(rt.pool, who.key_id, timedelta(hours=SESSION_HOURS))
    resp = RedirectResponse(f"{PREFIX}/jobs", 303)
    resp.set_cookie(COOKIE, token, max_age=SESSION_HOURS * 3600, **_cookie_args(request))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return resp


@router.post("/logout")
async def logout(request: Request, s: WebSession) -> Response:
    await checked_form(request, s, "viewer")
    await web_store.close_session(runtime(request).pool, s.token)
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


def not_final(status: str) -> bool:
    return status in (*lifecycle.ACTIVE, "purging")


def progress_view(row: dict[str, Any]) -> dict[str, Any]:
    total, done = row["total"], row["done"]
    if total:
        percent = round(100 * done / total, 1)
    else:
        percent = 0.0 if not_final(row["status"]) else 100.0
    if row["status"] in ("cancelled", "failed", "restored") and total:
        percent = round(100 * done / total, 1)
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "phase": row["phase"],
        "done": done,
        "total": total,
        "percent": percent,
        "rows_per_second": row["rows_per_second"],
        "eta_seconds": row["eta_seconds"],
        "final": not not_final(row["status"]),
    }


async def progress_events(
    request: Request, job_ids: list[uuid.UUID], org_id: str | None
) -> AsyncIterator[str]:
    """One SSE message per job whose progress changed; the stream ends when all are done.
    The job rows are what intake folds from the progress topic, so this is that topic's view."""
    pool = runtime(request).pool
    last: dict[str, dict[str, Any]] = {}
    deadline = asyncio.get_running_loop().time() + STREAM_SECONDS
    yield "retry: 2000\n\n"
    while asyncio.get_running_loop().time() < deadline:
        views = [progress_view(r) for r in await web_store.progress(pool, job_ids, org_id)]
        for v in views:
            if last.get(v["id"]) != v:
                last[v["id"]] = v
                yield f"event: progress\ndata: {json.dumps(v)}\n\n"
        if not views or all(v["final"] for v in views):
            yield "event: end\ndata: {}\n\n"
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.4)


def sse(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/stream")
async def stream(
    request: Request, s: WebSession, job: Annotated[list[uuid.UUID], Query(max_length=200)]
) -> StreamingResponse:
    return sse(progress_events(request, job, s.who.org_id))


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
    rt = runtime(request)
    if req is None:
        return _submit_form(request, s, data, errors, 422)
    if rt.limiter.take(str(s.who.key_id)):
        return _submit_form(
            request, s, data, {"_": "Too many submissions just now; wait a minute and retry."}, 429
        )
    try:
        job = domain.plan_job(
            req,
            s.who,
            received_at=datetime.now(UTC),
            hash_key=rt.settings.subject_hash_key.get_secret_value().encode(),
            holidays=tuple(rt.settings.business_holidays),
            links=rt.settings.status_links(),
            channel="http",
            trace=current_trace(),
        )
    except domain.Refused as exc:
        if exc.status == 403:
            await audit_refusal(request, exc.reason, s.who)
        field = "confirm_org_name" if "confirm_org_name" in exc.reason else "_"
        message = (
            f"Type the organisation's name exactly as it is: {s.who.org_name}"
            if field == "confirm_org_name"
            else exc.reason[:1].upper() + exc.reason[1:] + "."
        )
        return _submit_form(request, s, data, {field: message}, exc.status)
    row, created = await store.insert_job(rt.pool, job)
    if not created and row["request_fingerprint"] != job.fingerprint:
        return _submit_form(
            request, s, data, {"_": "This form was already used for another request; reload."}, 409
        )
    if created:
        rt.relay.wake()
    return RedirectResponse(f"{PREFIX}/jobs/{row['id']}?done=submitted", 303)
