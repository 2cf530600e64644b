"""A valid, authorised request becomes a job: its event, its due date, its notices, its
fingerprint; and the commands that stop a job. Pure."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from services.intake import deadlines
from services.intake.domain.callers import Caller, authorise
from services.intake.domain.notices import receipt_notices
from services.intake.domain.requests import RequestIn
from services.intake.links import StatusLinks
from shared.events import Envelope, Payload, make_event
from shared.events.jobs import (
    CancelErasure,
    CancelExport,
    ErasureRequested,
    ExportRequested,
    Subject,
)
from shared.events.topics import JOBS_ERASE, JOBS_EXPORT
from shared.hashing import subject_hash


@dataclass(frozen=True)
class NewJob:
    job_id: uuid.UUID
    org_id: str
    type: str
    scope: str
    subject_hash: str | None
    request_id: str | None
    channel: str
    actor: str
    regulation: str
    received_at: datetime
    due_at: datetime
    recovery_window_days: int
    topic: str
    event: Envelope
    requester_email: str | None = None
    fingerprint: str | None = None
    reason: str | None = None
    receipt_due_at: datetime | None = None  # CCPA: confirm receipt by then
    notices: tuple[Envelope, ...] = ()  # SendEmail commands written with the job


def plan_job(
    req: RequestIn,
    caller: Caller,
    *,
    received_at: datetime,
    hash_key: bytes,
    holidays: tuple[date, ...] = (),
    channel: Literal["http", "kafka", "privacy_centre"],
    trace: dict[str, str],
    links: StatusLinks | None = None,
    results_link: bool = False,
) -> NewJob:
    """`results_link`: an export also gets a link for the controller (OpenDSR results_url)."""
    authorise(req, caller)
    job_id = uuid.uuid4()
    # The data subject's status page: the workers put it in their mails (and so does this).
    status_link = links.url(job_id) if links is not None else None
    subject = Subject(**req.subject.model_dump()) if req.subject else None
    s_hash = subject_hash(hash_key, caller.org_id, subject.identities()) if subject else None
    due = deadlines.due_at(received_at, req.regulation, req.due_in_days)
    window = (
        req.recovery_window_days
        if req.recovery_window_days is not None
        else caller.recovery_window_days
    )
    payload, topic = _payload(req, subject, due, window, channel, status_link, results_link)
    env = make_event(
        payload,
        actor=caller.actor,
        job_id=job_id,
        org_id=caller.org_id,
        subject_hash=s_hash,
        trace=trace,
    )
    receipt_due = deadlines.receipt_confirmation_due(received_at, req.regulation, holidays)
    notices = receipt_notices(
        req,
        caller,
        job_id=job_id,
        received_at=received_at,
        due=due,
        receipt_due=receipt_due,
        subject_hash=s_hash,
        trace=trace,
        status_link=status_link,
    )
    return NewJob(
        job_id=job_id,
        org_id=caller.org_id,
        type=req.type,
        scope=req.scope,
        subject_hash=s_hash,
        request_id=req.request_id,
        channel=channel,
        actor=f"{caller.actor.kind}:{caller.actor.id}",
        regulation=req.regulation,
        received_at=received_at,
        due_at=due,
        recovery_window_days=window,
        topic=topic,
        event=env,
        requester_email=req.notify_email,
        fingerprint=fingerprint(req, hash_key, caller.org_id),
        reason=req.reason,
        receipt_due_at=receipt_due,
        notices=notices,
    )


def _payload(
    req: RequestIn,
    subject: Subject | None,
    due: datetime,
    window: int,
    channel: Literal["http", "kafka", "privacy_centre"],
    status_link: str | None,
    results_link: bool,
) -> tuple[ErasureRequested | ExportRequested, str]:
    """The job's event and the topic of the worker that does it."""
    if req.type == "erasure":
        erasure = ErasureRequested(
            scope=req.scope,
            subject=subject,
            requester_email=req.notify_email,
            regulation=req.regulation,
            due_at=due,
            recovery_window_days=window,
            channel=channel,
            status_link=status_link,
        )
        return erasure, JOBS_ERASE
    export = ExportRequested(
        scope=req.scope,
        subject=subject,
        requester_email=req.notify_email,
        regulation=req.regulation,
        due_at=due,
        format=req.format,
        include_media=req.include_media,
        link_ttl_hours=req.link_ttl_hours,
        channel=channel,
        status_link=status_link,
        results_link=results_link,
    )
    return export, JOBS_EXPORT


def fingerprint(req: RequestIn, key: bytes, org_id: str) -> str:
    """What was asked, independent of formatting: a repeated id with another body is a 409.
    Keyed, because the body holds identities; and per org, as subject hashes are, so that
    one body sent by two orgs leaves two unrelated fingerprints."""
    body = req.model_dump(mode="json", exclude={"request_id"})
    text = f"org:{org_id}\n{json.dumps(body, sort_keys=True)}"
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def cancel_command(job_type: str, reason: str | None) -> tuple[Payload, str]:
    """The cancel command for a job and the topic of the worker that stops it: exports go to
    the exporter; erasures and retention jobs to the eraser."""
    if job_type == "export":
        return CancelExport(reason=reason), JOBS_EXPORT
    return CancelErasure(reason=reason), JOBS_ERASE


def command_topic(job_type: str) -> str:
    return JOBS_EXPORT if job_type == "export" else JOBS_ERASE
