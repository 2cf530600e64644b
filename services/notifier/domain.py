"""Send an email for a SendEmail command, once, and record the outcome in the audit trail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
import asyncpg

from services.notifier import store
from services.notifier.templates import render
from shared.events import Actor, Envelope, make_event
from shared.events.notifications import NotificationFailed, NotificationSent, SendEmail
from shared.events.topics import AUDIT

ACTOR = Actor(kind="service", id="notifier")
Emit = Callable[[str, Envelope], Awaitable[None]]


@dataclass
class NotifierDeps:
    pool: asyncpg.Pool
    emit: Emit
    smtp_host: str
    smtp_port: int
    mail_from: str
    timeout: float = 15.0


def build_message(env: Envelope, cmd: SendEmail, mail_from: str) -> EmailMessage:
    rendered = render(cmd.template, cmd.context)
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = cmd.to
    msg["Subject"] = rendered.subject
    # Stable id: a resend after a crash is recognisable as the same message.
    msg["Message-ID"] = f"<{env.event_id}@lethe>"
    if env.job_id:
        msg["X-Lethe-Job"] = str(env.job_id)
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


async def send_email(env: Envelope, deps: NotifierDeps) -> None:
    cmd = env.payload_as(SendEmail)
    if not await store.claim(deps.pool, env.event_id, env.job_id, cmd.template):
        return  # already sent: a redelivery
    message = build_message(env, cmd, deps.mail_from)
    await aiosmtplib.send(
        message, hostname=deps.smtp_host, port=deps.smtp_port, timeout=deps.timeout
    )
    await store.mark(deps.pool, env.event_id, "sent")
    await deps.emit(
        AUDIT,
        make_event(
            NotificationSent(
                template=cmd.template, channel="email", command_event_id=str(env.event_id)
            ),
            actor=ACTOR,
            job_id=env.job_id,
            org_id=env.org_id,
            subject_hash=env.subject_hash,
        ),
    )


async def give_up(env: Envelope, deps: NotifierDeps, error: str) -> None:
    template = str(env.payload.get("template", "?"))
    await store.mark(deps.pool, env.event_id, "failed", error)
    await deps.emit(
        AUDIT,
        make_event(
            NotificationFailed(
                template=template, channel="email", command_event_id=str(env.event_id), error=error
            ),
            actor=ACTOR,
            job_id=env.job_id,
            org_id=env.org_id,
            subject_hash=env.subject_hash,
        ),
    )
