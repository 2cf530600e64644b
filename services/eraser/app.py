"""Eraser service: consumes `lethe.jobs.erase.v1`, erases, reports progress and completion."""

from __future__ import annotations

from contextlib import AsyncExitStack

from faststream import FastStream
from opentelemetry.trace import TracerProvider

from services.eraser.handlers import register
from services.eraser.settings import EraserSettings
from shared.datamap import load_datamap
from shared.db import create_pool
from shared.kafka import create_broker
from shared.storage import s3_client
from shared.telemetry import tracer_provider as make_tracer_provider


class Runtime:
    """Resources opened at start-up and closed at shutdown (none exist at import time)."""

    def __init__(self, settings: EraserSettings) -> None:
        self.settings = settings
        self._stack = AsyncExitStack()

    async def open(self) -> None:
        s = self.settings
        self.datamap = load_datamap(s.datamap_path)
        self.lethe = await create_pool(s.database_url)
        self._stack.push_async_callback(self.lethe.close)
        self.platform = await create_pool(s.platform_database_url)
        self._stack.push_async_callback(self.platform.close)
        self.s3 = await self._stack.enter_async_context(s3_client(s))

    async def close(self) -> None:
        await self._stack.aclose()


def create_app(
    settings: EraserSettings, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    tp = tracer_provider or make_tracer_provider("eraser", exporter=settings.otel_exporter)
    broker = create_broker(settings.kafka_bootstrap_servers, service="eraser", tracer_provider=tp)
    runtime = Runtime(settings)
    register(broker, runtime)
    return FastStream(broker, on_startup=[runtime.open], after_shutdown=[runtime.close])
