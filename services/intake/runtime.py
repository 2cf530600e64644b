"""What a running intake holds: settings, pool, S3, relay, scheduler, limiters, OpenDSR key.

Opened in the app's lifespan (never at import). The HTTP routes reach it through
`services.intake.http.deps`, the Kafka handlers through `handlers.build_router`; both hand the
service layer a unit of work from `uow()`, which wakes the relay when it commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric import rsa
from opentelemetry.trace import TracerProvider

from services.intake import opendsr
from services.intake.auth import RateLimiter
from services.intake.limits import AuthFailureTally, StreamSlots
from services.intake.relay import OutboxRelay
from services.intake.scheduler import Scheduler
from services.intake.service import audit
from services.intake.service.privacy import CentrePolicy
from services.intake.service.requests import SubmitPolicy
from services.intake.service.uow import UnitOfWork
from services.intake.settings import IntakeSettings
from shared.datamap import DataMap
from shared.db import create_pool
from shared.health import Ops
from shared.kafka import service_broker
from shared.startup import StartupError, load_checked_datamap
from shared.storage import s3_client

log = logging.getLogger(__name__)


class Runtime:
    datamap: DataMap
    pool: asyncpg.Pool
    s3: Any
    relay: OutboxRelay
    ops: Ops
    scheduler: Scheduler | None = None
    # OpenDSR: the signing key and its X.509 certificate, checked at start (None: not set up).
    opendsr_key: rsa.RSAPrivateKey | None = None
    opendsr_certificate: bytes | None = None

    def __init__(
        self,
        settings: IntakeSettings,
        tracer_provider: TracerProvider,
        datamap: DataMap | None = None,
    ) -> None:
        self.settings = settings
        self._datamap = datamap  # already checked against the database (`python -m`)
        self.tracer = tracer_provider.get_tracer("lethe.intake")
        self._stack = AsyncExitStack()
        self.limiter = RateLimiter(settings.submit_rate_per_minute, settings.submit_burst)
        self.streams = StreamSlots(
            {"key": settings.sse_max_per_key, "link": settings.sse_max_per_status_link}
        )
        self.auth_failures = AuthFailureTally(
            settings.auth_failure_window_seconds, settings.auth_failure_max_sources
        )
        self._tally_task: asyncio.Task[None] | None = None
        self.broker = service_broker(settings, "intake", tracer_provider)

    def uow(self) -> UnitOfWork:
        """A unit of work whose outbox rows the relay publishes as soon as it commits."""
        return UnitOfWork(self.pool, self.relay.wake)

    def submit_policy(self) -> SubmitPolicy:
        return SubmitPolicy.from_settings(self.settings)

    def privacy_policy(self) -> CentrePolicy:
        return CentrePolicy.from_settings(self.settings)

    async def open(self) -> None:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _open(self) -> None:
        # The retention categories and the scheduler's retention jobs come from the data map:
        # refuse to start on one that does not fit the live database, like eraser and exporter.
        if self._datamap is None:
            self._datamap, _ = await load_checked_datamap(self.settings)
        self.datamap = self._datamap
        self.opendsr_key, self.opendsr_certificate = opendsr_identity(self.settings)
        self.pool = await create_pool(self.settings.database_url)
        self._stack.push_async_callback(self.pool.close)
        # S3 for export downloads (decrypted on the way out).
        self.s3 = await self._stack.enter_async_context(s3_client(self.settings))
        self.relay = OutboxRelay(
            self.pool, self.broker, self.tracer, poll_seconds=self.settings.outbox_poll_seconds
        )

    async def start_relay(self) -> None:
        self._tally_task = asyncio.create_task(self._audit_auth_failures())
        if self.settings.outbox_relay_enabled:
            await self.relay.start()
        if self.settings.scheduler_enabled:
            s = self.settings
            self.scheduler = Scheduler(
                self.pool,
                self.datamap,
                cron=s.retention_schedule,
                poll_seconds=s.scheduler_poll_seconds,
                reminder_days=s.deadline_reminder_days,
                task_reminder_every=timedelta(hours=s.manual_task_reminder_hours),
                public_mode=s.public_mode,
                public_days=s.public_data_retention_days,
                on_recorded=self.relay.wake,
            )
            await self.scheduler.start()

    async def flush_auth_failures(self, *, everything: bool = False) -> None:
        """The ended windows' refusal counts into the audit trail (`everything`: at shutdown)."""
        tallies = self.auth_failures.closed(everything=everything)
        key = self.settings.subject_hash_key.get_secret_value().encode()
        window = self.settings.auth_failure_window_seconds
        try:
            await audit.failures_counted(self.uow(), tallies, window, key)
        except Exception:  # the database away: the counts wait for the next flush
            log.exception("auth failure counts not written; kept for the next try")
            self.auth_failures.put_back(tallies)

    async def _audit_auth_failures(self) -> None:
        every = min(5.0, self.settings.auth_failure_window_seconds / 2)
        while True:
            await asyncio.sleep(every)
            await self.flush_auth_failures()

    async def close(self) -> None:
        if self._tally_task is not None:
            self._tally_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tally_task
            await self.flush_auth_failures(everything=True)
        if self.scheduler is not None:
            await self.scheduler.stop()
        await self.relay.stop()
        await self._stack.aclose()


def opendsr_identity(s: IntakeSettings) -> tuple[rsa.RSAPrivateKey | None, bytes | None]:
    """The OpenDSR signing key and the certificate published for it; a certificate that is
    not for the key or the domain (or, in production, none) stops intake at start."""
    pem = s.opendsr_signing_key.get_secret_value() if s.opendsr_signing_key else None
    if pem is None and s.opendsr_signing_key_file is None:
        return None, None  # OpenDSR not set up: its routes answer 503 saying so
    try:
        key = opendsr.load_signing_key(pem, s.opendsr_signing_key_file)
        configured = s.opendsr_certificate_file.read_bytes() if s.opendsr_certificate_file else None
        cert = opendsr.processor_certificate(
            key, s.opendsr_processor_domain, configured, development=s.on_dev_keys
        )
    except (opendsr.NotConfigured, OSError, ValueError) as exc:
        raise StartupError(f"OpenDSR: {exc}") from None
    return key, cert
