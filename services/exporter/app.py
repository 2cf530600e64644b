"""Exporter service: consumes `lethe.jobs.export.v1`, writes the export to S3."""

from __future__ import annotations

from contextlib import AsyncExitStack

from faststream import FastStream
from opentelemetry.trace import TracerProvider

from services.exporter.handlers import register
from services.exporter.settings import ExporterSettings
from shared.datamap import load_datamap
from shared.db import create_pool
from shared.kafka import create_broker
from shared.storage import ensure_bucket, s3_client
from shared.telemetry import tracer_provider as make_tracer_provider


class Runtime:
    def __init__(self, settings: ExporterSettings) -> None:
        self.settings = settings
        self._stack = AsyncExitStack()

    async def open(self) -> None:
        s = self.settings
        self.datamap = load_datamap(s.datamap_path)
        self.platform = await create_pool(s.platform_database_url)
        self._stack.push_async_callback(self.platform.close)
        self.s3 = await self._stack.enter_async_context(s3_client(s))
        await ensure_bucket(self.s3, s.exports_bucket)

    async def close(self) -> None:
        await self._stack.aclose()


def create_app(
    settings: ExporterSettings, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    tp = tracer_provider or make_tracer_provider("exporter", exporter=settings.otel_exporter)
    broker = create_broker(settings.kafka_bootstrap_servers, service="exporter", tracer_provider=tp)
    rt = Runtime(settings)
    register(broker, rt)
    return FastStream(broker, on_startup=[rt.open], after_shutdown=[rt.close])
