"""OpenDSR status callbacks: on every state change of a job that came in through `/opendsr`,
POST the signed callback body to each of its `status_callback_urls`.

Specification (opengdpr/OpenDSR, specification.md): section 8.5 (every URL, on every state
change, at least once, retried), 8.6 (headers and body), 8.8 (how the controller checks it:
RSA-SHA256 over the raw body, public key from discovery).

Two halves, so one slow or dead controller delays only its own callbacks:

- The consumer (group `lethe-notifier-opendsr` on `lethe.progress.v1`) only records each
  (progress event, URL) in `lethe.opendsr_callbacks` as `pending`, with its body, and commits:
  it never waits on a controller. A redelivered event records nothing new.
- The `Dispatcher` sends what is due, each delivery in its own task, at most
  `per_endpoint` at a time per endpoint (scheme://host:port), each attempt bounded by the
  attempt timeout and by the delivery's total deadline. A job's callbacks to one URL go in
  order (the next waits until the previous is sent or given up). A failure is retried with
  backoff; out of attempts or past the deadline it is `failed`, with an
  `OpenDSRCallbackFailed` audit event. Rows are claimed with a lease (`FOR UPDATE SKIP
  LOCKED`), so replicas share the work and a delivery whose sender died is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import asyncpg
import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from faststream.kafka import KafkaBroker, KafkaRouter

from shared import opendsr
from shared.events import Actor, Envelope, make_event
from shared.events.opendsr import OpenDSRCallbackFailed, OpenDSRCallbackSent
from shared.events.topics import AUDIT, PROGRESS
from shared.messaging import Delivery
from shared.messaging.outputs import Outputs
from shared.readmodels.opendsr import target

if TYPE_CHECKING:
    from services.notifier.settings import NotifierSettings

log = logging.getLogger(__name__)
GROUP = "lethe-notifier-opendsr"
ACTOR = Actor(kind="service", id="notifier")
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
    transport: httpx.AsyncBaseTransport | None = None  # tests

    @property
    def lease(self) -> float:
        """How long a claimed delivery is ours: longer than any attempt can take."""
        return self.timeout + 30


def url_ref(url: str) -> tuple[str, str]:
    return urlsplit(url).hostname or "-", hashlib.sha256(url.encode()).hexdigest()[:16]


def endpoint(url: str) -> str:
    """What deliveries are isolated by: scheme, host and port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def backoff_after(attempts: int, deps: CallbackDeps) -> float:
    return float(min(deps.max_backoff, deps.backoff * 2 ** max(0, attempts - 1)))


# --- SQL ---------------------------------------------------------------------------------


_COLUMNS = (
    "event_id, url, job_id, org_id, subject_hash, subject_request_id, request_status, "
    "endpoint, body, attempts, deadline_at"
)


async def claim_due(
    pool: asyncpg.Pool, full: list[str], limit: int, lease: float
) -> list[asyncpg.Record]:
    """Take up to `limit` due deliveries, none to an endpoint in `full`, none behind an
    unfinished earlier callback of the same job to the same URL."""
    return list(
        await pool.fetch(
            "UPDATE lethe.opendsr_callbacks c SET status = 'sending', claimed_at = now(), "
            "attempts = c.attempts + 1 WHERE (c.event_id, c.url) IN ("
            " SELECT d.event_id, d.url FROM lethe.opendsr_callbacks d"
            " WHERE ((d.status = 'pending' AND d.next_attempt_at <= now())"
            "   OR (d.status = 'sending' AND d.claimed_at < now() - make_interval(secs => $3)))"
            " AND d.body IS NOT NULL AND NOT (d.endpoint = ANY($1::text[]))"
            " AND NOT EXISTS (SELECT 1 FROM lethe.opendsr_callbacks e WHERE e.job_id = d.job_id"
            "   AND e.url = d.url AND e.seq < d.seq AND e.status IN ('pending', 'sending'))"
            " ORDER BY d.next_attempt_at, d.seq LIMIT $2 FOR UPDATE SKIP LOCKED"
            f") RETURNING {_COLUMNS}",
            full,
            limit,
            lease,
        )
    )


async def release(pool: asyncpg.Pool, keys: list[tuple[uuid.UUID, str]]) -> None:
    """Claimed but not started (its endpoint had no free slot): back to pending, as it was."""
    await pool.executemany(
        "UPDATE lethe.opendsr_callbacks SET status = 'pending', attempts = attempts - 1, "
        "claimed_at = NULL WHERE event_id = $1 AND url = $2 AND status = 'sending'",
        keys,
    )


async def mark_sent(pool: asyncpg.Pool, event_id: uuid.UUID, url: str, code: int) -> None:
    await pool.execute(
        "UPDATE lethe.opendsr_callbacks SET status = 'sent', http_status = $3, "
        "last_error = NULL, sent_at = now(), claimed_at = NULL "
        "WHERE event_id = $1 AND url = $2",
        event_id,
        url,
        code,
    )


async def mark_failed(
    pool: asyncpg.Pool,
    event_id: uuid.UUID,
    url: str,
    code: int | None,
    error: str,
    retry_at: datetime | None,
) -> None:
    """`retry_at`: pending again from then; None: given up."""
    await pool.execute(
        "UPDATE lethe.opendsr_callbacks SET status = CASE WHEN $5::timestamptz IS NULL "
        "THEN 'failed' ELSE 'pending' END, http_status = $3, last_error = $4, "
        "next_attempt_at = coalesce($5, next_attempt_at), claimed_at = NULL "
        "WHERE event_id = $1 AND url = $2",
        event_id,
        url,
        code,
        error[:500],
        retry_at,
    )


# --- the consumer: record, never send ------------------------------------------------------


async def enqueue(env: Envelope, deps: CallbackDeps) -> int:
    """Section 8.5: one pending callback per URL for this state change of an OpenDSR job;
    how many were new (a redelivered event adds none)."""
    if env.job_id is None or not opendsr.status_changes(env.type):
        return 0
    job_status = opendsr.status_after(env.type, env.payload)
    found = await target(deps.pool, env.job_id)
    if job_status is None or found is None or not found.urls:
        return 0
    done = env.payload.get("done")
    link = env.payload.get("results_url")  # the controller's export link (ExportReady)
    facts = opendsr.JobFacts(
        controller_id=found.org_id,
        subject_request_id=found.subject_request_id,
        job_status=job_status,
        expected_completion_time=found.expected_completion_time,
        api_version=found.api_version,
        results_count=done if isinstance(done, int) else None,
        results_url=link if isinstance(link, str) else None,
    )
    request_status = opendsr.request_status(job_status)
    deadline = datetime.now(UTC) + timedelta(seconds=deps.deadline)
    rows = [
        (
            env.event_id,
            url,
            env.job_id,
            found.org_id,
            env.subject_hash,
            found.subject_request_id,
            request_status,
            endpoint(url),
            opendsr.dumps(opendsr.callback_body(facts, url)),
            deadline,
        )
        for url in found.urls
    ]
    async with deps.pool.acquire() as conn:
        new = await conn.fetch(
            "INSERT INTO lethe.opendsr_callbacks (event_id, url, job_id, org_id, subject_hash, "
            "subject_request_id, request_status, endpoint, body, deadline_at, status, attempts) "
            "SELECT r.*, 'pending', 0 FROM unnest($1::uuid[], $2::text[], $3::uuid[], "
            "$4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[], "
            "$10::timestamptz[]) AS r ON CONFLICT (event_id, url) DO UPDATE SET "
            # A row from before the queue (no body) and not sent: taken over, sent from here.
            "org_id = EXCLUDED.org_id, subject_hash = EXCLUDED.subject_hash, "
            "subject_request_id = EXCLUDED.subject_request_id, endpoint = EXCLUDED.endpoint, "
            "body = EXCLUDED.body, deadline_at = EXCLUDED.deadline_at, status = 'pending', "
            "next_attempt_at = now(), claimed_at = NULL WHERE lethe.opendsr_callbacks.body IS "
            "NULL AND lethe.opendsr_callbacks.status <> 'sent' RETURNING url",
            *(list(col) for col in zip(*rows, strict=True)),
        )
    return len(new)


# --- the dispatcher: send, per endpoint -------------------------------------------------------


def _audit(row: asyncpg.Record, payload: OpenDSRCallbackSent | OpenDSRCallbackFailed) -> Envelope:
    return make_event(
        payload,
        actor=ACTOR,
        job_id=row["job_id"],
        org_id=row["org_id"],
        subject_hash=row["subject_hash"],
    )


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
            self._http = httpx.AsyncClient(
                follow_redirects=False,
                transport=self.deps.transport,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
            )
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
        rows = await claim_due(d.pool, full, room, d.lease)
        started, spare = [], []
        for row in rows:
            e = row["endpoint"]
            if self.in_flight.get(e, 0) >= d.per_endpoint:
                spare.append((row["event_id"], row["url"]))
                continue
            self.in_flight[e] = self.in_flight.get(e, 0) + 1
            task = asyncio.create_task(self._deliver(row))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._done, where=e))
            started.append(task)
        if spare:
            await release(d.pool, spare)
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

    async def _deliver(self, row: asyncpg.Record) -> None:
        d = self.deps
        event_id, url = row["event_id"], row["url"]
        host, digest = url_ref(url)
        now = datetime.now(UTC)
        left = (row["deadline_at"] - now).total_seconds() if row["deadline_at"] else d.timeout
        code: int | None = None
        try:
            if left <= 0:
                raise TimeoutError("past the delivery deadline")
            body = bytes(row["body"])
            headers = opendsr.signed_headers(d.key(), d.domain, body)
            headers["Lethe-Event-Id"] = str(event_id)  # stable across retries
            r = await self.http.post(
                url, content=body, headers=headers, timeout=min(d.timeout, left)
            )
            code = r.status_code
            r.raise_for_status()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is recorded, then retried or given up
            error = f"callback to {host} ({digest}): {type(exc).__name__}"
            error += f" {code}" if code else ""
            await self._failed(row, code, error)
            return
        await mark_sent(d.pool, event_id, url, code)
        await d.emit(
            _audit(
                row,
                OpenDSRCallbackSent(
                    progress_event_id=str(event_id),
                    subject_request_id=row["subject_request_id"] or "-",
                    request_status=row["request_status"],
                    url_host=host,
                    url_hash=digest,
                    http_status=code,
                ),
            )
        )

    async def _failed(self, row: asyncpg.Record, code: int | None, error: str) -> None:
        d = self.deps
        retry_at = datetime.now(UTC) + timedelta(seconds=backoff_after(row["attempts"], d))
        deadline = row["deadline_at"]
        if row["attempts"] >= d.max_attempts or (deadline is not None and retry_at >= deadline):
            why = "out of attempts" if row["attempts"] >= d.max_attempts else "past its deadline"
            error = f"{error}; given up after {row['attempts']} attempt(s), {why}"
            await mark_failed(d.pool, row["event_id"], row["url"], code, error, None)
            host, digest = url_ref(row["url"])
            await d.emit(
                _audit(
                    row,
                    OpenDSRCallbackFailed(
                        progress_event_id=str(row["event_id"]),
                        subject_request_id=row["subject_request_id"] or "-",
                        request_status=row["request_status"],
                        url_host=host,
                        url_hash=digest,
                        error=error[:500],
                    ),
                )
            )
            return
        await mark_failed(d.pool, row["event_id"], row["url"], code, error, retry_at)


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
            transport=transport,
        )

    dispatcher = Dispatcher(deps)

    @router.subscriber(PROGRESS, **delivery.consumer(s.group(GROUP), retries=s.dlq_retries))
    async def on_opendsr_progress(env: Envelope) -> None:
        if await enqueue(env, dispatcher.deps):
            dispatcher.wake()

    parent.include_router(router)
    return dispatcher
