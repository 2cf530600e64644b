"""Intake's HTTP API (FastAPI). Thin: authenticate, validate, call the domain, answer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from opentelemetry import propagate

from services.intake import domain, store
from services.intake.auth import caller, runtime
from services.intake.domain import Caller, Refused, RequestIn
from services.intake.routes_audit import router as audit_router


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
        "result": row["result"],
        "purge_after": row["purge_after"].isoformat() if row["purge_after"] else None,
        "needs_review": row["needs_review"],
        "error": row["error"],
        "subject_hash": row["subject_hash"],
    }


def add_routes(app: FastAPI) -> None:
    app.include_router(audit_router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/requests", status_code=202)
    async def submit(
        body: RequestIn, request: Request, who: Annotated[Caller, Depends(caller)]
    ) -> JSONResponse:
        rt = runtime(request)
        with rt.tracer.start_as_current_span("intake submit request"):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            try:
                job = domain.plan_job(
                    body,
                    who,
                    received_at=datetime.now(UTC),
                    hash_key=rt.settings.subject_hash_key.get_secret_value().encode(),
                    gdpr_days=rt.settings.gdpr_due_days,
                    ccpa_days=rt.settings.ccpa_due_days,
                    channel="http",
                    trace=carrier,
                )
            except Refused as exc:
                raise HTTPException(exc.status, exc.reason) from exc
            row, created = await store.insert_job(rt.pool, job)
        if created:
            rt.relay.wake()
        view = job_view(row, datetime.now(UTC))
        return JSONResponse(view, status_code=202 if created else 200)

    @app.get("/v1/jobs/{job_id}")
    async def get_job(
        job_id: uuid.UUID, request: Request, who: Annotated[Caller, Depends(caller)]
    ) -> dict[str, Any]:
        row = await store.get_job(runtime(request).pool, who.org_id, job_id)
        if row is None:
            raise HTTPException(404, f"no job {job_id} in organisation {who.org_id}")
        return job_view(row, datetime.now(UTC))
