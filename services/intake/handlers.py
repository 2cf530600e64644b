"""Intake's Kafka handlers: job state follows the progress topic; upstream requests come in
on the request topic (bad ones answered with RequestRejected, carrying the original key)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from faststream.kafka import KafkaBroker

from services.intake import domain, store
from shared.events import Actor, Envelope, make_event
from shared.events.requests import RequestRejected
from shared.events.topics import PROGRESS, REQUESTS, REQUESTS_REJECTED
from shared.kafka import current_trace, publish_event, subscribe, subscribe_raw

if TYPE_CHECKING:
    from services.intake.app import Runtime


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
        parsed = domain.parse_upstream(raw)
        if isinstance(parsed, domain.Rejection):
            await reject(key, parsed, None)
            return
        msg, req = parsed
        org = await store.get_org(rt.pool, msg.org_id)
        if org is None:
            await reject(
                key,
                domain.Rejection(
                    f"org_id: unknown organisation {msg.org_id!r}",
                    ["org_id: unknown organisation"],
                    req.request_id,
                ),
                None,
            )
            return
        who = domain.upstream_caller(
            org["id"], org["name"], org["recovery_window_days"], msg.source
        )
        settings = rt.settings
        try:
            job = domain.plan_job(
                req,
                who,
                received_at=datetime.now(UTC),
                hash_key=settings.subject_hash_key.get_secret_value().encode(),
                holidays=tuple(settings.business_holidays),
                links=settings.status_links(),
                channel="kafka",
                trace=current_trace(),
            )
        except domain.Refused as exc:
            await reject(key, domain.Rejection(exc.reason, [exc.reason], req.request_id), org["id"])
            return
        row, created = await store.insert_job(rt.pool, job)
        if not created and row["request_fingerprint"] != job.fingerprint:
            await reject(
                key,
                domain.Rejection(
                    f"request_id: {req.request_id!r} was already used for a different request",
                    ["request_id: already used for a different request"],
                    req.request_id,
                ),
                org["id"],
            )
            return
        rt.relay.wake()

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
