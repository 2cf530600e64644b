"""Auditor service: appends every event on `lethe.audit.v1` to the hash-chained audit_log,
signs checkpoints of its head, and prunes rows past the audit retention."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack

import asyncpg
from faststream import FastStream
from opentelemetry.trace import TracerProvider

from services.auditor import bootstrap, maintenance
from services.auditor.handlers import build_router
from services.auditor.settings import AuditorSettings
from shared.health import attach, postgres_check
from shared.kafka import service_broker
from shared.telemetry import tracer_provider as make_tracer_provider

log = logging.getLogger(__name__)


class Runtime:
    pool: asyncpg.Pool

    def __init__(self, settings: AuditorSettings) -> None:
        self.settings = settings
        # Refuses to start (raises) when a production deployment has no signing key.
        self._loaded = bootstrap.load_signer(settings)
        self.signer, self.dev_key = self._loaded
        self._stack = AsyncExitStack()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        deps = await self._stack.enter_async_context(
            bootstrap.open_deps(self.settings, signer=self._loaded)
        )
        self.pool = deps.pool

    async def start_maintenance(self) -> None:
        self._task = asyncio.create_task(maintenance.run(self.pool, self.signer, self.settings))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stack.aclose()


def create_app(
    settings: AuditorSettings,
    *,
    tracer_provider: TracerProvider | None = None,
    group_id: str = "lethe-auditor",
) -> FastStream:
    tp = tracer_provider or make_tracer_provider("auditor", exporter=settings.otel_exporter)
    broker = service_broker(settings, "auditor", tp)
    rt = Runtime(settings)
    broker.include_router(build_router(rt, group_id=group_id, tracer_provider=tp))
    app = FastStream(
        broker,
        on_startup=[rt.open],
        after_startup=[rt.start_maintenance],
        after_shutdown=[rt.close],
    )
    attach(app, broker, settings, "auditor", {"postgres": lambda: postgres_check(rt.pool)})
    return app
