"""Deliver notifications once per (event, recipient) and record each outcome in the audit
trail: emails for SendEmail commands, signed webhook callbacks for job state changes.

A failure of one recipient does not hold the others back: every pending recipient is tried,
then the handler raises so the consumer retries (with exponential backoff) only the ones not
yet sent. After the last attempt the message is dead-lettered and `give_up` records
NotificationFailed. Errors and audit rows name recipients by kind or keyed hash, never by
address.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import asyncpg
import httpx

from services.notifier import signing, store
from services.notifier.templates import render
from shared import netguard
from shared.events import Actor, Envelope, make_event
from shared.events.envelope import safe_details
from shared.events.notifications import NotificationFailed, NotificationSent, SendEmail
from shared.events.topics import AUDIT

ACTOR = Actor(kind="service", id="notifier")
Emit = Callable[[str, Envelope], Awaitable[None]]

# Progress events that change a job's state, and the state they mean (OpenDSR-like names).
CALLBACK_STATUS: dict[str, str] = {
    "ErasurePlanned": "running",
    "ErasureSoftDeleted": "soft_deleted",
    "PurgeStarted": "purging",
    "JobCompleted": "completed",
    "JobFailed": "failed",
    "SubjectNotFound": "not_found",
    "SubjectAmbiguous": "ambiguous",
    "JobCancelled": "cancelled",
    "JobRestored": "restored",
    "ExportReady": "ready",
    "ExportCompleted": "completed",
}


class DeliveryFailed(RuntimeError):
    """Some recipients could not be reached; the message says how, without addresses."""


@dataclass
class NotifierDeps:
    pool: asyncpg.Pool
    emit: Emit
    smtp_host: str
    smtp_port: int
    mail_from: str
    timeout: float = 15.0
    hash_key: bytes = b""
    requester_templates: frozenset[str] = frozenset()
    owner_templates: frozenset[str] = frozenset()
    http: httpx.AsyncClient | None = None
    webhook_timeout: float = 10.0


def recipient_key(hash_key: bytes, address: str) -> str:
    digest = hmac.new(hash_key, address.strip().lower().encode(), hashlib.sha256).hexdigest()
    return f"owner:{digest[:24]}"


async def recipients(env: Envelope, cmd: SendEmail, deps: NotifierDeps) -> list[tuple[str, str]]:
    """(recipient key, address) for this command: the requester and/or the owners.

    A mail meant for the requester of a job that has none (usual for Kafka requests) goes to
    the organisation's owner contacts instead: nobody is left untold.
    """
    audience = cmd.audience
    to_requester = audience in ("requester", "both") or (
        audience is None and cmd.template in deps.requester_templates
    )
    to_owners = audience in ("owners", "both") or (
        audience is None and cmd.template in deps.owner_templates
    )
    if to_requester and not cmd.to:
        to_owners = True
    found: list[tuple[str, str]] = []
    if to_requester and cmd.to:
        found.append(("requester", cmd.to))
    if to_owners and env.org_id:
        for address in await store.owner_emails(deps.pool, env.org_id):
            if not (cmd.to and address.lower() == cmd.to.lower() and to_requester):
                found.append((recipient_key(deps.hash_key, address), address))
    return found


def build_message(
    env: Envelope, cmd: SendEmail, mail_from: str, to: str, recipient: str = "requester"
) -> EmailMessage:
    rendered = render(cmd.template, cmd.context)
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = to
    msg["Subject"] = rendered.subject
    # Stable id per recipient: a resend after a crash is recognisable as the same message.
    msg["Message-ID"] = f"<{env.event_id}.{recipient.replace(':', '-')}@lethe>"
    if env.job_id:
        msg["X-Lethe-Job"] = str(env.job_id)
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


def _describe(exc: BaseException) -> str:
    """An SMTP/HTTP failure without the addresses some exception texts carry."""
    code = getattr(exc, "code", None) or getattr(exc, "status_code", None)
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
    rule = f" ({exc.rule})" if isinstance(exc, netguard.CallbackRefused) else ""
    return f"{type(exc).__name__}{f' {code}' if code else ''}{rule}"


def _event(env: Envelope, payload: NotificationSent | NotificationFailed) -> Envelope:
    return make_event(
        payload, actor=ACTOR, job_id=env.job_id, org_id=env.org_id, subject_hash=env.subject_hash
    )


async def _deliver(
    env: Envelope,
    deps: NotifierDeps,
    key: str,
    *,
    channel: str,
    template: str,
    label: str,
    lease_seconds: float,
    send: Callable[[], Awaitable[None]],
) -> str | None:
    """One delivery, once: claim it, send it, record it and audit it. The error, if any."""
    claim = await store.claim(
        deps.pool,
        env.event_id,
        key,
        job_id=env.job_id,
        channel=channel,
        template=template,
        lease_seconds=lease_seconds,
    )
    if claim is store.Claim.DONE:
        return None  # already delivered to this recipient: a redelivery
    if claim is store.Claim.BUSY:
        return f"{label}: being sent by another consumer"
    try:
        await send()
    except (aiosmtplib.SMTPException, OSError, httpx.HTTPError) as exc:
        error = f"{label}: {_describe(exc)}"
        await store.mark(deps.pool, env.event_id, key, "failed", error)
        return error
    await store.mark(deps.pool, env.event_id, key, "sent")
    await deps.emit(
        AUDIT,
        _event(
            env,
            NotificationSent(
                template=template,
                channel=channel,
                command_event_id=str(env.event_id),
                recipient=key,
            ),
        ),
    )
    return None


async def send_email(env: Envelope, deps: NotifierDeps) -> None:
    if env.type != SendEmail.event_type:
        return  # the topic carries only commands to us; anything else is not ours
    cmd = env.payload_as(SendEmail)
    render(cmd.template, cmd.context)  # an unknown template fails before anything is sent
    failures: list[str] = []
    for key, address in await recipients(env, cmd, deps):
        message = build_message(env, cmd, deps.mail_from, address, key)

        async def send(message: EmailMessage = message) -> None:
            await aiosmtplib.send(
                message, hostname=deps.smtp_host, port=deps.smtp_port, timeout=deps.timeout
            )

        error = await _deliver(
            env,
            deps,
            key,
            channel="email",
            template=cmd.template,
            label=f"email to {key}",
            lease_seconds=deps.timeout + 5,
            send=send,
        )
        if error:
            failures.append(error)
    if failures:
        raise DeliveryFailed("; ".join(failures))


def callback_body(env: Envelope) -> bytes:
    """What a webhook receives: the job's new state, ids and counts; no personal data."""
    body: dict[str, Any] = {
        "event_id": str(env.event_id),
        "type": env.type,
        "status": CALLBACK_STATUS.get(env.type, env.type),
        "job_id": str(env.job_id) if env.job_id else None,
        "org_id": env.org_id,
        "occurred_at": env.occurred_at.isoformat(),
        "details": safe_details(env),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


async def send_callbacks(env: Envelope, deps: NotifierDeps) -> None:
    """POST a signed status callback to each of the org's webhooks, once per state change.
    The org's webhooks are called at once: the message waits for the slowest one, bounded
    by its deadline, not for the sum of them."""
    if env.type not in CALLBACK_STATUS or not env.org_id:
        return
    hooks = await store.webhooks(deps.pool, env.org_id)
    if not hooks:
        return
    body = callback_body(env)
    errors = await asyncio.gather(*(_send_webhook(env, deps, hook, body) for hook in hooks))
    if failures := [e for e in errors if e]:
        raise DeliveryFailed("; ".join(failures))


async def _send_webhook(
    env: Envelope, deps: NotifierDeps, hook: store.Webhook, body: bytes
) -> str | None:
    http = deps.http
    assert http is not None
    headers = {
        "content-type": "application/json",
        signing.HEADER: signing.sign(hook.secret, body),
        signing.EVENT_HEADER: str(env.event_id),
        "Lethe-Webhook-Id": str(hook.id),
    }

    async def post() -> None:
        # The whole POST within the timeout: a trickling endpoint holds it no longer.
        r = await netguard.post_within(
            http, hook.url, deps.webhook_timeout, content=body, headers=headers
        )
        r.raise_for_status()

    return await _deliver(
        env,
        deps,
        f"webhook:{hook.id}",
        channel="webhook",
        template=env.type,
        label=f"webhook {hook.id}",
        lease_seconds=deps.webhook_timeout + 5,
        send=post,
    )


async def give_up(env: Envelope, deps: NotifierDeps, error: str, *, channel: str) -> None:
    """After the last attempt: every unsent delivery is failed, each with an audit event."""
    template = str(env.payload.get("template", env.type)) if channel == "email" else env.type
    failed = await store.give_up(deps.pool, env.event_id, error[:500])
    for recipient in failed or ["-"]:
        await deps.emit(
            AUDIT,
            _event(
                env,
                NotificationFailed(
                    template=template,
                    channel=channel,
                    command_event_id=str(env.event_id),
                    error=error[:500],
                    recipient=recipient,
                ),
            ),
        )
