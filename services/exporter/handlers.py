"""Thin handlers for the exporter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.kafka import KafkaBroker

from services.exporter import service
from shared.events import Envelope
from shared.events.jobs import CancelExport, ExportRequested
from shared.events.topics import JOBS_EXPORT
from shared.kafka import subscribe

if TYPE_CHECKING:
    from services.exporter.app import Runtime


CONTROL_GROUP = "lethe-exporter-control"


def register(broker: KafkaBroker, rt: Runtime) -> None:
    """Two groups on `lethe.jobs.export.v1`: `lethe-exporter` builds exports (one at a time per
    partition); `lethe-exporter-control` takes cancels, which must not wait behind the export
    they stop (it records them; the export checks between batches)."""

    async def on_export_requested(env: Envelope) -> None:
        if env.type == ExportRequested.event_type:
            await service.export(env, rt.deps)

    async def on_control(env: Envelope) -> None:
        if env.type == CancelExport.event_type:
            await service.cancel(env, rt.deps)

    async def on_give_up(env: Envelope, error: str) -> None:
        await service.fail(env, rt.deps, error)

    subscribe(
        broker,
        JOBS_EXPORT,
        group_id=rt.settings.group("lethe-exporter"),
        handler=on_export_requested,
        retries=rt.settings.dlq_retries,
        on_give_up=on_give_up,
        max_poll_interval_ms=60 * 60 * 1000,
    )
    subscribe(
        broker,
        JOBS_EXPORT,
        group_id=rt.settings.group(CONTROL_GROUP),
        handler=on_control,
        retries=rt.settings.dlq_retries,
    )
