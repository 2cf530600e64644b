"""OpenDSR status callbacks, the I/O: record each (progress event, URL) as pending, then
send what is due off the consumer's path, so one slow or dead controller delays only its
own callbacks.

- `enqueue` (the consumer, group `lethe-notifier-opendsr` on `lethe.progress.v1`) only
  records each (event, URL) in `lethe.opendsr_callbacks` as `pending`, with its body: it
  never waits on a controller. A redelivered event records nothing new.
- The `Dispatcher` sends what is due, each delivery in its own task, at most
  `per_endpoint` at a time per endpoint (scheme://host:port), each attempt bounded by the
  attempt timeout and by the delivery's total deadline. A job's callbacks to one URL go in
  order (the next waits until the previous is sent or given up). A failure is retried with
  backoff; out of attempts or past the deadline it is `failed`, with an
  `OpenDSRCallbackFailed` audit event. The claiming, the slots and the retries are the
  notifier's dispatcher (services/notifier/dispatch.py), shared with webhooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import rsa

from services.notifier import dispatch, store
from services.notifier.opendsr import domain
from services.notifier.store import Callback
from shared import opendsr
from shared.events import Envelope
from shared.readmodels.opendsr import target


@dataclass(kw_only=True)
class CallbackDeps(dispatch.QueueDeps):
    key: Callable[[], rsa.RSAPrivateKey]
    domain: str
    per_endpoint: int = 4


async def enqueue(env: Envelope, deps: CallbackDeps) -> int:
    """Section 8.5: one pending callback per URL for this state change of an OpenDSR job;
    how many were new (a redelivered event adds none)."""
    status = domain.job_status(env)
    if status is None or env.job_id is None:
        return 0
    found = await target(deps.pool, env.job_id)
    if found is None or not found.urls:
        return 0
    deadline = datetime.now(UTC) + timedelta(seconds=deps.deadline)
    return await store.record_callbacks(deps.pool, domain.new_rows(env, found, status, deadline))


class Dispatcher(dispatch.Dispatcher[Callback, CallbackDeps]):
    """Sends the recorded callbacks off the consumer's path, isolated per endpoint
    (scheme://host:port); see the module docstring."""

    name = "opendsr-callbacks"

    @property
    def per_key(self) -> int:
        return self.deps.per_endpoint

    def key(self, row: Callback) -> str:
        return row.endpoint or "-"

    async def claim(self, room: int) -> list[Callback]:
        d = self.deps
        full = [e for e, n in self.in_flight.items() if n >= d.per_endpoint]
        return await store.claim_callbacks(d.pool, full, room, d.lease)

    async def release(self, rows: list[Callback]) -> None:
        await store.release_callbacks(self.deps.pool, [(cb.event_id, cb.url) for cb in rows])

    async def deliver(self, row: Callback) -> None:
        d, cb = self.deps, row

        def headers() -> dict[str, str]:
            signed = opendsr.signed_headers(d.key(), d.domain, cb.body)
            signed["Lethe-Event-Id"] = str(cb.event_id)  # stable across retries
            return signed

        code, exc = await self.attempt(cb.url, cb.body, headers, cb.deadline_at)
        if exc is not None:
            await self._failed(cb, code, domain.failure(*domain.url_ref(cb.url), exc, code))
            return
        assert code is not None
        await store.callback_sent(d.pool, cb.event_id, cb.url, code)
        await d.emit(domain.sent_event(cb, code))

    async def _failed(self, cb: Callback, code: int | None, error: str) -> None:
        d = self.deps
        retry_at, why = d.retry_at(cb.attempts, cb.deadline_at)
        if why is None:
            await store.callback_failed(d.pool, cb.event_id, cb.url, code, error, retry_at)
            return
        error = f"{error}; given up after {cb.attempts} attempt(s), {why}"
        await store.callback_failed(d.pool, cb.event_id, cb.url, code, error, None)
        await d.emit(domain.failed_event(cb, error))
