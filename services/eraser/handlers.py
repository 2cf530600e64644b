"""Thin handlers: decode (in `subscribe`), call the domain, publish what it emits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.kafka import KafkaBroker

from services.eraser import domain
from shared.events import Envelope
from shared.events.topics import JOBS_ERASE
from shared.kafka import publish_event, subscribe

if TYPE_CHECKING:
    from services.eraser.app import Runtime


def register(broker: KafkaBroker, rt: Runtime) -> None:
    async def emit(topic: str, env: Envelope) -> None:
        await publish_event(broker, topic, env)

    def deps() -> domain.EraserDeps:
        s = rt.settings
        return domain.EraserDeps(
            lethe=rt.lethe,
            platform=rt.platform,
            s3=rt.s3,
            bucket=s.platform_bucket,
            datamap=rt.datamap,
            emit=emit,
            batch_size=s.erase_batch_size,
            rate_limit_rows=s.erase_rate_limit_rows,
        )

    async def on_erasure_requested(env: Envelope) -> None:
        await domain.erase(env, deps())

    async def on_give_up(env: Envelope, error: str) -> None:
        await domain.give_up(env, deps(), error)

    subscribe(
        broker,
        JOBS_ERASE,
        group_id="lethe-eraser",
        handler=on_erasure_requested,
        retries=rt.settings.dlq_retries,
        on_give_up=on_give_up,
        # A large erasure runs inside one handler call; allow it time between polls.
        max_poll_interval_ms=30 * 60 * 1000,
    )
