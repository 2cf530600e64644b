"""Webhooks, the I/O: record each (progress event, webhook) as pending, then send what is due
off the consumer's path, fairly across organisations, so one tenant's slow or dead endpoint
delays only that tenant's webhooks.

- `enqueue` (the consumer, group `lethe-notifier-callbacks` on `lethe.progress.v1`) only
  records one pending delivery per active webhook of the organisation in `lethe.deliveries`,
  with its body, in one statement: it never waits on an endpoint. A redelivered event
  records nothing new.
- The `Dispatcher` sends what is due, each delivery in its own task, at most `per_org` at a
  time per organisation and round-robin across organisations, signed afresh per attempt,
  each attempt within the webhook timeout and the delivery's deadline. One job's webhooks to
  one endpoint go in order. A failure is retried with backoff; out of attempts or past the
  deadline it is `failed` (the error's kind, never the URL), with a `NotificationFailed`
  audit event, as a `NotificationSent` one records a delivery. The claiming, the slots and the
  retries are the notifier's dispatcher (services/notifier/dispatch.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.notifier import dispatch
from services.notifier import domain as notifier_domain
from services.notifier.webhooks import domain, store
from services.notifier.webhooks.store import Queued
from shared.events import Envelope


@dataclass(kw_only=True)
class WebhookDeps(dispatch.QueueDeps):
    per_org: int = 2


async def enqueue(env: Envelope, deps: WebhookDeps) -> int:
    """One pending delivery per webhook of the organisation for this state change; how many
    were new."""
    if not notifier_domain.needs_callback(env):
        return 0
    assert env.org_id is not None
    return await store.record(
        deps.pool,
        env.event_id,
        org_id=env.org_id,
        job_id=env.job_id,
        subject_hash=env.subject_hash,
        template=env.type,
        body=notifier_domain.callback_body(env),
        deadline_at=datetime.now(UTC) + timedelta(seconds=deps.deadline),
    )


class Dispatcher(dispatch.Dispatcher[Queued, WebhookDeps]):
    """Sends the recorded webhooks, isolated per organisation (see the module docstring)."""

    name = "webhooks"

    @property
    def per_key(self) -> int:
        return self.deps.per_org

    def key(self, row: Queued) -> str:
        return row.org_id

    async def claim(self, room: int) -> list[Queued]:
        d = self.deps
        return await store.claim(d.pool, self.in_flight, d.per_org, room, d.lease)

    async def release(self, rows: list[Queued]) -> None:
        await store.release(self.deps.pool, rows)

    async def deliver(self, row: Queued) -> None:
        d, url, secret = self.deps, row.url, row.secret
        if url is None or secret is None:  # nowhere to send it any more
            await self._given_up(row, None, domain.removed(row))
            return

        def headers() -> dict[str, str]:
            return notifier_domain.webhook_headers(secret, row.hook_id, row.event_id, row.body)

        code, exc = await self.attempt(url, row.body, headers, row.deadline_at)
        if exc is not None:
            error = domain.failure(row, exc)
            retry_at, why = d.retry_at(row.attempts, row.deadline_at)
            if why is None:
                await store.failed(d.pool, row, code, error, retry_at)
            else:
                error = f"{error}; given up after {row.attempts} attempt(s), {why}"
                await self._given_up(row, code, error)
            return
        assert code is not None
        await store.sent(d.pool, row, code)
        await d.emit(domain.sent_event(row))

    async def _given_up(self, row: Queued, code: int | None, error: str) -> None:
        await store.failed(self.deps.pool, row, code, error, None)
        await self.deps.emit(domain.failed_event(row, error))
