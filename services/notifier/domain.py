"""The notifier's decisions, without I/O: who a notice goes to, the email and webhook bodies,
how a failure is described (never with an address), and the audit events. Sending them, with
their claims and records, is `service.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from email.message import EmailMessage
from typing import Any

import httpx

from services.notifier.templates import render
from shared import lifecycle, netguard, signing
from shared.errors import Worded
from shared.events import Actor, Envelope, make_event
from shared.events.envelope import safe_details
from shared.events.notifications import (
    CODE_TEMPLATES,
    NotificationFailed,
    NotificationSent,
    SendEmail,
)
from shared.privacy_codes import open_code

ACTOR = Actor(kind="service", id="notifier")

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


class DeliveryFailed(Worded, RuntimeError):
    """Some recipients could not be reached; the message says how, without addresses."""


def recipient_key(hash_key: bytes, address: str) -> str:
    digest = hmac.new(hash_key, address.strip().lower().encode(), hashlib.sha256).hexdigest()
    return f"owner:{digest[:24]}"


def audiences(
    cmd: SendEmail, requester_templates: frozenset[str], owner_templates: frozenset[str]
) -> tuple[bool, bool]:
    """(to the requester, to the owners). A mail meant for the requester of a job that has
    none (usual for Kafka requests) goes to the owner contacts instead: nobody is left
    untold."""
    audience = cmd.audience
    to_requester = audience in ("requester", "both") or (
        audience is None and cmd.template in requester_templates
    )
    to_owners = audience in ("owners", "both") or (
        audience is None and cmd.template in owner_templates
    )
    if to_requester and not cmd.to:
        to_owners = True
    return to_requester, to_owners


def recipients(
    cmd: SendEmail, to_requester: bool, owners: list[str], hash_key: bytes
) -> list[tuple[str, str]]:
    """(recipient key, address): the requester, then the owners (`owners`: their addresses
    when the owners are told); an owner who is the requester is mailed once."""
    found: list[tuple[str, str]] = []
    if cmd.audience == "assignee":  # a manual task's person or team, and nobody else
        return [("assignee", cmd.to)] if cmd.to else []
    if to_requester and cmd.to:
        found.append(("requester", cmd.to))
    for address in owners:
        if not (cmd.to and address.lower() == cmd.to.lower() and to_requester):
            found.append((recipient_key(hash_key, address), address))
    return found


def opened(cmd: SendEmail, code_key: bytes) -> SendEmail:
    """A privacy-centre code mail with its code opened for the template (the sealed blob is
    all that travelled; shared/privacy_codes.py). A blob that does not open raises."""
    if cmd.template not in CODE_TEMPLATES:
        return cmd
    ctx = dict(cmd.context)
    sealed = str(ctx.pop("code_sealed", ""))
    ctx["code"] = open_code(code_key, uuid.UUID(str(ctx["challenge_id"])), sealed)
    return cmd.model_copy(update={"context": ctx})


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


def describe(exc: BaseException) -> str:
    """An SMTP/HTTP failure without the addresses some exception texts carry."""
    code = getattr(exc, "code", None) or getattr(exc, "status_code", None)
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
    rule = f" ({exc.rule})" if isinstance(exc, netguard.CallbackRefused) else ""
    return f"{type(exc).__name__}{f' {code}' if code else ''}{rule}"


def event(env: Envelope, payload: NotificationSent | NotificationFailed) -> Envelope:
    return make_event(
        payload, actor=ACTOR, job_id=env.job_id, org_id=env.org_id, subject_hash=env.subject_hash
    )


def sent_event(env: Envelope, template: str, channel: str, recipient: str) -> Envelope:
    return event(
        env,
        NotificationSent(
            template=template,
            channel=channel,
            command_event_id=str(env.event_id),
            recipient=recipient,
        ),
    )


def given_up_events(
    env: Envelope, recipients: list[str], error: str, *, channel: str
) -> list[Envelope]:
    """After the last attempt: one NotificationFailed per unsent recipient (`-`: none was
    recorded, the message failed before any)."""
    template = str(env.payload.get("template", env.type)) if channel == "email" else env.type
    return [
        event(
            env,
            NotificationFailed(
                template=template,
                channel=channel,
                command_event_id=str(env.event_id),
                error=error[:500],
                recipient=recipient,
            ),
        )
        for recipient in recipients or ["-"]
    ]


def needs_callback(env: Envelope) -> bool:
    """A job state change of an organisation: its webhooks are called."""
    return env.type in CALLBACK_STATUS and bool(env.org_id)


def callback_status(env: Envelope) -> str:
    """The state a webhook is told: an erasure purged while its manual tasks may be open is
    `awaiting_tasks`, not completed (intake's JobCompleted says that, after the last task)."""
    if env.type == "JobCompleted" and env.payload.get("awaiting_tasks"):
        return lifecycle.AWAITING_TASKS
    return CALLBACK_STATUS.get(env.type, env.type)


def callback_body(env: Envelope) -> bytes:
    """What a webhook receives: the job's new state, ids and counts; no personal data."""
    body: dict[str, Any] = {
        "event_id": str(env.event_id),
        "type": env.type,
        "status": callback_status(env),
        "job_id": str(env.job_id) if env.job_id else None,
        "org_id": env.org_id,
        "occurred_at": env.occurred_at.isoformat(),
        "details": safe_details(env),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def webhook_headers(
    secret: str, hook_id: uuid.UUID, event_id: uuid.UUID, body: bytes
) -> dict[str, str]:
    """Signed (Stripe-style, shared/signing.py), with ids stable across retries."""
    return {
        "content-type": "application/json",
        signing.HEADER: signing.sign(secret, body),
        signing.EVENT_HEADER: str(event_id),
        "Lethe-Webhook-Id": str(hook_id),
    }
