"""A service's outputs as typed FastStream publishers: documented in the AsyncAPI document,
and the one way its handlers publish envelopes (wire format: Envelope JSON, header
`lethe-event-type`, key = job or org unless given)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from faststream.kafka import KafkaRouter
from faststream.kafka.publisher.usecase import DefaultPublisher

from shared.events import Envelope, Payload
from shared.events.typed import one_of
from shared.kafka import event_headers, with_trace


class Outputs:
    def __init__(
        self,
        router: KafkaRouter,
        service: str,
        topics: Mapping[str, Sequence[type[Payload]]],
    ) -> None:
        self._publishers: dict[str, DefaultPublisher] = {
            topic: router.publisher(
                topic,
                title=f"{topic}:{service}",
                schema=one_of(*types),
                description=f"{service} publishes: {', '.join(t.event_type for t in types)}",
            )
            for topic, types in topics.items()
        }

    async def emit(
        self,
        topic: str,
        env: Envelope,
        *,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> None:
        """`partition`: where the key alone would not spread the events evenly (work items)."""
        publisher = self._publishers.get(topic)
        if publisher is None:
            raise LookupError(f"{topic} is not among this service's declared outputs")
        env = with_trace(env)
        await publisher.publish(
            env.model_dump_json().encode(),
            key=key or env.key(),
            partition=partition,
            headers=event_headers(env),
        )
