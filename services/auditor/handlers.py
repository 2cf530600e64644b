"""Thin handlers for the auditor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.kafka import KafkaBroker

from services.auditor import store
from shared.events import Envelope
from shared.events.topics import AUDIT
from shared.kafka import subscribe

if TYPE_CHECKING:
    from services.auditor.app import Runtime


def register(broker: KafkaBroker, rt: Runtime, *, group_id: str = "lethe-auditor") -> None:
    async def on_event(env: Envelope) -> None:
        await store.append(rt.pool, env, signer=rt.signer)

    subscribe(
        broker,
        AUDIT,
        group_id=rt.settings.group(group_id),
        handler=on_event,
        retries=rt.settings.dlq_retries,
    )
