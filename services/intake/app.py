"""Intake service: HTTP API, progress consumer and outbox relay in one process.

`create_app` is the Kafka side (a FastStream app, as in every service); `create_http` wraps
it in the FastAPI app whose lifespan starts and stops it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from faststream import FastStream
from opentelemetry.trace import TracerProvider

from services.intake import store
from services.intake.api import add_routes
from services.intake.handlers import build_router
from services.intake.runtime import Runtime
from services.intake.settings import IntakeSettings
from shared.datamap import DataMap
from shared.health import attach, bucket_checks, postgres_check
from shared.metrics import CONTENT_TYPE
from shared.telemetry import tracer_provider as make_tracer_provider


def build(
    settings: IntakeSettings,
    tracer_provider: TracerProvider | None = None,
    datamap: DataMap | None = None,
) -> tuple[FastStream, Runtime]:
    tp = tracer_provider or make_tracer_provider("intake", exporter=settings.otel_exporter)
    rt = Runtime(settings, tp, datamap)
    rt.broker.include_router(build_router(rt))
    app = FastStream(
        rt.broker,
        on_startup=[rt.open],
        after_startup=[rt.start_relay],
        after_shutdown=[rt.close],
    )
    # The exports bucket (downloads are read from it), by name, as the other services do.
    checks = {
        "postgres": lambda: postgres_check(rt.pool),
        **bucket_checks(lambda: rt.s3, settings.exports_bucket),
    }
    # Intake serves /readyz and /metrics on its HTTP port; uvicorn takes a third of the
    # grace period for HTTP requests in flight, the drain the rest.
    grace = settings.shutdown_grace_seconds * 2 / 3
    rt.ops = attach(app, rt.broker, settings, "intake", checks, grace=grace, serve=False)
    rt.ops.metrics.add_refresher(lambda m: _jobs_by_state(rt, m))
    return app, rt


async def _jobs_by_state(rt: Runtime, metrics: Any) -> None:
    rows = await store.jobs_by_state(rt.pool)
    metrics.jobs.clear()
    for job_type, status, n in rows:
        metrics.jobs.labels(job_type, status).set(n)


def create_app(
    settings: IntakeSettings, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    return build(settings, tracer_provider)[0]


def create_http(
    settings: IntakeSettings,
    *,
    tracer_provider: TracerProvider | None = None,
    datamap: DataMap | None = None,
) -> FastAPI:
    """`datamap`: one already checked against the database (else checked at start)."""
    stream, rt = build(settings, tracer_provider, datamap)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with stream:
            yield

    http = FastAPI(title="Lethe intake", version="1", lifespan=lifespan)
    http.state.runtime = rt
    add_routes(http)

    @http.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        ok, checks = await rt.ops.readiness()
        body = {"status": "ready" if ok else "unready", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    @http.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(await rt.ops.metrics.render(), media_type=CONTENT_TYPE)

    return http
