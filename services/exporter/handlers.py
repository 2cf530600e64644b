"""Thin handlers for the exporter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.kafka import KafkaBroker

from services.exporter import domain
from shared.events import Envelope
from shared.events.progress import JobFailed
from shared.events.topics import JOBS_EXPORT, PROGRESS
from shared.kafka import publish_event, subscribe

if TYPE_CHECKING:
    from services.exporter.app import Runtime


def register(broker: KafkaBroker, rt: Runtime) -> None:
    async def emit(topic: str, env: Envelope) -> None:
        await publish_event(broker, topic, env)

    async def on_export_requested(env: Envelope) -> None:
        await domain.export(
            env,
            domain.ExporterDeps(
                platform=rt.platform,
                s3=rt.s3,
                bucket=rt.settings.exports_bucket,
                datamap=rt.datamap,
                emit=emit,
            ),
        )

    async def on_give_up(env: Envelope, error: str) -> None:
        await emit(PROGRESS, domain.event_for(env, JobFailed(reason=f"export failed: {error}")))

    subscribe(
        broker,
        JOBS_EXPORT,
        group_id="lethe-exporter",
        handler=on_export_requested,
        retries=rt.settings.dlq_retries,
        on_give_up=on_give_up,
    )
