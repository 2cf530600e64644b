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

from services.exporter import domain
from services.exporter.handlers import deps_for, register
from services.exporter.settings import ExporterSettings
from shared.db import create_pool
from shared.health import attach, bucket_checks, postgres_check
from shared.kafka import create_broker
from shared.startup import load_checked_datamap, open_platform_bucket
from shared.storage import ensure_bucket, s3_client
from shared.telemetry import tracer_provider as make_tracer_provider

log = logging.getLogger(__name__)


class Runtime:
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

    async def _open(self) -> None:
        s = self.settings
        # Refuse to start on a map that does not fit the live database, or without the
        # platform's media bucket (exports read the subject's objects from it).
        self.datamap, self.live = await load_checked_datamap(s)
        self.s3 = await self._stack.enter_async_context(s3_client(s))
        await open_platform_bucket(self.s3, s)
        await ensure_bucket(self.s3, s.exports_bucket)
        self.lethe = await create_pool(s.database_url)
        self._stack.push_async_callback(self.lethe.close)
        self.platform = await create_pool(s.platform_database_url)
        self._stack.push_async_callback(self.platform.close)

    async def start_sweeper(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="export-sweep")

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await domain.sweep_expired(deps_for(self.broker, self), datetime.now(UTC))
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
    broker = create_broker(settings.kafka_bootstrap_servers, service="exporter", tracer_provider=tp)
    rt = Runtime(settings, broker)
    register(broker, rt)
    app = FastStream(
        broker,
        on_startup=[rt.open],
        after_startup=[rt.start_sweeper],
        after_shutdown=[rt.close],
    )
    checks = {
        "postgres": lambda: postgres_check(rt.lethe),
        "platform_postgres": lambda: postgres_check(rt.platform),
        **bucket_checks(lambda: rt.s3, settings.exports_bucket, settings.platform_bucket),
    }
    attach(app, broker, settings, "exporter", checks)
    return app
