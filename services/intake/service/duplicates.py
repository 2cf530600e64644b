"""Duplicate requests: a new request for a subject (same org, subject hash and type) that
already has an open job is linked to that job instead of running twice. The link is recorded
(lethe.job_links, with its own requester and idempotency key) and audited (RequestLinked,
under the open job's id); when the open job is done, each linked requester is told once.

Idempotency keys come first: a key that names a job is that job's replay (`submit`), a key
that names a link answers with the same link.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.intake import store
from services.intake.domain import Caller, NewJob
from services.intake.domain import approvals as rules
from services.intake.service.errors import DuplicateRequest
from services.intake.service.uow import UnitOfWork
from services.intake.store import approvals as links
from shared import lifecycle
from shared.events import Envelope
from shared.events.topics import AUDIT, NOTIFICATIONS


@dataclass(frozen=True)
class Linked:
    job: dict[str, Any]  # the open job the request joined
    link_id: uuid.UUID


async def link_if_open(uow: UnitOfWork, job: NewJob, channel: str) -> Linked | None:
    """In the submit's unit of work, before the job is written: the link when the subject
    has an open job of this type (None: go on and write the job)."""
    if job.request_id is not None:
        if await links.job_of_request(uow.conn, job.org_id, job.request_id):
            return None  # the key's own job: `submit` answers the replay
        seen = await links.link_of_request(uow.conn, job.org_id, job.request_id)
        if seen is not None:
            if seen["request_fingerprint"] != job.fingerprint:
                raise DuplicateRequest(job.request_id, seen["job_id"])
            row = await store.get_job(uow.conn, job.org_id, seen["job_id"])
            assert row is not None
            return Linked(row, seen["id"])
    if job.scope != "subject" or job.subject_hash is None:
        return None
    open_row = await links.open_job(uow.conn, job.org_id, job.subject_hash, job.type)
    if open_row is None:
        return None
    link_id = uuid.uuid4()
    await links.insert_link(
        uow.conn,
        link_id=link_id,
        org_id=job.org_id,
        job_id=open_row["id"],
        request_id=job.request_id,
        fingerprint=job.fingerprint,
        channel=channel,
        actor=job.actor,
        requester_email=job.requester_email,
        received_at=job.received_at,
    )
    await uow.emit(AUDIT, rules.linked_event(job, open_row, link_id, channel), timeline=True)
    return Linked(open_row, link_id)


async def tell_linked(uow: UnitOfWork, env: Envelope) -> int:
    """After a progress event: when it took its job out of the open states, mail each linked
    requester not told yet (once; the link forgets the address). Returns how many."""
    move = lifecycle.move_for(env.type, env.payload)
    if env.job_id is None or move is None or move.to in lifecycle.OPEN:
        return 0
    async with uow:
        row = await links.job_row(uow.conn, env.job_id)
        if row is None or not rules.done_for_links(row["status"]):
            return 0
        told = await links.take_links_to_tell(uow.conn, env.job_id)
        who = Caller(row["org_id"], "", "service", uuid.UUID(int=0), 0, "service", "intake")
        now = datetime.now(UTC)
        for link in told:
            if link["requester_email"]:  # upstream requests have no requester to tell
                await uow.emit(
                    NOTIFICATIONS, rules.linked_notice(row, link, who, now), timeline=True
                )
    return len(told)
