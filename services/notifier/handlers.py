"""Thin handlers for the notifier.

Two consumer groups: `lethe-notifier` on `lethe.notifications.v1` (emails asked for by the
other services) and `lethe-notifier-callbacks` on `lethe.progress.v1` (a signed webhook per
job state change, read straight from the progress topic so no producer has to ask for it);
the OpenDSR callback recorder (`opendsr.build_router`) is a third. Retries with the notifier's
backoff, dead-lettering and the give-up records are `shared.messaging.Delivery`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.kafka import KafkaRouter

from services.notifier import opendsr, service
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


def build_router(rt: Runtime) -> tuple[KafkaRouter, opendsr.Dispatcher]:
    """The router; the OpenDSR callback dispatcher, for the app to start and stop."""
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

    # Every job state change: the progress topic carries many event types, all enveloped.
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
        await service.send_callbacks(env, rt.deps)

    dispatcher = opendsr.register(router, rt)  # OpenDSR callbacks: group lethe-notifier-opendsr
    return router, dispatcher
