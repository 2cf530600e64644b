"""Outcomes that are results, not errors (nothing held; identities of two people), the same
for every worker: the progress event that states it, and the requester's email."""

from __future__ import annotations

from shared.events import Actor, Envelope, Payload, make_event
from shared.events.notifications import SendEmail
from shared.events.topics import NOTIFICATIONS, PROGRESS


def outcome_events(
    src: Envelope,
    payload: Payload,
    template: str,
    *,
    job_type: str,
    requester_email: str | None,
    actor: Actor,
) -> list[tuple[str, Envelope]]:
    """(topic, event) pairs to publish for the outcome `payload` of the job `src` started."""

    def event(p: Payload) -> Envelope:
        return make_event(
            p, actor=actor, job_id=src.job_id, org_id=src.org_id, subject_hash=src.subject_hash
        )

    out = [(PROGRESS, event(payload))]
    if requester_email:
        context = {"job_id": str(src.job_id), "job_type": job_type}
        context.update({k: str(v) for k, v in payload.model_dump().items()})
        out.append(
            (
                NOTIFICATIONS,
                event(SendEmail(template=template, to=requester_email, context=context)),
            )
        )
    return out
