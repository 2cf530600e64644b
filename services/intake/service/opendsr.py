"""OpenDSR requests (opengdpr/OpenDSR, specification.md): submit one (section 7), read it
(section 8), cancel it while pending (section 9). A submit is the common submit use case
with OpenDSR's record and its `pending` callback written with the job."""

from __future__ import annotations

import uuid
from typing import Any

from services.intake import opendsr, store
from services.intake.domain import Caller, NewJob
from services.intake.service.errors import Conflict, DuplicateRequest, Invalid, NotFound
from services.intake.service.requests import SubmitPolicy, Submitted
from services.intake.service.requests import submit as submit_request
from services.intake.service.uow import UnitOfWork
from shared import lifecycle
from shared.events import make_event
from shared.events.jobs import CancelErasure
from shared.events.opendsr import OpenDSRRequestReceived
from shared.events.progress import JobCancelled
from shared.events.topics import JOBS_ERASE, PROGRESS

# The job states in which an erasure may still be cancelled: those OpenDSR calls pending.
CANCELLABLE = tuple(
    s for s in lifecycle.COMMANDS["cancel"] if opendsr.REQUEST_STATUS[s] == "pending"
)


class NotPending(Conflict):
    """Section 9: a request can be cancelled only while pending."""

    def __init__(self, subject_request_id: str, job_status: str) -> None:
        super().__init__(
            f"request {subject_request_id} is {opendsr.request_status(job_status)}; "
            "it can be cancelled only while pending"
        )


class Handed(Conflict):
    """An export the exporter already has runs to its end (it is not stopped midway)."""

    def __init__(self, subject_request_id: str) -> None:
        super().__init__(
            f"request {subject_request_id} has been handed to the exporter and can no longer "
            "be cancelled; its result follows shortly"
        )


async def find(uow: UnitOfWork, who: Caller, subject_request_id: str) -> dict[str, Any]:
    """The caller's request and its job's facts, or NotFound."""
    row = await store.opendsr_request(uow.pool, who.org_id, uuid.UUID(subject_request_id))
    if row is None:
        raise NotFound(f"no request {subject_request_id} for controller {who.org_id}")
    return row


async def submit(
    uow: UnitOfWork, req: opendsr.OpenDSRRequest, who: Caller, policy: SubmitPolicy
) -> Submitted:
    """201 when created; the same id again returns the same job, another body under it is
    DuplicateRequest. Raises Invalid / Forbidden as the common submit does."""
    try:
        request_in = opendsr.to_request_in(req)
    except opendsr.Invalid as exc:
        raise Invalid(exc.message, exc.errors) from exc
    fp = opendsr.fingerprint(req, policy.hash_key, who.org_id)

    async def with_job(u: UnitOfWork, job: NewJob) -> None:
        # The record and the receipt's `pending` callback, before the job's own event:
        # the controller hears `pending` first, and the sender finds the record.
        await store.record_opendsr(u.conn, job.job_id, who.org_id, req, fp)
        received = make_event(
            OpenDSRRequestReceived(subject_request_id=req.subject_request_id),
            actor=who.actor,
            job_id=job.job_id,
            org_id=who.org_id,
            subject_hash=job.subject_hash,
        )
        await u.emit(PROGRESS, received, timeline=False)

    srid = req.subject_request_id
    try:  # access and portability complete with a results_url (section 8.3)
        done = await submit_request(
            uow,
            request_in,
            who,
            policy,
            channel="http",
            results_link=req.subject_request_type != "erasure",
            with_job=with_job,
            source="opendsr",
            link_duplicates=False,  # each subject_request_id has its own job and callbacks
        )
    except DuplicateRequest as exc:
        raise DuplicateRequest(srid, exc.job_id) from exc
    job_id = done.job["id"]
    await store.record_opendsr(uow.pool, job_id, who.org_id, req, fp)
    found = await store.opendsr_request(uow.pool, who.org_id, uuid.UUID(srid))
    if found is None or found["id"] != job_id or found["dsr_fingerprint"] != fp:
        raise DuplicateRequest(srid, job_id)  # the id names another request of this org
    return done


async def cancel(uow: UnitOfWork, who: Caller, subject_request_id: str) -> dict[str, Any]:
    """Section 9, while pending: an erasure is told to stop (the job becomes `cancelled` when
    the eraser confirms); an export not yet handed to the exporter is taken back and
    cancelled at once. Raises NotFound, NotPending or Handed."""
    srid = subject_request_id
    async with uow:
        row = await store.opendsr_request(uow.conn, who.org_id, uuid.UUID(srid), lock=True)
        if row is None:
            raise NotFound(f"no request {srid} for controller {who.org_id}")
        if opendsr.request_status(row["status"]) != "pending":
            raise NotPending(srid, row["status"])
        if row["type"] == "export":
            await _take_back_export(uow, who, row, srid)
            return row
        if row["status"] not in CANCELLABLE:
            raise NotPending(srid, row["status"])
        env = make_event(
            CancelErasure(reason="cancelled by the controller (OpenDSR DELETE)"),
            actor=who.actor,
            job_id=row["id"],
            org_id=who.org_id,
        )
        await uow.emit(JOBS_ERASE, env, timeline=True)
    return row


async def _take_back_export(
    uow: UnitOfWork, who: Caller, row: dict[str, Any], subject_request_id: str
) -> None:
    """The request is taken back from the outbox (the exporter never sees it), the job is
    `cancelled` at once and a JobCancelled tells the controller and the audit trail."""
    if row["status"] != "pending":
        raise NotPending(subject_request_id, row["status"])
    if not await store.take_back_export(uow.conn, row["id"]):
        raise Handed(subject_request_id)
    cancelled = make_event(
        JobCancelled(done=0, total=0), actor=who.actor, job_id=row["id"], org_id=who.org_id
    )
    await store.mark_cancelled(uow.conn, row["id"], cancelled.occurred_at)
    await uow.emit(PROGRESS, cancelled, timeline=True)
