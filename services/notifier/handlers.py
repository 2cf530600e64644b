"""Thin handlers for the notifier.

Two consumer groups: `lethe-notifier` on `lethe.notifications.v1` (emails asked for by the
other services, sent by the consumer) and `lethe-notifier-callbacks` on `lethe.progress.v1`
(a signed webhook per job state change, read straight from the progress topic so no producer
has to ask for it: the consumer only records the deliveries, the webhook dispatcher sends
them); the OpenDSR callback recorder (`opendsr.register`) is a third. Retries with the
notifier's backoff, dead-lettering and the give-up records are `shared.messaging.Delivery`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from faststream.kafka import KafkaRouter

from services.notifier import opendsr, service, webhooks
from shared import netguard
from shared.events import Envelope
from shared.events.notifications import NotificationFailed, NotificationSent
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS
from shared.events.typed import SendEmailEvent
from shared.messaging import Delivery
from shared.messaging.outputs import Outputs

if TYPE_CHECKING:
    from services.notifier.app import Runtime

EMAIL_GROUP = "lethe-notifier"
CALLBACK_GROUP = "lethe-notifier-callbacks"
OUTPUTS = {AUDIT: (NotificationSent, NotificationFailed)}


@dataclass(frozen=True)
class Senders:
    """The dispatchers that send what the consumers record, started and stopped with the app."""

    opendsr: opendsr.Dispatcher
    webhooks: webhooks.Dispatcher

    async def start(self) -> None:
        await self.opendsr.start()
        await self.webhooks.start()

    async def stop(self) -> None:
        await self.webhooks.stop()
        await self.opendsr.stop()


def webhook_deps(rt: Runtime) -> webhooks.WebhookDeps:
    s = rt.settings

    async def emit(env: Envelope) -> None:
        await rt.outputs.emit(AUDIT, env)

    return webhooks.WebhookDeps(
        pool=rt.pool,
        emit=emit,
        timeout=s.webhook_timeout_seconds,
        deadline=s.webhook_retry_horizon_seconds,
        max_attempts=s.notify_retries,
        backoff=s.notify_backoff_seconds,
        max_backoff=s.webhook_max_backoff_seconds,
        per_org=s.webhook_per_org_concurrency,
        policy=netguard.Policy.from_list(s.callback_allowed_networks),
    )


def build_router(rt: Runtime) -> tuple[KafkaRouter, Senders]:
    """The router; the dispatchers (OpenDSR callbacks, webhooks), for the app to start and
    stop."""
    delivery = Delivery(horizon_seconds=rt.settings.dlq_retry_horizon_seconds)
    router = KafkaRouter(middlewares=[delivery])
    rt.outputs = Outputs(router, "notifier", OUTPUTS)

    async def on_email_give_up(env: Envelope, error: str) -> None:
        await service.give_up(env, rt.deps, error, channel="email")

    async def on_callback_give_up(env: Envelope, error: str) -> None:
        await service.give_up(env, rt.deps, error, channel="webhook")

    retries, backoff = rt.settings.notify_retries, rt.settings.notify_backoff_seconds

    @router.subscriber(
        NOTIFICATIONS,
        **delivery.consumer(
            rt.settings.group(EMAIL_GROUP),
            retries=retries,
            backoff_seconds=backoff,
            on_give_up=on_email_give_up,
        ),
    )
    async def on_send_email(event: SendEmailEvent) -> None:
        await service.send_email(event.envelope(), rt.deps)

    hooks = webhooks.Dispatcher(lambda: webhook_deps(rt))

    # Every job state change: the progress topic carries many event types, all enveloped.
    # Only recorded here (one statement), then sent by `hooks`: a slow endpoint never holds
    # the consumer.
    @router.subscriber(
        PROGRESS,
        **delivery.consumer(
            rt.settings.group(CALLBACK_GROUP),
            retries=retries,
            backoff_seconds=backoff,
            on_give_up=on_callback_give_up,
        ),
    )
    async def on_job_state_change(env: Envelope) -> None:
        if await webhooks.enqueue(env, hooks.deps):
            hooks.wake()

    callbacks = opendsr.register(router, rt)  # OpenDSR callbacks: group lethe-notifier-opendsr
    return router, Senders(callbacks, hooks)
