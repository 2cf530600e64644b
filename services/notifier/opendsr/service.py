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
  `OpenDSRCallbackFailed` audit event. Rows are claimed with the notifier's leased claim
  (services/notifier/lease.py), so replicas share the work and a delivery whose sender
  died is sent again after its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from services.notifier import lease, store
from services.notifier.opendsr import domain
from services.notifier.store import Callback
from shared import netguard, opendsr
from shared.events import Envelope
from shared.readmodels.opendsr import target

log = logging.getLogger(__name__)
Emit = Callable[[Envelope], Awaitable[None]]


@dataclass
class CallbackDeps:
    pool: asyncpg.Pool
    key: Callable[[], rsa.RSAPrivateKey]
    domain: str
    emit: Emit
    timeout: float = 10  # one attempt
    deadline: float = 6 * 3600  # a delivery, from the state change to giving up
    max_attempts: int = 12
    backoff: float = 1.0  # first retry delay; doubles on each attempt
    max_backoff: float = 600
    per_endpoint: int = 4
    max_in_flight: int = 64
    poll: float = 1.0
    policy: netguard.Policy = field(default_factory=netguard.Policy)  # what callbacks reach
    transport: httpx.AsyncBaseTransport | None = None  # tests; else the guarded transport

    @property
    def lease(self) -> float:
        """How long a claimed delivery is ours: longer than any attempt can take."""
        return lease.seconds(self.timeout, 30)


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


class Dispatcher:
    """Sends the recorded callbacks off the consumer's path (see the module docstring)."""

    def __init__(self, deps: Callable[[], CallbackDeps]) -> None:
        self._make_deps = deps  # called on first use: the pool opens when the app starts
        self._deps: CallbackDeps | None = None
        self.in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def deps(self) -> CallbackDeps:
        if self._deps is None:
            self._deps = self._make_deps()
        return self._deps

    def wake(self) -> None:
        self._wake.set()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            # Our own limits bound the connections (per endpoint and in flight): a dead
            # endpoint never waits in the client's pool in front of a live one.
            self._http = netguard.guarded_client(self.deps.policy, transport=self.deps.transport)
        return self._http

    async def start(self) -> None:
        self._runner = asyncio.create_task(self._loop(), name="opendsr-callbacks")

    async def stop(self) -> None:
        """Stop sending; what is in flight is abandoned (sent again after its lease)."""
        if self._runner is not None:
            self._runner.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(
            *self._tasks, *([self._runner] if self._runner else []), return_exceptions=True
        )
        self._runner = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                started = await self.dispatch()
            except Exception:  # the database away: try again shortly, rows stay due
                log.exception("OpenDSR callback dispatch failed; retrying")
                started = []
            if not started:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.deps.poll)

    async def dispatch(self) -> list[asyncio.Task[None]]:
        """Claim what is due and start sending it; the tasks started."""
        d = self.deps
        room = d.max_in_flight - len(self._tasks)
        if room <= 0:
            return []
        full = [e for e, n in self.in_flight.items() if n >= d.per_endpoint]
        claimed = await store.claim_callbacks(d.pool, full, room, d.lease)
        started, spare = [], []
        for cb in claimed:
            e = cb.endpoint or "-"
            if self.in_flight.get(e, 0) >= d.per_endpoint:
                spare.append((cb.event_id, cb.url))
                continue
            self.in_flight[e] = self.in_flight.get(e, 0) + 1
            task = asyncio.create_task(self._deliver(cb))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._done, where=e))
            started.append(task)
        if spare:
            await store.release_callbacks(d.pool, spare)
        return started

    def _done(self, task: asyncio.Task[None], *, where: str) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Not recorded (the database away?): the row stays claimed, and is sent again
            # once its lease runs out.
            log.error("OpenDSR callback delivery not recorded: %r", exc)
        self._tasks.discard(task)
        self.in_flight[where] -= 1
        if not self.in_flight[where]:
            del self.in_flight[where]
        self.wake()  # a slot is free, and the job's next callback to that URL may go

    async def _deliver(self, cb: Callback) -> None:
        d = self.deps
        now = datetime.now(UTC)
        left = (cb.deadline_at - now).total_seconds() if cb.deadline_at else d.timeout
        code: int | None = None
        try:
            if left <= 0:
                raise TimeoutError("past the delivery deadline")
            headers = opendsr.signed_headers(d.key(), d.domain, cb.body)
            headers["Lethe-Event-Id"] = str(cb.event_id)  # stable across retries
            limit = min(d.timeout, left)
            r = await netguard.post_within(  # the whole attempt, body included, within it
                self.http, cb.url, limit, content=cb.body, headers=headers, timeout=limit
            )
            code = r.status_code
            r.raise_for_status()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is recorded, then retried or given up
            await self._failed(cb, code, domain.failure(*domain.url_ref(cb.url), exc, code))
            return
        await store.callback_sent(d.pool, cb.event_id, cb.url, code)
        await d.emit(domain.sent_event(cb, code))

    async def _failed(self, cb: Callback, code: int | None, error: str) -> None:
        d = self.deps
        wait = domain.backoff_after(cb.attempts, d.backoff, d.max_backoff)
        retry_at = datetime.now(UTC) + timedelta(seconds=wait)
        why = domain.give_up_reason(cb.attempts, d.max_attempts, retry_at, cb.deadline_at)
        if why is None:
            await store.callback_failed(d.pool, cb.event_id, cb.url, code, error, retry_at)
            return
        error = f"{error}; given up after {cb.attempts} attempt(s), {why}"
        await store.callback_failed(d.pool, cb.event_id, cb.url, code, error, None)
        await d.emit(domain.failed_event(cb, error))
