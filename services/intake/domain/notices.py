"""The mails a job's decisions send (as SendEmail commands written with the job): receipt,
CCPA receipt confirmation, deadline extension. Pure."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.intake import deadlines
from services.intake.domain.callers import Caller
from services.intake.domain.requests import RequestIn
from shared.events import Envelope, make_event
from shared.events.notifications import SendEmail


def notice(
    template: str,
    *,
    to: str | None,
    context: dict[str, object],
    caller: Caller,
    job_id: uuid.UUID,
    subject_hash: str | None,
    trace: dict[str, str] | None = None,
    status_link: str | None = None,
) -> Envelope:
    """A SendEmail to the requester, or, when the job has none, to the org's owner contacts."""
    if status_link:
        context = {**context, "status_link": status_link}
    return make_event(
        SendEmail(
            template=template,
            to=to,
            audience="requester" if to else "owners",
            context={
                k: v.isoformat() if isinstance(v, datetime) else v for k, v in context.items()
            },
        ),
        actor=caller.actor,
        job_id=job_id,
        org_id=caller.org_id,
        subject_hash=subject_hash,
        trace=trace,
    )


def receipt_notices(
    req: RequestIn,
    caller: Caller,
    *,
    job_id: uuid.UUID,
    received_at: datetime,
    due: datetime,
    receipt_due: datetime | None,
    subject_hash: str | None,
    trace: dict[str, str],
    status_link: str | None,
) -> tuple[Envelope, ...]:
    """The mails a new job sends at once: CCPA's statutory receipt confirmation, else the
    requester's receipt (none without a requester address)."""
    if receipt_due is not None:
        return (
            ccpa_receipt(
                req,
                caller,
                job_id=job_id,
                received_at=received_at,
                due=due,
                subject_hash=subject_hash,
                trace=trace,
                status_link=status_link,
            ),
        )
    if not req.notify_email:
        # Upstream requests have no requester address: the owners would get one per request.
        return ()
    # Every requester learns that the request arrived and by when it is due.
    return (
        notice(
            "request_received",
            to=req.notify_email,
            context={
                "job_id": str(job_id),
                "job_type": req.type,
                "received_at": received_at,
                "due_at": due,
                "regulation": req.regulation.upper(),
            },
            caller=caller,
            job_id=job_id,
            subject_hash=subject_hash,
            trace=trace,
            status_link=status_link,
        ),
    )


def ccpa_receipt(
    req: RequestIn,
    caller: Caller,
    *,
    job_id: uuid.UUID,
    received_at: datetime,
    due: datetime,
    subject_hash: str | None,
    trace: dict[str, str],
    status_link: str | None = None,
) -> Envelope:
    """11 CCR 7021(a): the receipt confirmation, with how and by when it will be handled."""
    return notice(
        "ccpa_receipt",
        to=req.notify_email,
        context={
            "job_id": str(job_id),
            "job_type": req.type,
            "received_at": received_at,
            "due_at": due,
            "max_due_at": deadlines.max_extended_due("ccpa", due),
        },
        caller=caller,
        job_id=job_id,
        subject_hash=subject_hash,
        trace=trace,
        status_link=status_link,
    )


def extension_notice(
    row: dict[str, object],
    caller: Caller,
    *,
    to: str | None,
    extended_due_at: datetime,
    reason: str,
    status_link: str | None = None,
) -> Envelope:
    """GDPR Art. 12(3) / 11 CCR 7021(b): the requester is told of the extension and why."""
    regulation = str(row["regulation"])
    job_id = row["id"]
    assert isinstance(job_id, uuid.UUID)
    return notice(
        "deadline_extended",
        to=to,
        context={
            "job_id": str(job_id),
            "job_type": row["type"],
            "regulation": deadlines.source(regulation),
            "due_at": row["due_at"],
            "extended_due_at": extended_due_at,
            "reason": reason,
        },
        caller=caller,
        job_id=job_id,
        subject_hash=row["subject_hash"] if isinstance(row["subject_hash"], str) else None,
        status_link=status_link,
    )
