"""Auditor service: appends every event on `lethe.audit.v1` to the hash-chained audit_log,
signs checkpoints of its head, and prunes rows past the audit retention."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from faststream import FastStream
from opentelemetry.trace import TracerProvider

from services.auditor import maintenance
from services.auditor.handlers import register
from services.auditor.keys import signing_key
from services.auditor.settings import AuditorSettings
from services.auditor.store import Signer
from shared.db import create_pool
from shared.health import attach, postgres_check
from shared.kafka import create_broker
from shared.telemetry import tracer_provider as make_tracer_provider

log = logging.getLogger(__name__)


class Runtime:
    pool: asyncpg.Pool

    def __init__(self, settings: AuditorSettings) -> None:
        self.settings = settings
        # Refuses to start (raises) when a production deployment has no signing key.
        key, self.dev_key = signing_key(settings)
        self.signer = Signer(key, settings.audit_checkpoint_every_rows)
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.pool = await create_pool(self.settings.database_url)
        await maintenance.record_key(self.pool, self.signer, dev=self.dev_key)

    async def start_maintenance(self) -> None:
        self._task = asyncio.create_task(maintenance.run(self.pool, self.signer, self.settings))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pool.close()


def create_app(
    settings: AuditorSettings,
    *,
    tracer_provider: TracerProvider | None = None,
    group_id: str = "lethe-auditor",
) -> FastStream:
    tp = tracer_provider or make_tracer_provider("auditor", exporter=settings.otel_exporter)
    broker = create_broker(settings.kafka_bootstrap_servers, service="auditor", tracer_provider=tp)
    rt = Runtime(settings)
    register(broker, rt, group_id=group_id)
    app = FastStream(
        broker,
        on_startup=[rt.open],
        after_startup=[rt.start_maintenance],
        after_shutdown=[rt.close],
    )
    attach(app, broker, settings, "auditor", {"postgres": lambda: postgres_check(rt.pool)})
    return app
