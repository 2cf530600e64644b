"""Thin handlers for the auditor: the envelopes on `lethe.audit.v1` are appended, in order, to
the hash chain, a batch of records per transaction (services/auditor/ingest.py). Any event
type is kept (unknown ones too), so the payload is not narrowed; a record that is not an
envelope is dead-lettered alone, the rest of its batch appended."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaBroker, KafkaMessage
from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from services.auditor import ingest
from shared.events.topics import AUDIT
from shared.messaging import Delivery

if TYPE_CHECKING:
    from services.auditor.app import Runtime

# Up to this many records per transaction; a poll returns at once what has arrived, so the
# wait only applies to an idle topic.
BATCH_RECORDS = 1000
BATCH_WAIT_MS = 100


async def raw_values(msg: Any) -> list[bytes]:
    """The records' bytes, undecoded: each is read as an envelope on its own (ingest.read)."""
    return [rec.value or b"" for rec in msg.raw_message]


def build_router(
    rt: Runtime,
    *,
    group_id: str = "lethe-auditor",
    tracer_provider: TracerProvider | None = None,
) -> KafkaRouter:
    delivery = Delivery(horizon_seconds=rt.settings.dlq_retry_horizon_seconds)
    router = KafkaRouter(middlewares=[delivery])
    group = rt.settings.group(group_id)
    tracer = (tracer_provider or trace.NoOpTracerProvider()).get_tracer("lethe.auditor")

    @router.subscriber(
        AUDIT,
        batch=True,
        max_records=BATCH_RECORDS,
        batch_timeout_ms=BATCH_WAIT_MS,
        decoder=raw_values,
        description="Batches of records, each an Envelope (JSON), appended in the topic's order.",
        **delivery.consumer(group, retries=rt.settings.dlq_retries),
    )
    async def on_event(records: list[bytes], msg: KafkaMessage, broker: KafkaBroker) -> None:
        await ingest.take(
            msg.raw_message,
            pool=rt.pool,
            signer=rt.signer,
            broker=broker,
            group=group,
            tracer=tracer,
        )

    return router
