"""Notifier service: emails asked for on `lethe.notifications.v1`, and signed webhook
callbacks for every job state change on `lethe.progress.v1`."""

from __future__ import annotations

import asyncpg
import httpx
from faststream import FastStream
from opentelemetry.trace import TracerProvider

from services.notifier.handlers import register
from services.notifier.settings import NotifierSettings
from shared.db import create_pool
from shared.health import attach, postgres_check
from shared.kafka import create_broker
from shared.telemetry import tracer_provider as make_tracer_provider


class Runtime:
    pool: asyncpg.Pool
    http: httpx.AsyncClient

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings

    async def open(self) -> None:
        self.pool = await create_pool(self.settings.database_url)
        self.http = httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_seconds, follow_redirects=False
        )

    async def close(self) -> None:
        await self.http.aclose()
        await self.pool.close()


def create_app(
    settings: NotifierSettings, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    tp = tracer_provider or make_tracer_provider("notifier", exporter=settings.otel_exporter)
    broker = create_broker(settings.kafka_bootstrap_servers, service="notifier", tracer_provider=tp)
    rt = Runtime(settings)
    callbacks = register(broker, rt)
    app = FastStream(
        broker,
        on_startup=[rt.open],
        after_startup=[callbacks.start],
        on_shutdown=[callbacks.stop],
        after_shutdown=[rt.close],
    )
    attach(app, broker, settings, "notifier", {"postgres": lambda: postgres_check(rt.pool)})
    return app
