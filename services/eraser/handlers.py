"""Thin handlers: decode, call the domain, publish what it emits.

Three subscriptions: `lethe.jobs.erase.v1` (ErasureRequested, CancelErasure, RestoreErasure;
keyed by job, so ordered per job) and `lethe.erase.tasks.v1` (one EraseChunk per chunk, keyed
by job and chunk so the chunks spread over all partitions and every replica takes a share;
`erase_concurrency` consumers per process), and the job topic once more in group
`lethe-eraser-cancels` for cancels of retention runs (a run holds its partition while it
works, so the cancel is recorded at once and read between batches). Offsets are committed
after the handler.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import TYPE_CHECKING

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from services.eraser import service
from services.eraser.service import retention
from shared.events import Envelope
from shared.events.jobs import CancelErasure, EraseChunk, ErasureRequested, RestoreErasure
from shared.events.retention import RetentionRequested
from shared.events.topics import AUDIT, ERASE_TASKS, JOBS_ERASE
from shared.kafka import dead_letter, publish_event, subscribe, with_trace

if TYPE_CHECKING:
    from services.eraser.app import Runtime

log = logging.getLogger(__name__)
GROUP = "lethe-eraser"
TASK_GROUP = "lethe-eraser-tasks"
CANCEL_GROUP = "lethe-eraser-cancels"


def register(broker: KafkaBroker, rt: Runtime) -> None:
    async def emit(topic: str, env: Envelope) -> None:
        if topic == AUDIT:
            await publish_event(broker, topic, env)
            return
        # The event and its audit copy (as publish_event does), both awaited, side by side.
        env = with_trace(env)
        body = env.model_dump_json().encode()
        headers = {"content-type": "application/json", "lethe-event-type": env.type}
        await asyncio.gather(
            broker.publish(body, topic, key=env.key(), headers=headers),
            broker.publish(body, AUDIT, key=env.key(), headers=headers),
        )

    async def publish_chunk(env: Envelope) -> None:
        # Internal work items: not audited (the audit trail gets every BatchErased instead).
        env = with_trace(env)
        chunk = env.payload["chunk_no"]
        await broker.publish(
            env.model_dump_json().encode(),
            ERASE_TASKS,
            key=f"{env.job_id}:{chunk}".encode(),
            headers={"content-type": "application/json", "lethe-event-type": env.type},
        )

    rt.emit, rt.publish_chunk = emit, publish_chunk

    async def on_job_command(env: Envelope) -> None:
        if env.type == ErasureRequested.event_type:
            await service.plan(env, rt.deps)
        elif env.type == CancelErasure.event_type:
            if not await retention.cancel_arrived(env, rt.deps):
                await service.cancel(env, rt.deps)
        elif env.type == RestoreErasure.event_type:
            await service.restore(env, rt.deps)
        elif env.type == RetentionRequested.event_type:
            await retention.run_job(env, rt.deps, public_mode=rt.settings.public_mode)

    async def on_give_up(env: Envelope, error: str) -> None:
        if env.type == RetentionRequested.event_type:
            await retention.give_up(env, rt.deps, error)
            return
        await service.give_up(env, rt.deps, error)

    subscribe(
        broker,
        JOBS_ERASE,
        group_id=rt.settings.group(GROUP),
        handler=on_job_command,
        retries=rt.settings.dlq_retries,
        on_give_up=on_give_up,
        # Planning a large erasure resolves every key once; allow it time between polls.
        max_poll_interval_ms=30 * 60 * 1000,
    )

    # Cancels of retention jobs, read at once by a group of their own: a run holds its
    # partition of the job topic until it ends (retention.request_cancel).
    async def on_cancel(env: Envelope) -> None:
        if env.type == CancelErasure.event_type:
            await retention.request_cancel(env, rt.deps)

    subscribe(
        broker,
        JOBS_ERASE,
        group_id=rt.settings.group(CANCEL_GROUP),
        handler=on_cancel,
        retries=rt.settings.dlq_retries,
    )
    _subscribe_chunks(broker, rt)


def _subscribe_chunks(broker: KafkaBroker, rt: Runtime) -> None:
    retries = rt.settings.dlq_retries
    group = rt.settings.group(TASK_GROUP)

    @broker.subscriber(
        ERASE_TASKS,
        group_id=group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        max_workers=rt.settings.erase_concurrency,
        max_poll_interval_ms=10 * 60 * 1000,
    )
    async def _consume(message: KafkaMessage) -> None:
        raw = message.body
        try:
            env = Envelope.model_validate_json(raw)
            env.payload_as(EraseChunk)
        except (ValidationError, ValueError) as exc:
            await dead_letter(broker, ERASE_TASKS, group, raw, f"invalid chunk: {exc}")
            return
        for attempt in range(1, retries + 1):
            try:
                await service.process_chunk(env, rt.deps)
                return
            except Exception as exc:  # retried, then a manual-review item
                log.warning(
                    "chunk %s of job %s failed (attempt %d/%d): %r",
                    env.payload.get("chunk_no"),
                    env.job_id,
                    attempt,
                    retries,
                    exc,
                )
                if attempt == retries:
                    error = "".join(traceback.format_exception_only(exc)).strip()
                    await dead_letter(broker, ERASE_TASKS, group, raw, error)
                    await service.chunk_failed(env, rt.deps, error)
                    return
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))

    _ = _consume
