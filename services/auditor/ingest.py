"""One batch of `lethe.audit.v1` records into the chain: read as envelopes, appended in one
transaction (store.append_batch), and what cannot be kept dead-lettered alone.

A record that is not an envelope, or an event Postgres refuses to store (a value it cannot
hold: a data error, the same on every try), is set aside and dead-lettered after the rest of
the batch is appended, in order. Any other failure (the database away) fails the whole batch:
the delivery middleware retries it, and a redelivered batch appends nothing twice. The
offsets are committed only after the handler returns, so after the transaction's commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import ValidationError

from services.auditor import store
from services.auditor.store import Signer
from shared.events import Envelope
from shared.messaging.delivery import dead_letter, describe, invalid

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord
    from faststream.kafka import KafkaBroker

log = logging.getLogger(__name__)
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class Batch:
    """A batch's records, split: the envelopes to append and the records set aside."""

    events: list[tuple[ConsumerRecord[Any, Any], Envelope]]
    refused: list[tuple[ConsumerRecord[Any, Any], str]]


def read(records: Sequence[ConsumerRecord[Any, Any]]) -> Batch:
    batch = Batch([], [])
    for rec in records:
        try:
            batch.events.append((rec, Envelope.model_validate_json(rec.value or b"")))
        except ValidationError as exc:  # poison: it will never read as an envelope
            batch.refused.append((rec, invalid(exc)))
    return batch


async def append(
    pool: asyncpg.Pool, envs: list[Envelope], signer: Signer | None
) -> list[tuple[int, str]]:
    """Append `envs` in one transaction; when Postgres refuses a value, one at a time instead
    (still in order), so only the event it refuses is left out. (index, why) of those."""
    try:
        await store.append_batch(pool, envs, signer=signer)
        return []
    except asyncpg.DataError as exc:
        log.warning(
            "a batch of %d audit events was refused (%r); appending one by one", len(envs), exc
        )
    refused: list[tuple[int, str]] = []
    for i, env in enumerate(envs):
        try:
            await store.append_batch(pool, [env], signer=signer)
        except asyncpg.DataError as exc:
            refused.append((i, describe(exc)))
    return refused


async def take(
    records: Sequence[ConsumerRecord[Any, Any]],
    *,
    pool: asyncpg.Pool,
    signer: Signer | None,
    broker: KafkaBroker,
    group: str,
    tracer: trace.Tracer,
) -> None:
    """Append a batch; dead-letter its poison records, each alone, after the rest."""
    batch = read(records)
    spans = _spans(tracer, batch.events)
    try:
        refused = await append(pool, [env for _, env in batch.events], signer)
    except Exception as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR)
        raise
    finally:
        for span in spans:
            span.end()
    poison = batch.refused + [(batch.events[i][0], why) for i, why in refused]
    # A failed publish fails the batch: it comes again, its appends already recorded.
    for rec, why in sorted(poison, key=lambda p: p[0].offset):
        await dead_letter(broker, rec.topic, group, rec.value or b"", why, key=rec.key)


def _spans(
    tracer: trace.Tracer, events: list[tuple[ConsumerRecord[Any, Any], Envelope]]
) -> list[trace.Span]:
    """A span in each trace the batch's events were published in (the batch's own span is a
    new trace that only links to them), so one request's trace still reaches the auditor:
    one per trace, not per event (a span costs more than the append itself)."""
    spans: dict[str, trace.Span] = {}
    for rec, env in events:
        headers = {k: v.decode(errors="replace") for k, v in rec.headers or ()}
        parent = headers.get("traceparent", "")
        trace_id = parent[3:35]
        if not trace_id or trace_id in spans:
            continue
        spans[trace_id] = tracer.start_span(
            "auditor append",
            context=_PROPAGATOR.extract(headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={"lethe.event_id": str(env.event_id), "lethe.event_type": env.type},
        )
    return list(spans.values())
