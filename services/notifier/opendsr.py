"""OpenDSR status callbacks: on every state change of a job that came in through `/opendsr`,
POST the signed callback body to each of its `status_callback_urls`.

Specification (opengdpr/OpenDSR, specification.md): section 8.5 (every URL, on every state
change, at least once, retried), 8.6 (headers and body), 8.8 (how the controller checks it:
RSA-SHA256 over the raw body, public key from discovery).

Consumes `lethe.progress.v1` in its own group `lethe-notifier-opendsr`. Each (progress event,
URL) is claimed in `lethe.opendsr_callbacks` before posting and marked sent after a 2xx, so a
redelivered event never posts again once sent; a failed URL is retried (with backoff) without
re-posting the ones that succeeded. After the last attempt the event is dead-lettered and
each unsent URL recorded as failed, with an `OpenDSRCallbackFailed` audit event.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import asyncpg
import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from faststream.kafka import KafkaBroker

from services.intake import opendsr
from shared.events import Actor, Envelope, make_event
from shared.events.opendsr import OpenDSRCallbackFailed, OpenDSRCallbackSent
from shared.events.topics import AUDIT, PROGRESS
from shared.kafka import publish_event, subscribe

if TYPE_CHECKING:
    from services.notifier.settings import NotifierSettings

GROUP = "lethe-notifier-opendsr"
ACTOR = Actor(kind="service", id="notifier")
Emit = Callable[[Envelope], Awaitable[None]]


class CallbackFailed(RuntimeError):
    """Some callback URLs did not answer 2xx (named by host, never by full URL)."""


@dataclass
class CallbackDeps:
    pool: asyncpg.Pool
    key: Callable[[], rsa.RSAPrivateKey]
    domain: str
    timeout: float
    emit: Emit
    transport: httpx.AsyncBaseTransport | None = None  # tests


@dataclass(frozen=True)
class Target:
    org_id: str
    subject_request_id: str
    api_version: str | None
    urls: list[str]
    expected_completion_time: Any


def url_ref(url: str) -> tuple[str, str]:
    return urlsplit(url).hostname or "-", hashlib.sha256(url.encode()).hexdigest()[:16]


# --- SQL ---------------------------------------------------------------------------------


async def target(pool: asyncpg.Pool, job_id: uuid.UUID) -> Target | None:
    r = await pool.fetchrow(
        "SELECT o.org_id, o.subject_request_id, o.api_version, o.status_callback_urls, "
        "coalesce(j.extended_due_at, j.due_at) AS due FROM lethe.opendsr_requests o "
        "JOIN lethe.jobs j ON j.id = o.job_id WHERE o.job_id = $1",
        job_id,
    )
    if r is None:
        return None
    return Target(
        r["org_id"],
        str(r["subject_request_id"]),
        r["api_version"],
        list(r["status_callback_urls"]),
        r["due"],
    )


async def claim(
    pool: asyncpg.Pool, event_id: uuid.UUID, url: str, job_id: uuid.UUID, request_status: str
) -> bool:
    """True when this (event, URL) still needs posting: first time, or after a failure."""
    status = await pool.fetchval(
        "INSERT INTO lethe.opendsr_callbacks (event_id, url, job_id, request_status, status, "
        "attempts) VALUES ($1, $2, $3, $4, 'sending', 1) ON CONFLICT (event_id, url) DO UPDATE "
        "SET attempts = lethe.opendsr_callbacks.attempts + 1, status = 'sending' "
        "WHERE lethe.opendsr_callbacks.status <> 'sent' RETURNING status",
        event_id,
        url,
        job_id,
        request_status,
    )
    return status is not None


async def mark(
    pool: asyncpg.Pool,
    event_id: uuid.UUID,
    url: str,
    status: str,
    http_status: int | None,
    error: str | None = None,
) -> None:
    await pool.execute(
        "UPDATE lethe.opendsr_callbacks SET status = $3, http_status = $4, last_error = $5, "
        "sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END "
        "WHERE event_id = $1 AND url = $2",
        event_id,
        url,
        status,
        http_status,
        error,
    )


async def fail_unsent(pool: asyncpg.Pool, event_id: uuid.UUID, error: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "UPDATE lethe.opendsr_callbacks SET status = 'failed', last_error = $2 "
            "WHERE event_id = $1 AND status <> 'sent' RETURNING url, request_status",
            event_id,
            error,
        )
    )


# --- the sender ----------------------------------------------------------------------------


def _audit(env: Envelope, payload: OpenDSRCallbackSent | OpenDSRCallbackFailed) -> Envelope:
    return make_event(
        payload, actor=ACTOR, job_id=env.job_id, org_id=env.org_id, subject_hash=env.subject_hash
    )


async def send_callbacks(env: Envelope, deps: CallbackDeps) -> None:
    """Section 8.5: one signed POST per URL for this state change of an OpenDSR job."""
    if env.job_id is None or not opendsr.status_changes(env.type):
        return
    job_status = opendsr.status_after(env.type, env.payload)
    found = await target(deps.pool, env.job_id)
    if job_status is None or found is None or not found.urls:
        return
    done = env.payload.get("done")
    link = env.payload.get("link")
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
    failures: list[str] = []
    async with httpx.AsyncClient(
        timeout=deps.timeout, follow_redirects=False, transport=deps.transport
    ) as http:
        for url in found.urls:
            if not await claim(deps.pool, env.event_id, url, env.job_id, request_status):
                continue  # already delivered: a redelivered event
            body = opendsr.dumps(opendsr.callback_body(facts, url))
            headers = opendsr.signed_headers(deps.key(), deps.domain, body)
            headers["Lethe-Event-Id"] = str(env.event_id)  # stable across retries
            host, digest = url_ref(url)
            code: int | None = None
            try:
                r = await http.post(url, content=body, headers=headers)
                code = r.status_code
                r.raise_for_status()
            except httpx.HTTPError as exc:
                error = f"callback to {host} ({digest}): {type(exc).__name__}"
                error += f" {code}" if code else ""
                await mark(deps.pool, env.event_id, url, "failed", code, error)
                failures.append(error)
                continue
            await mark(deps.pool, env.event_id, url, "sent", code)
            await deps.emit(
                _audit(
                    env,
                    OpenDSRCallbackSent(
                        progress_event_id=str(env.event_id),
                        subject_request_id=found.subject_request_id,
                        request_status=request_status,
                        url_host=host,
                        url_hash=digest,
                        http_status=code,
                    ),
                )
            )
    if failures:
        raise CallbackFailed("; ".join(failures))


async def give_up(env: Envelope, deps: CallbackDeps, error: str) -> None:
    """After the last attempt: each unsent URL is failed, with an audit event."""
    found = await target(deps.pool, env.job_id) if env.job_id else None
    for r in await fail_unsent(deps.pool, env.event_id, error[:500]):
        host, digest = url_ref(r["url"])
        await deps.emit(
            _audit(
                env,
                OpenDSRCallbackFailed(
                    progress_event_id=str(env.event_id),
                    subject_request_id=found.subject_request_id if found else "-",
                    request_status=r["request_status"],
                    url_host=host,
                    url_hash=digest,
                    error=error[:500],
                ),
            )
        )


class _Runtime(Protocol):
    """What the notifier's runtime offers (the pool is open once the app has started)."""

    settings: NotifierSettings
    pool: asyncpg.Pool


def register(
    broker: KafkaBroker, rt: _Runtime, *, transport: httpx.AsyncBaseTransport | None = None
) -> None:
    """Subscribe the callback sender (group `lethe-notifier-opendsr`) on `broker`."""
    s = rt.settings
    cache: list[rsa.RSAPrivateKey] = []

    def key() -> rsa.RSAPrivateKey:
        # Loaded on first use: a notifier without OpenDSR configured runs as before, and an
        # OpenDSR job it cannot sign for is retried, then dead-lettered with the reason.
        if not cache:
            pem = s.opendsr_signing_key.get_secret_value() if s.opendsr_signing_key else None
            cache.append(opendsr.load_signing_key(pem, s.opendsr_signing_key_file))
        return cache[0]

    async def emit(env: Envelope) -> None:
        await publish_event(broker, AUDIT, env)

    def deps() -> CallbackDeps:
        return CallbackDeps(
            pool=rt.pool,
            key=key,
            domain=s.opendsr_processor_domain,
            timeout=s.opendsr_callback_timeout_seconds,
            emit=emit,
            transport=transport,
        )

    async def on_progress(env: Envelope) -> None:
        await send_callbacks(env, deps())

    async def on_give_up(env: Envelope, error: str) -> None:
        await give_up(env, deps(), error)

    subscribe(
        broker,
        PROGRESS,
        group_id=GROUP,
        handler=on_progress,
        retries=s.opendsr_callback_retries,
        backoff_seconds=s.opendsr_callback_backoff_seconds,
        on_give_up=on_give_up,
    )
