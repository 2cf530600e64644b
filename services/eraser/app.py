"""Eraser service: plans erasures into chunks, erases them, restores, purges, verifies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack

from faststream import FastStream
from opentelemetry.trace import TracerProvider

from services.eraser import bootstrap, service
from services.eraser.deps import Emit, EraserDeps, PublishChunk
from services.eraser.handlers import build_router
from services.eraser.settings import EraserSettings
from shared.health import attach, bucket_checks, postgres_check
from shared.kafka import service_broker
from shared.telemetry import tracer_provider as make_tracer_provider

log = logging.getLogger(__name__)


class Runtime:
    """Resources opened at start-up and closed at shutdown (none exist at import time)."""

    emit: Emit
    publish_chunk: PublishChunk
    deps: EraserDeps

    def __init__(self, settings: EraserSettings) -> None:
        self.settings = settings
        self._stack = AsyncExitStack()
        self._sweeper: asyncio.Task[None] | None = None

    async def open(self) -> None:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _open(self) -> None:
        self.deps = await self._stack.enter_async_context(
            bootstrap.open_deps(self.settings, emit=self.emit, publish_chunk=self.publish_chunk)
        )

    async def start_sweeper(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await service.sweep(self.deps)
            except Exception:
                log.exception("purge sweep failed; trying again next interval")
            await asyncio.sleep(self.settings.erase_purge_interval_seconds)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self._stack.aclose()


def create_app(
    settings: EraserSettings, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    tp = tracer_provider or make_tracer_provider("eraser", exporter=settings.otel_exporter)
    broker = service_broker(settings, "eraser", tp)
    runtime = Runtime(settings)
    broker.include_router(build_router(runtime))
    app = FastStream(
        broker,
        on_startup=[runtime.open],
        after_startup=[runtime.start_sweeper],
        after_shutdown=[runtime.close],
    )
    checks = {
        "postgres": lambda: postgres_check(runtime.deps.lethe),
        "platform_postgres": lambda: postgres_check(runtime.deps.platform),
        **bucket_checks(lambda: runtime.deps.s3, settings.platform_bucket),
    }
    attach(app, broker, settings, "eraser", checks)
    return app
