"""Deliver emails once per (event, recipient) and record each outcome in the audit trail.
(Webhooks, recorded in the same table, are sent by their dispatcher: webhooks/.)

A failure of one recipient does not hold the others back: every pending recipient is tried,
then the handler raises so the consumer retries (with exponential backoff) only the ones not
yet sent. After the last attempt the message is dead-lettered and `give_up` records
NotificationFailed. Errors and audit rows name recipients by kind or keyed hash, never by
address. Each delivery is claimed with a lease (services/notifier/lease.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
import asyncpg
import httpx

from services.notifier import domain, lease, store
from services.notifier.domain import DeliveryFailed
from services.notifier.templates import render
from shared.events import Envelope
from shared.events.notifications import SendEmail
from shared.events.topics import AUDIT
from shared.readmodels import bulk

Emit = Callable[[str, Envelope], Awaitable[None]]


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
    code_key: bytes = b""  # opens the privacy centre's sealed codes (shared/privacy_codes.py)


async def recipients(env: Envelope, cmd: SendEmail, deps: NotifierDeps) -> list[tuple[str, str]]:
    """(recipient key, address) for this command: the requester and/or the owners."""
    to_requester, to_owners = domain.audiences(cmd, deps.requester_templates, deps.owner_templates)
    owners = []
    if to_owners and env.org_id:
        owners = await store.owner_emails(deps.pool, env.org_id)
    return domain.recipients(cmd, to_requester, owners, deps.hash_key)


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
    if claim is lease.Claim.DONE:
        return None  # already delivered to this recipient: a redelivery
    if claim is lease.Claim.BUSY:
        return f"{label}: being sent by another consumer"
    try:
        await send()
    except (aiosmtplib.SMTPException, OSError, httpx.HTTPError) as exc:
        error = f"{label}: {domain.describe(exc)}"
        await store.mark(deps.pool, env.event_id, key, "failed", error)
        return error
    await store.mark(deps.pool, env.event_id, key, "sent")
    await deps.emit(AUDIT, domain.sent_event(env, template, channel, key))
    return None


async def send_email(env: Envelope, deps: NotifierDeps) -> None:
    if env.type != SendEmail.event_type:
        return  # the topic carries only commands to us; anything else is not ours
    cmd = domain.opened(env.payload_as(SendEmail), deps.code_key)
    render(cmd.template, cmd.context)  # an unknown template fails before anything is sent
    if await bulk.quiet(deps.pool, env.job_id, cmd.template):
        return  # one job of a bulk request: its requester gets the one summary instead
    failures: list[str] = []
    for key, address in await recipients(env, cmd, deps):
        message = domain.build_message(env, cmd, deps.mail_from, address, key)

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
            lease_seconds=lease.seconds(deps.timeout, 5),
            send=send,
        )
        if error:
            failures.append(error)
    if failures:
        raise DeliveryFailed("; ".join(failures))


async def give_up(env: Envelope, deps: NotifierDeps, error: str, *, channel: str) -> None:
    """After the last attempt: every unsent delivery is failed, each with an audit event
    (for webhooks: the state change could not be recorded at all)."""
    failed = await store.give_up(deps.pool, env.event_id, error[:500])
    for audit in domain.given_up_events(env, failed, error, channel=channel):
        await deps.emit(AUDIT, audit)
