"""Thin handlers for the auditor: every envelope on `lethe.audit.v1` is appended, in order, to
the hash chain. Any event type is kept (unknown ones too), so the payload is not narrowed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.kafka import KafkaRouter

from services.auditor import store
from shared.events import Envelope
from shared.events.topics import AUDIT
from shared.messaging import Delivery

if TYPE_CHECKING:
    from services.auditor.app import Runtime


def build_router(rt: Runtime, *, group_id: str = "lethe-auditor") -> KafkaRouter:
    delivery = Delivery(horizon_seconds=rt.settings.dlq_retry_horizon_seconds)
    router = KafkaRouter(middlewares=[delivery])

    @router.subscriber(
        AUDIT, **delivery.consumer(rt.settings.group(group_id), retries=rt.settings.dlq_retries)
    )
    async def on_event(env: Envelope) -> None:
        await store.append(rt.pool, env, signer=rt.signer)

    return router
