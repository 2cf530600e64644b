"""The OpenDSR callback recorder's subscription, and its dispatcher built for the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import asyncpg
import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from faststream.kafka import KafkaBroker, KafkaRouter

from services.notifier.opendsr.service import CallbackDeps, Dispatcher, enqueue
from shared import netguard, opendsr
from shared.events import Envelope
from shared.events.opendsr import OpenDSRCallbackFailed, OpenDSRCallbackSent
from shared.events.topics import AUDIT, PROGRESS
from shared.messaging import Delivery
from shared.messaging.outputs import Outputs

if TYPE_CHECKING:
    from services.notifier.settings import NotifierSettings

GROUP = "lethe-notifier-opendsr"


class _Runtime(Protocol):
    """What the notifier's runtime offers (the pool is open once the app has started)."""

    settings: NotifierSettings
    pool: asyncpg.Pool


def register(
    parent: KafkaBroker | KafkaRouter,
    rt: _Runtime,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Dispatcher:
    """Add the callback recorder (group `lethe-notifier-opendsr`) to `parent` (the notifier's
    router, or a broker); the dispatcher returned is started and stopped with the app."""
    s = rt.settings
    cache: list[rsa.RSAPrivateKey] = []

    def key() -> rsa.RSAPrivateKey:
        # Loaded on first use: a notifier without OpenDSR configured runs as before, and an
        # OpenDSR callback it cannot sign is retried, then given up with the reason.
        if not cache:
            pem = s.opendsr_signing_key.get_secret_value() if s.opendsr_signing_key else None
            cache.append(opendsr.load_signing_key(pem, s.opendsr_signing_key_file))
        return cache[0]

    delivery = Delivery(horizon_seconds=s.dlq_retry_horizon_seconds)
    router = KafkaRouter(middlewares=[delivery])
    outputs = Outputs(
        router, "notifier-opendsr", {AUDIT: (OpenDSRCallbackSent, OpenDSRCallbackFailed)}
    )

    async def emit(env: Envelope) -> None:
        await outputs.emit(AUDIT, env)

    def deps() -> CallbackDeps:
        return CallbackDeps(
            pool=rt.pool,
            key=key,
            domain=s.opendsr_processor_domain,
            emit=emit,
            timeout=s.opendsr_callback_timeout_seconds,
            deadline=s.opendsr_callback_deadline_seconds,
            max_attempts=s.opendsr_callback_retries,
            backoff=s.opendsr_callback_backoff_seconds,
            max_backoff=s.opendsr_callback_max_backoff_seconds,
            per_endpoint=s.opendsr_callback_per_endpoint,
            policy=netguard.Policy.from_list(s.callback_allowed_networks),
            transport=transport,
        )

    dispatcher = Dispatcher(deps)

    @router.subscriber(PROGRESS, **delivery.consumer(s.group(GROUP), retries=s.dlq_retries))
    async def on_opendsr_progress(env: Envelope) -> None:
        if await enqueue(env, dispatcher.deps):
            dispatcher.wake()

    parent.include_router(router)
    return dispatcher
