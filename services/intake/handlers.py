"""Intake's Kafka handlers: job state follows the progress topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.kafka import KafkaBroker

from services.intake import store
from shared.events import Envelope
from shared.events.topics import PROGRESS
from shared.kafka import subscribe

if TYPE_CHECKING:
    from services.intake.app import Runtime


def register(broker: KafkaBroker, rt: Runtime) -> None:
    async def on_progress(env: Envelope) -> None:
        await store.apply_progress(rt.pool, env)

    subscribe(
        broker,
        PROGRESS,
        group_id="lethe-intake",
        handler=on_progress,
        retries=rt.settings.dlq_retries,
    )
