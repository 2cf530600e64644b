"""Notices about a job, as `SendEmail` commands: one builder for the eraser and the exporter.

A notice that must go out once per job (data hidden, recovery window ending, completed,
failed, ...) gets an event id derived from the job and the notice: the notifier keys its
deliveries by event and recipient, so sending it again after a crash or a redelivery mails
nobody twice. Without `to` the notifier mails the organisation's owner contacts instead.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.events import Actor, Envelope, make_event
from shared.events.notifications import Audience, SendEmail

_NAMESPACE = uuid.UUID("5b0a3c1e-6f43-4d8e-9a57-13c0f2a1d0e7")


def once_id(job_id: uuid.UUID, notice: str) -> uuid.UUID:
    """The event id of the one `notice` of this job."""
    return uuid.uuid5(_NAMESPACE, f"{job_id}:{notice}")


def job_notice(
    template: str,
    *,
    actor: Actor,
    job_id: uuid.UUID,
    org_id: str | None,
    subject_hash: str | None,
    to: str | None,
    context: dict[str, Any],
    status_link: str | None = None,
    audience: Audience | None = None,
    once: str | None = None,
) -> Envelope:
    """A SendEmail about a job; `once` names the notice when it is sent once per job."""
    ctx = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in context.items()}
    ctx.setdefault("job_id", str(job_id))
    if status_link:
        ctx["status_link"] = status_link
    env = make_event(
        SendEmail(template=template, to=to, audience=audience, context=ctx),
        actor=actor,
        job_id=job_id,
        org_id=org_id,
        subject_hash=subject_hash,
    )
    if once is not None:
        env = env.model_copy(update={"event_id": once_id(job_id, once)})
    return env


def request_notice(
    src: Envelope, template: str, context: dict[str, Any], *, job_type: str, actor: Actor
) -> Envelope:
    """A once-per-job notice about the request `src` (ErasureRequested or ExportRequested):
    to its requester, or, without one, to the org's owner contacts."""
    assert src.job_id is not None
    return job_notice(
        template,
        actor=actor,
        job_id=src.job_id,
        org_id=src.org_id,
        subject_hash=src.subject_hash,
        to=src.payload.get("requester_email"),
        context={"job_type": job_type, **context},
        status_link=src.payload.get("status_link"),
        once=template,
    )


def completed_context(purged: int, restored: int, review: list[dict[str, Any]]) -> dict[str, Any]:
    """The `job_completed` / `job_completed_review` mail's facts: rows purged and restored."""
    return {
        "job_type": "erasure",
        "rows": purged,
        "rows_purged": purged,
        "rows_restored": restored,
        "review_count": len(review),
    }
