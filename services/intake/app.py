"""Intake service: HTTP API, progress consumer and outbox relay in one process.

`create_app` is the Kafka side (a FastStream app, as in every service); `create_http` wraps
it in the FastAPI app whose lifespan starts and stops it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from faststream import FastStream
from opentelemetry.trace import TracerProvider

from services.intake import opendsr
from services.intake.api import add_routes
from services.intake.auth import RateLimiter
from services.intake.handlers import build_router
from services.intake.relay import OutboxRelay
from services.intake.scheduler import Scheduler
from services.intake.settings import IntakeSettings
from shared.datamap import DataMap
from shared.db import create_pool
from shared.health import Ops, attach, postgres_check, s3_check
from shared.kafka import create_broker
from shared.metrics import CONTENT_TYPE
from shared.startup import StartupError, load_checked_datamap
from shared.storage import s3_client
from shared.telemetry import tracer_provider as make_tracer_provider


class Runtime:
    datamap: DataMap
    pool: asyncpg.Pool
    s3: Any
    relay: OutboxRelay
    ops: Ops
    scheduler: Scheduler | None = None
    # OpenDSR: the signing key and its X.509 certificate, checked at start (None: not set up).
    opendsr_key: rsa.RSAPrivateKey | None = None
    opendsr_certificate: bytes | None = None

    def __init__(
        self,
        settings: IntakeSettings,
        tracer_provider: TracerProvider,
        datamap: DataMap | None = None,
    ) -> None:
        self.settings = settings
        self._datamap = datamap  # already checked against the database (`python -m`)
        self.tracer = tracer_provider.get_tracer("lethe.intake")
        self._stack = AsyncExitStack()
        self.limiter = RateLimiter(settings.submit_rate_per_minute, settings.submit_burst)
        self.broker = create_broker(
            settings.kafka_bootstrap_servers, service="intake", tracer_provider=tracer_provider
        )

    async def open(self) -> None:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _open(self) -> None:
        # The retention categories and the scheduler's retention jobs come from the data map:
        # refuse to start on one that does not fit the live database, like eraser and exporter.
        if self._datamap is None:
            self._datamap, _ = await load_checked_datamap(self.settings)
        self.datamap = self._datamap
        self.opendsr_key, self.opendsr_certificate = opendsr_identity(self.settings)
        self.pool = await create_pool(self.settings.database_url)
        self._stack.push_async_callback(self.pool.close)
        # S3 for export downloads (decrypted on the way out).
        self.s3 = await self._stack.enter_async_context(s3_client(self.settings))
        self.relay = OutboxRelay(
            self.pool, self.broker, self.tracer, poll_seconds=self.settings.outbox_poll_seconds
        )

    async def start_relay(self) -> None:
        if self.settings.outbox_relay_enabled:
            await self.relay.start()
        if self.settings.scheduler_enabled:
            s = self.settings
            self.scheduler = Scheduler(
                self.pool,
                self.datamap,
                cron=s.retention_schedule,
                poll_seconds=s.scheduler_poll_seconds,
                reminder_days=s.deadline_reminder_days,
                public_mode=s.public_mode,
                public_days=s.public_data_retention_days,
                on_recorded=self.relay.wake,
            )
            await self.scheduler.start()

    async def close(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        await self.relay.stop()
        await self._stack.aclose()


def opendsr_identity(s: IntakeSettings) -> tuple[rsa.RSAPrivateKey | None, bytes | None]:
    """The OpenDSR signing key and the certificate published for it; a certificate that is
    not for the key or the domain (or, in production, none) stops intake at start."""
    pem = s.opendsr_signing_key.get_secret_value() if s.opendsr_signing_key else None
    if pem is None and s.opendsr_signing_key_file is None:
        return None, None  # OpenDSR not set up: its routes answer 503 saying so
    try:
        key = opendsr.load_signing_key(pem, s.opendsr_signing_key_file)
        configured = s.opendsr_certificate_file.read_bytes() if s.opendsr_certificate_file else None
        cert = opendsr.processor_certificate(
            key, s.opendsr_processor_domain, configured, development=s.on_dev_keys
        )
    except (opendsr.NotConfigured, OSError, ValueError) as exc:
        raise StartupError(f"OpenDSR: {exc}") from None
    return key, cert


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
    checks = {"postgres": lambda: postgres_check(rt.pool), "s3": lambda: s3_check(rt.s3)}
    # Intake serves /readyz and /metrics on its HTTP port; uvicorn takes a third of the
    # grace period for HTTP requests in flight, the drain the rest.
    grace = settings.shutdown_grace_seconds * 2 / 3
    rt.ops = attach(app, rt.broker, settings, "intake", checks, grace=grace, serve=False)
    rt.ops.metrics.add_refresher(lambda m: _jobs_by_state(rt, m))
    return app, rt


async def _jobs_by_state(rt: Runtime, metrics: Any) -> None:
    rows = await rt.pool.fetch(
        "SELECT type, status, count(*) AS n FROM lethe.jobs GROUP BY type, status"
    )
    metrics.jobs.clear()
    for r in rows:
        metrics.jobs.labels(r["type"], r["status"]).set(r["n"])


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
