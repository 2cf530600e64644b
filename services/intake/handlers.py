"""Intake's Kafka handlers: job state follows the progress topic; upstream requests come in
on the request topic (bad ones answered with RequestRejected, carrying the original key)."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.intake import domain, store
from services.intake.runtime import Runtime
from services.intake.service import requests
from shared.events import Actor, Envelope, make_event
from shared.events.requests import RequestRejected
from shared.events.topics import PROGRESS, REQUESTS, REQUESTS_REJECTED
from shared.kafka import publish_event, subscribe, subscribe_raw


def register(broker: KafkaBroker, rt: Runtime) -> None:
    async def on_progress(env: Envelope) -> None:
        await store.apply_progress(rt.pool, env)

    async def reject(key: bytes | None, rejection: domain.Rejection, org_id: str | None) -> None:
        env = make_event(
            RequestRejected(
                reason=rejection.reason,
                errors=rejection.errors,
                original_key=key.decode(errors="replace") if key else None,
                request_id=rejection.request_id,
            ),
            actor=Actor(kind="service", id="intake"),
            org_id=org_id,
        )
        await publish_event(broker, REQUESTS_REJECTED, env)

    async def on_request(raw: bytes, key: bytes | None) -> None:
        try:
            await requests.submit_upstream(rt.uow(), raw, rt.submit_policy())
        except requests.Rejected as exc:
            await reject(key, exc.rejection, exc.org_id)

    subscribe(
        broker,
        PROGRESS,
        group_id=rt.settings.group("lethe-intake"),
        handler=on_progress,
        retries=rt.settings.dlq_retries,
    )
    subscribe_raw(
        broker,
        REQUESTS,
        group_id=rt.settings.group("lethe-intake-requests"),
        handler=on_request,
        retries=rt.settings.dlq_retries,
    )
