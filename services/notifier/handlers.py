"""Thin handlers for the notifier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.kafka import KafkaBroker

from services.notifier import domain
from shared.events import Envelope
from shared.events.topics import NOTIFICATIONS
from shared.kafka import publish_event, subscribe

if TYPE_CHECKING:
    from services.notifier.app import Runtime


def register(broker: KafkaBroker, rt: Runtime) -> None:
    async def emit(topic: str, env: Envelope) -> None:
        await publish_event(broker, topic, env)

    def deps() -> domain.NotifierDeps:
        s = rt.settings
        return domain.NotifierDeps(
            pool=rt.pool,
            emit=emit,
            smtp_host=s.smtp_host,
            smtp_port=s.smtp_port,
            mail_from=s.mail_from,
            timeout=s.smtp_timeout_seconds,
        )

    async def on_send_email(env: Envelope) -> None:
        await domain.send_email(env, deps())

    async def on_give_up(env: Envelope, error: str) -> None:
        await domain.give_up(env, deps(), error)

    subscribe(
        broker,
        NOTIFICATIONS,
        group_id="lethe-notifier",
        handler=on_send_email,
        retries=rt.settings.dlq_retries,
        on_give_up=on_give_up,
    )
