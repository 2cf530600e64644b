"""An erasure with manual tasks completes in intake (docs/datamap.md, Connectors): the eraser
reports its purge as `JobCompleted(awaiting_tasks=True)` and mails nobody; once every task is
done or waived, intake sends the job's JobCompleted (what webhooks and OpenDSR callbacks
follow) and the requester's `job_completed` mail, with the purge's counts. Pure."""

from __future__ import annotations

import uuid
from typing import Any

from shared.events import Actor, Envelope, make_event
from shared.events.progress import JobCompleted
from shared.notices import completed_context, job_notice, once_id

ACTOR = Actor(kind="service", id="intake")


def completion(
    job: dict[str, Any],
    report: dict[str, Any],
    *,
    to: str | None,
    status_link: str | None,
) -> tuple[Envelope, Envelope]:
    """(JobCompleted, its mail) from the eraser's purge report `report` (its payload as kept in
    the timeline). Under fixed ids, as the eraser's mail: each is delivered once."""
    job_id: uuid.UUID = job["id"]
    payload = JobCompleted.model_validate({**report, "awaiting_tasks": False})
    env = make_event(
        payload,
        actor=ACTOR,
        job_id=job_id,
        org_id=job["org_id"],
        subject_hash=job["subject_hash"],
    )
    env = env.model_copy(update={"event_id": once_id(job_id, "JobCompleted")})
    review = payload.needs_review
    restored = payload.restored_rows or 0
    purged = payload.purged_rows if payload.purged_rows is not None else payload.done - restored
    notice = job_notice(
        "job_completed_review" if review else "job_completed",
        actor=ACTOR,
        job_id=job_id,
        org_id=job["org_id"],
        subject_hash=job["subject_hash"],
        to=to,
        context=completed_context(purged, restored, review),
        status_link=status_link,
        once="job_completed",
    )
    return env, notice
