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
    (link_id,) = await _record_links(uow, [(job, open_row)], channel)
    return Linked(open_row, link_id)


async def _record_links(
    uow: UnitOfWork, joining: list[tuple[NewJob, dict[str, Any]]], channel: str
) -> list[uuid.UUID]:
    """Each request's link to the job it joins (`id`, `status`), audited under that job."""
    rows: list[links.LinkRow] = []
    events = []
    for job, open_row in joining:
        link_id = uuid.uuid4()
        rows.append(
            (
                link_id,
                job.org_id,
                open_row["id"],
                job.request_id,
                job.fingerprint,
                channel,
                job.actor,
                job.requester_email,
                job.received_at,
            )
        )
        events.append((AUDIT, rules.linked_event(job, open_row, link_id, channel)))
    await links.insert_links(uow.conn, rows)
    await uow.emit_many(events, timeline=True)
    return [row[0] for row in rows]


@dataclass(frozen=True)
class Joins:
    """The members of a bulk request that join a job instead of becoming one."""

    to: dict[uuid.UUID, uuid.UUID]  # planned job id -> the job it joins
    open_rows: dict[uuid.UUID, dict[str, Any]]  # the open jobs joined (written before), by id


async def joins_of(uow: UnitOfWork, jobs: list[NewJob]) -> Joins:
    """`link_if_open` for many new jobs of one org and type (a bulk request's members, no
    request_id of their own), before they are written: a member joins its subject's open job,
    else the list's first member naming the same subject. Holds the subjects' locks."""
    subjects = [j for j in jobs if j.scope == "subject" and j.subject_hash is not None]
    if not subjects:
        return Joins({}, {})
    org_id, job_type = subjects[0].org_id, subjects[0].type
    assert all(j.org_id == org_id and j.type == job_type for j in subjects)
    hashes = [j.subject_hash for j in subjects if j.subject_hash is not None]
    open_rows = await links.open_jobs(uow.conn, org_id, hashes, job_type)
    first = {h: row["id"] for h, row in open_rows.items()}
    to: dict[uuid.UUID, uuid.UUID] = {}
    for j in subjects:
        assert j.subject_hash is not None
        target = first.setdefault(j.subject_hash, j.job_id)
        if target != j.job_id:
            to[j.job_id] = target
    return Joins(to, {row["id"]: row for row in open_rows.values()})


async def link_joins(
    uow: UnitOfWork, jobs: list[NewJob], joins: Joins, channel: str, new_status: str
) -> None:
    """After the new jobs are written (`new_status`: theirs): each joining member's link,
    audited, as `link_if_open` records one."""
    joining = [
        (j, joins.open_rows.get(target) or {"id": target, "status": new_status})
        for j in jobs
        if (target := joins.to.get(j.job_id)) is not None
    ]
    if joining:
        await _record_links(uow, joining, channel)


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
