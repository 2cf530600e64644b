"""Notifier service: emails asked for on `lethe.notifications.v1`, and signed webhook
callbacks (and OpenDSR callbacks) for every job state change on `lethe.progress.v1`, sent by
dispatchers off the consumers' path."""

from __future__ import annotations

from contextlib import AsyncExitStack

import asyncpg
from faststream import FastStream
from faststream.kafka import KafkaBroker
from opentelemetry.trace import TracerProvider

from services.notifier import bootstrap
from services.notifier.handlers import Senders, build_router
from services.notifier.service import NotifierDeps
from services.notifier.settings import NotifierSettings
from shared.events import Envelope
from shared.health import attach, postgres_check
from shared.kafka import service_broker
from shared.messaging.outputs import Outputs
from shared.telemetry import tracer_provider as make_tracer_provider


class Runtime:
    """The deps, opened at start-up and closed at shutdown (none exist at import time)."""

    deps: NotifierDeps
    outputs: Outputs  # the router's typed publishers (handlers.build_router)
    pool: asyncpg.Pool  # the deps' pool, for the dispatchers (OpenDSR callbacks, webhooks)

    def __init__(self, settings: NotifierSettings, broker: KafkaBroker) -> None:
        self.settings = settings
        self.broker = broker
        self._stack = AsyncExitStack()

    async def emit(self, topic: str, env: Envelope) -> None:
        await self.outputs.emit(topic, env)

    async def open(self) -> None:
        self.deps = await self._stack.enter_async_context(
            bootstrap.open_deps(self.settings, emit=self.emit)
        )
        self.pool = self.deps.pool

    async def close(self) -> None:
        await self._stack.aclose()


def create_app(
    settings: NotifierSettings, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    return assemble(settings, tracer_provider=tracer_provider)[0]


def assemble(
    settings: NotifierSettings, *, tracer_provider: TracerProvider | None = None
) -> tuple[FastStream, Senders]:
    """The app and its dispatchers (tests pause one to drive it themselves)."""
    tp = tracer_provider or make_tracer_provider("notifier", exporter=settings.otel_exporter)
    broker = service_broker(settings, "notifier", tp)
    rt = Runtime(settings, broker)
    router, senders = build_router(rt)
    broker.include_router(router)
    app = FastStream(
        broker,
        on_startup=[rt.open],
        after_startup=[senders.start],
        on_shutdown=[senders.stop],
        after_shutdown=[rt.close],
    )
    attach(app, broker, settings, "notifier", {"postgres": lambda: postgres_check(rt.pool)})
    return app, senders
