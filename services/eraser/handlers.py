"""Thin handlers: typed commands in, the domain called, what it emits published.

Three subscribers: `lethe.jobs.erase.v1` (ErasureRequested, CancelErasure, RestoreErasure,
RetentionRequested; keyed by job, so ordered per job; `erase_job_concurrency` consumers per
process) and `lethe.erase.tasks.v1` (one EraseChunk
per chunk, keyed by job and chunk so the chunks spread over all partitions and every replica
takes a share; `erase_concurrency` consumers per process), and the job topic once more in group
`lethe-eraser-cancels` for cancels of retention runs (a run holds its partition while it
works, so the cancel is recorded at once and read between batches). Offsets are committed
after the handler; retries and dead-lettering are `shared.messaging.Delivery`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from faststream.kafka import KafkaRouter
from pydantic import Field

from services.eraser import service
from services.eraser.service import retention
from shared.events import Envelope
from shared.events.jobs import EraseChunk
from shared.events.notifications import SendEmail
from shared.events.progress import (
    BatchErased,
    CancelledErasurePurged,
    CommandRefused,
    ConnectorCalled,
    DuplicateIgnored,
    ErasurePlanned,
    ErasureSoftDeleted,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobRestored,
    ManualTasksOpened,
    PurgeStarted,
    SubjectAmbiguous,
    SubjectHidden,
    SubjectNotFound,
)
from shared.events.retention import RetentionRequested
from shared.events.topics import AUDIT, ERASE_TASKS, JOBS_ERASE, NOTIFICATIONS, PROGRESS
from shared.events.typed import (
    CancelErasureEvent,
    EraseChunkEvent,
    ErasureRequestedEvent,
    RestoreErasureEvent,
    RetentionRequestedEvent,
)
from shared.messaging import Delivery
from shared.messaging.outputs import Outputs

if TYPE_CHECKING:
    from services.eraser.app import Runtime

GROUP = "lethe-eraser"
TASK_GROUP = "lethe-eraser-tasks"
CANCEL_GROUP = "lethe-eraser-cancels"

JobCommand = Annotated[
    ErasureRequestedEvent | CancelErasureEvent | RestoreErasureEvent | RetentionRequestedEvent,
    Field(discriminator="type"),
]
OUTPUTS = {
    PROGRESS: (
        SubjectHidden,
        ErasurePlanned,
        BatchErased,
        ErasureSoftDeleted,
        PurgeStarted,
        JobCompleted,
        JobFailed,
        SubjectNotFound,
        SubjectAmbiguous,
        JobCancelled,
        JobRestored,
        CommandRefused,
        ConnectorCalled,
        ManualTasksOpened,
    ),
    NOTIFICATIONS: (SendEmail,),
    AUDIT: (DuplicateIgnored, CancelledErasurePurged),
    # Internal work items: not audited (the audit trail gets every BatchErased instead).
    ERASE_TASKS: (EraseChunk,),
}


def build_router(rt: Runtime) -> KafkaRouter:
    delivery = Delivery(horizon_seconds=rt.settings.dlq_retry_horizon_seconds)
    router = KafkaRouter(middlewares=[delivery])
    out = Outputs(router, "eraser", OUTPUTS)

    async def publish_chunk(env: Envelope) -> None:
        await out.emit(ERASE_TASKS, env, key=f"{env.job_id}:{env.payload['chunk_no']}".encode())

    rt.emit, rt.publish_chunk = out.emit, publish_chunk
    retries = rt.settings.dlq_retries

    async def on_give_up(env: Envelope, error: str) -> None:
        if env.type == RetentionRequested.event_type:
            await retention.give_up(env, rt.deps, error)
            return
        await service.give_up(env, rt.deps, error)

    @router.subscriber(
        JOBS_ERASE,
        **delivery.consumer(
            rt.settings.group(GROUP),
            retries=retries,
            on_give_up=on_give_up,
            # Planning a large erasure resolves every key once; allow it time between polls.
            max_poll_interval_ms=30 * 60 * 1000,
            # One consumer per partition up to this many: jobs planned (and small ones run)
            # side by side, each job's commands still in order.
            max_workers=rt.settings.erase_job_concurrency,
        ),
    )
    async def on_job_command(event: JobCommand) -> None:
        env = event.envelope()
        match event:
            case ErasureRequestedEvent():
                await service.plan(env, rt.deps)
            case CancelErasureEvent():
                if not await retention.cancel_arrived(env, rt.deps):
                    await service.cancel(env, rt.deps)
            case RestoreErasureEvent():
                await service.restore(env, rt.deps)
            case RetentionRequestedEvent():
                await retention.run_job(env, rt.deps, public_mode=rt.settings.public_mode)

    # Cancels of retention jobs, read at once by a group of their own: a run holds its
    # partition of the job topic until it ends (retention.request_cancel).
    @router.subscriber(
        JOBS_ERASE, **delivery.consumer(rt.settings.group(CANCEL_GROUP), retries=retries)
    )
    async def on_cancel(event: JobCommand) -> None:
        if isinstance(event, CancelErasureEvent):
            await retention.request_cancel(event.envelope(), rt.deps)

    async def on_chunk_give_up(env: Envelope, error: str) -> None:
        try:
            env.payload_as(EraseChunk)
        except ValueError:
            return  # not a chunk (dead-lettered as invalid): no job to tell
        await service.chunk_failed(env, rt.deps, error)  # a manual-review item

    @router.subscriber(
        ERASE_TASKS,
        **delivery.consumer(
            rt.settings.group(TASK_GROUP),
            retries=retries,
            on_give_up=on_chunk_give_up,
            max_workers=rt.settings.erase_concurrency,
            max_poll_interval_ms=10 * 60 * 1000,
        ),
    )
    async def on_chunk(event: EraseChunkEvent) -> None:
        await service.process_chunk(event.envelope(), rt.deps)

    return router
