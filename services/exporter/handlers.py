"""Thin handlers for the exporter: typed commands in, the domain called.

Two groups on `lethe.jobs.export.v1`: `lethe-exporter` builds exports (one at a time per
partition); `lethe-exporter-control` takes cancels, which must not wait behind the export they
stop (it records them; the export checks between batches). Retries and dead-lettering are
`shared.messaging.Delivery`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from faststream.kafka import KafkaRouter
from pydantic import Field

from services.exporter import service
from shared.events import Envelope
from shared.events.exports import BatchExported, ExportExpired, ExportReady
from shared.events.notifications import SendEmail
from shared.events.progress import (
    CommandRefused,
    DuplicateIgnored,
    JobCancelled,
    JobFailed,
    SubjectAmbiguous,
    SubjectNotFound,
)
from shared.events.topics import AUDIT, JOBS_EXPORT, NOTIFICATIONS, PROGRESS
from shared.events.typed import CancelExportEvent, ExportRequestedEvent
from shared.messaging import Delivery
from shared.messaging.outputs import Outputs

if TYPE_CHECKING:
    from services.exporter.app import Runtime

GROUP = "lethe-exporter"
CONTROL_GROUP = "lethe-exporter-control"

ExportCommand = Annotated[ExportRequestedEvent | CancelExportEvent, Field(discriminator="type")]
OUTPUTS = {
    PROGRESS: (
        BatchExported,
        ExportReady,
        ExportExpired,
        JobFailed,
        SubjectNotFound,
        SubjectAmbiguous,
        JobCancelled,
        CommandRefused,
    ),
    NOTIFICATIONS: (SendEmail,),
    AUDIT: (DuplicateIgnored,),
}


def build_router(rt: Runtime) -> KafkaRouter:
    delivery = Delivery(horizon_seconds=rt.settings.dlq_retry_horizon_seconds)
    router = KafkaRouter(middlewares=[delivery])
    rt.outputs = Outputs(router, "exporter", OUTPUTS)
    retries = rt.settings.dlq_retries

    async def on_give_up(env: Envelope, error: str) -> None:
        await service.fail(env, rt.deps, error)

    @router.subscriber(
        JOBS_EXPORT,
        **delivery.consumer(
            rt.settings.group(GROUP),
            retries=retries,
            on_give_up=on_give_up,
            max_poll_interval_ms=60 * 60 * 1000,
        ),
    )
    async def on_export_requested(event: ExportCommand) -> None:
        if isinstance(event, ExportRequestedEvent):
            await service.export(event.envelope(), rt.deps)

    @router.subscriber(
        JOBS_EXPORT, **delivery.consumer(rt.settings.group(CONTROL_GROUP), retries=retries)
    )
    async def on_control(event: ExportCommand) -> None:
        if isinstance(event, CancelExportEvent):
            await service.cancel(event.envelope(), rt.deps)

    return router
