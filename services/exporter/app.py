"""Exporter service: consumes `lethe.jobs.export.v1`, writes sealed exports to S3, and
sweeps expired ones."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from datetime import UTC, datetime

from faststream import FastStream
from faststream.kafka import KafkaBroker
from opentelemetry.trace import TracerProvider

from services.exporter import bootstrap, service
from services.exporter.handlers import build_router
from services.exporter.service import ExporterDeps
from services.exporter.settings import ExporterSettings
from shared.events import Envelope
from shared.health import attach, bucket_checks, postgres_check
from shared.kafka import service_broker
from shared.messaging.outputs import Outputs
from shared.telemetry import tracer_provider as make_tracer_provider

log = logging.getLogger(__name__)


class Runtime:
    deps: ExporterDeps
    outputs: Outputs  # the router's typed publishers (handlers.build_router)

    def __init__(self, settings: ExporterSettings, broker: KafkaBroker) -> None:
        self.settings = settings
        self.broker = broker
        self._stack = AsyncExitStack()
        self._sweeper: asyncio.Task[None] | None = None

    async def open(self) -> None:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise

    async def emit(self, topic: str, env: Envelope) -> None:
        await self.outputs.emit(topic, env)

    async def _open(self) -> None:
        self.deps = await self._stack.enter_async_context(
            bootstrap.open_deps(self.settings, emit=self.emit)
        )

    async def start_sweeper(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="export-sweep")

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await service.sweep_expired(self.deps, datetime.now(UTC))
            except Exception:
                log.exception("export sweep failed; retrying at the next interval")
            await asyncio.sleep(self.settings.export_sweep_seconds)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self._stack.aclose()


def create_app(
    settings: ExporterSettings, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    tp = tracer_provider or make_tracer_provider("exporter", exporter=settings.otel_exporter)
    broker = service_broker(settings, "exporter", tp)
    rt = Runtime(settings, broker)
    broker.include_router(build_router(rt))
    app = FastStream(
        broker,
        on_startup=[rt.open],
        after_startup=[rt.start_sweeper],
        after_shutdown=[rt.close],
    )
    checks = {
        "postgres": lambda: postgres_check(rt.deps.lethe),
        "platform_postgres": lambda: postgres_check(rt.deps.platform),
        **bucket_checks(lambda: rt.deps.s3, settings.exports_bucket, settings.platform_bucket),
    }
    attach(app, broker, settings, "exporter", checks)
    return app
