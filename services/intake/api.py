"""Intake's HTTP API (FastAPI). Thin: authenticate, validate, call the domain, answer."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.intake import deadlines, domain, extension, opendsr, store
from services.intake.auth import audit_refusal, runtime
from services.intake.domain import Caller, Refused, RequestIn
from services.intake.routes_audit import router as audit_router
from services.intake.routes_common import Admin, Owner, Viewer
from services.intake.routes_exports import router as exports_router
from services.intake.routes_opendsr import router as opendsr_router
from services.intake.routes_orgs import router as orgs_router
from services.intake.routes_retention import router as retention_router
from shared import lifecycle
from shared.events import make_event
from shared.events.jobs import Item, RestoreErasure
from shared.kafka import current_trace


def public_result(result: Any) -> Any:
    """A job's result as the API shows it: without the controller's bearer export link (only
    the OpenDSR status answers the controller with it)."""
    if isinstance(result, dict) and "results_url" in result:
        return {k: v for k, v in result.items() if k != "results_url"}
    return result


def job_view(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    total, done = row["total"], row["done"]
    due = row["extended_due_at"] or row["due_at"]
    return {
        "id": str(row["id"]),
        "org_id": row["org_id"],
        "type": row["type"],
        "scope": row["scope"],
        "status": row["status"],
        "phase": row["phase"],
        "request_id": row["request_id"],
        "regulation": row["regulation"],
        "received_at": row["received_at"].isoformat(),
        "due_at": row["due_at"].isoformat(),
        "extended_due_at": row["extended_due_at"].isoformat() if row["extended_due_at"] else None,
        "days_left": (due - now).days,
        "done": done,
        "total": total,
        "percent": round(100 * done / total, 1)
        if total
        else (100.0 if row["status"] == "completed" else 0.0),
        "rows_per_second": row["rows_per_second"],
        "eta_seconds": row["eta_seconds"],
        "result": public_result(row["result"]),
        "outcome": lifecycle.OUTCOME_WORDS.get(row["status"]),
        "purge_after": row["purge_after"].isoformat() if row["purge_after"] else None,
        "needs_review": row["needs_review"],
        "error": row["error"],
        "subject_hash": row["subject_hash"],
        "overdue": row["status"] not in lifecycle.DONE_FOR_DEADLINE and due < now,
        "reason": row["reason"],
        "extension_reason": row["extension_reason"],
        "extension_notified_at": _iso(row.get("extension_notified_at")),
        "receipt_confirmation": (
            {
                "due_by": _iso(row["receipt_due_at"]),
                "sent_at": _iso(row.get("receipt_confirmed_at")),
            }
            if row.get("receipt_due_at")
            else None
        ),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=2000)


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: str = Field(min_length=1, max_length=63)
    key: str = Field(min_length=1, max_length=200)


class RestoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[ItemIn] | None = Field(None, min_length=1, max_length=10_000)
    reason: str | None = Field(None, max_length=2000)


class ExtendIn(BaseModel):
    """Days, or (GDPR) calendar months; the legal limits are checked by `deadlines`, which
    names the rule. The reason is sent to the requester."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    days: int | None = Field(None, ge=1, le=400)
    months: int | None = Field(None, ge=1, le=12)
    reason: str | None = Field(None, max_length=2000)


def encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["received_at"].isoformat(), str(row["id"])]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), uuid.UUID(job_id)
    except (ValueError, TypeError) as exc:
        raise HTTPException(400, "cursor: not a cursor this API returned") from exc


async def _job_or_404(request: Request, who: Caller, job_id: uuid.UUID) -> dict[str, Any]:
    # 404 (not 403) for another org's job: existence is not leaked.
    row = await store.get_job(runtime(request).pool, who.org_id, job_id)
    if row is None:
        raise HTTPException(404, f"no job {job_id} in organisation {who.org_id}")
    return row


def _refuse(request: Request, status: int, message: str) -> JSONResponse:
    """Body refusals in the caller's dialect: OpenDSR errors are 400 with its error object."""
    if request.url.path.startswith("/opendsr"):
        return JSONResponse(opendsr.error_body(400, message, [message], "invalid_body"), 400)
    return JSONResponse({"detail": message}, status)


def add_routes(app: FastAPI) -> None:
    app.include_router(audit_router)
    app.include_router(exports_router)
    app.include_router(opendsr_router)
    app.include_router(orgs_router)
    app.include_router(retention_router)
    from services.intake.web.routes import install as install_web  # (it imports job_view)

    install_web(app)

    @app.middleware("http")
    async def body_rules(request: Request, call_next: Any) -> Any:
        """Refuse oversize bodies and non-JSON bodies before anything reads them."""
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            limit = runtime(request).settings.max_body_bytes
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > limit:
                return _refuse(request, 413, f"body larger than {limit} bytes")
            ctype = request.headers.get("content-type", "")
            web_form = request.url.path.startswith("/ui/") and ctype.startswith(
                "application/x-www-form-urlencoded"
            )  # the web UI's forms, CSRF-checked there
            json_body = ctype.startswith("application/json") or web_form
            if length not in (None, "0") and not json_body:
                return _refuse(
                    request, 415, f"content-type must be application/json, not {ctype or 'none'}"
                )
        return await call_next(request)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/requests", status_code=202)
    async def submit(body: RequestIn, request: Request, who: Admin) -> JSONResponse:
        rt = runtime(request)
        wait = rt.limiter.take(str(who.key_id))
        if wait:
            raise HTTPException(
                429,
                "too many submissions for this API key; retry later",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        with rt.tracer.start_as_current_span("intake submit request"):
            try:
                job = domain.plan_job(
                    body,
                    who,
                    received_at=datetime.now(UTC),
                    hash_key=rt.settings.subject_hash_key.get_secret_value().encode(),
                    holidays=tuple(rt.settings.business_holidays),
                    links=rt.settings.status_links(),
                    channel="http",
                    trace=current_trace(),
                )
            except Refused as exc:
                if exc.status == 403:
                    await audit_refusal(request, exc.reason, who)
                raise HTTPException(exc.status, exc.reason) from exc
            row, created = await store.insert_job(rt.pool, job)
        if not created and row["request_fingerprint"] != job.fingerprint:
            raise HTTPException(
                409,
                f"request_id {body.request_id!r} was already used for a different request "
                f"(job {row['id']})",
            )
        if created:
            rt.relay.wake()
        return JSONResponse(job_view(row, datetime.now(UTC)), status_code=202 if created else 200)

    @app.get("/v1/jobs")
    async def list_jobs(
        request: Request,
        who: Viewer,
        status: Annotated[str | None, Query(pattern="^[a-z_]+$")] = None,
        type: Annotated[Literal["erasure", "export", "retention"] | None, Query()] = None,
        org: str | None = None,
        overdue: bool = False,
        due_before: datetime | None = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        if status is not None and status not in lifecycle.STATES:
            raise HTTPException(422, f"status: one of {', '.join(lifecycle.STATES)}")
        if org is not None and org != who.org_id:
            raise HTTPException(404, f"no organisation {org} for this key")
        now = datetime.now(UTC)
        rows = await store.list_jobs(
            runtime(request).pool,
            who.org_id,
            status=status,
            job_type=type,
            overdue_at=now if overdue else None,
            due_before=due_before,
            after=decode_cursor(cursor) if cursor else None,
            limit=limit,
        )
        return {
            "jobs": [job_view(r, now) for r in rows],
            "next_cursor": encode_cursor(rows[-1]) if len(rows) == limit else None,
        }

    @app.get("/v1/jobs/{job_id}")
    async def get_job(job_id: uuid.UUID, request: Request, who: Viewer) -> dict[str, Any]:
        return job_view(await _job_or_404(request, who, job_id), datetime.now(UTC))

    @app.get("/v1/jobs/{job_id}/events")
    async def events(job_id: uuid.UUID, request: Request, who: Viewer) -> dict[str, Any]:
        await _job_or_404(request, who, job_id)
        rows = await store.job_events(runtime(request).pool, job_id)
        return {
            "events": [
                {
                    "event_id": str(r["event_id"]),
                    "type": r["type"],
                    "occurred_at": r["occurred_at"].isoformat(),
                    "actor": r["actor"],
                    "details": r["details"],
                }
                for r in rows
            ]
        }

    async def _command(
        request: Request,
        who: Caller,
        job_id: uuid.UUID,
        command: str,
        payload: Any,
        row: dict[str, Any] | None = None,
    ) -> JSONResponse:
        row = row or await _job_or_404(request, who, job_id)
        try:
            lifecycle.check_command(command, row["status"], row["type"])
        except lifecycle.IllegalTransition as exc:
            raise HTTPException(409, str(exc)) from exc
        env = make_event(
            payload,
            actor=who.actor,
            job_id=job_id,
            org_id=who.org_id,
            subject_hash=row["subject_hash"],
        )
        rt = runtime(request)
        topic = domain.command_topic(row["type"])
        refused = await store.record_command(
            rt.pool, job_id, topic, env, lifecycle.COMMANDS[command]
        )
        if refused is not None:  # the job moved on meanwhile
            raise HTTPException(409, str(lifecycle.IllegalTransition(command, refused)))
        rt.relay.wake()
        return JSONResponse(
            {"job_id": str(job_id), "accepted": command, "status": row["status"]}, 202
        )

    @app.post("/v1/jobs/{job_id}/cancel", status_code=202)
    async def cancel(
        job_id: uuid.UUID, request: Request, who: Admin, body: CancelIn | None = None
    ) -> JSONResponse:
        """Stop a running job between batches. An export stops with its partial file deleted;
        one already ready or expired is refused (409) with the reason."""
        reason = body.reason if body else None
        row = await _job_or_404(request, who, job_id)
        payload, _ = domain.cancel_command(row["type"], reason)
        return await _command(request, who, job_id, "cancel", payload, row)

    @app.post("/v1/jobs/{job_id}/restore", status_code=202)
    async def restore(
        job_id: uuid.UUID, request: Request, who: Owner, body: RestoreIn | None = None
    ) -> JSONResponse:
        items = (
            [Item(table=i.table, key=i.key) for i in body.items] if body and body.items else None
        )
        payload = RestoreErasure(items=items, reason=body.reason if body else None)
        return await _command(request, who, job_id, "restore", payload)

    @app.post("/v1/jobs/{job_id}/extend")
    async def extend(
        job_id: uuid.UUID, body: ExtendIn, request: Request, who: Admin
    ) -> dict[str, Any]:
        row = await _job_or_404(request, who, job_id)
        rt = runtime(request)
        ask = deadlines.Extension(days=body.days, months=body.months, reason=body.reason)
        try:
            await extension.extend(
                rt.pool, who, row, ask, datetime.now(UTC), rt.settings.status_links()
            )
        except lifecycle.IllegalTransition as exc:
            raise HTTPException(409, str(exc)) from exc
        except deadlines.DeadlineRuleBroken as exc:
            raise HTTPException(exc.status, str(exc)) from exc
        rt.relay.wake()
        updated = await _job_or_404(request, who, job_id)
        return job_view(updated, datetime.now(UTC))
