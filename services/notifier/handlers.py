"""Thin handlers for the notifier.

Two consumer groups: `lethe-notifier` on `lethe.notifications.v1` (emails asked for by the
other services) and `lethe-notifier-callbacks` on `lethe.progress.v1` (a signed webhook per
job state change, read straight from the progress topic so no producer has to ask for it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.kafka import KafkaBroker

from services.notifier import opendsr, service
from shared.events import Envelope
from shared.events.topics import NOTIFICATIONS, PROGRESS
from shared.kafka import subscribe

if TYPE_CHECKING:
    from services.notifier.app import Runtime

EMAIL_GROUP = "lethe-notifier"
CALLBACK_GROUP = "lethe-notifier-callbacks"


def register(broker: KafkaBroker, rt: Runtime) -> opendsr.Dispatcher:
    """The handlers; the OpenDSR callback dispatcher, for the app to start and stop."""

    async def on_send_email(env: Envelope) -> None:
        await service.send_email(env, rt.deps)

    async def on_email_give_up(env: Envelope, error: str) -> None:
        await service.give_up(env, rt.deps, error, channel="email")

    async def on_progress(env: Envelope) -> None:
        await service.send_callbacks(env, rt.deps)

    async def on_callback_give_up(env: Envelope, error: str) -> None:
        await service.give_up(env, rt.deps, error, channel="webhook")

    retries, backoff = rt.settings.notify_retries, rt.settings.notify_backoff_seconds
    subscribe(
        broker,
        NOTIFICATIONS,
        group_id=rt.settings.group(EMAIL_GROUP),
        handler=on_send_email,
        retries=retries,
        backoff_seconds=backoff,
        on_give_up=on_email_give_up,
    )
    subscribe(
        broker,
        PROGRESS,
        group_id=rt.settings.group(CALLBACK_GROUP),
        handler=on_progress,
        retries=retries,
        backoff_seconds=backoff,
        on_give_up=on_callback_give_up,
    )
    return opendsr.register(broker, rt)  # OpenDSR callbacks: group lethe-notifier-opendsr
