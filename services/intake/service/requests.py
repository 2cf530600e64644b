"""Submit a privacy request: the one use case behind `POST /v1/requests`, the web form,
`POST /opendsr/requests`, the Kafka request topic and each member of a bulk request
(`plan` then `record_many`).

The domain plans the job (who may ask what, when it is due, which events it becomes); this
writes it with its events in one unit of work. A repeated idempotency key returns the job it
named (nothing written), or `DuplicateRequest` when it named a different request. A request
for a subject with an open job of the same type is linked to that job (`duplicates`); a job
from a channel its org asks approval for waits for an admin (`approvals`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from services.intake import domain, store
from services.intake.auth import RateLimiter
from services.intake.domain import Caller, NewJob, RequestIn
from services.intake.domain.approvals import default_channel
from services.intake.links import StatusLinks
from services.intake.service import approvals, duplicates
from services.intake.service.errors import DuplicateRequest, RateLimited, ServiceError, refused
from services.intake.service.uow import UnitOfWork
from services.intake.settings import IntakeSettings
from shared import lifecycle
from shared.events.topics import NOTIFICATIONS
from shared.kafka import current_trace

# What belongs with a new job, written in its transaction before the job's own event.
WithJob = Callable[[UnitOfWork, NewJob], Awaitable[None]]


@dataclass(frozen=True)
class SubmitPolicy:
    """What planning a job needs from the settings."""

    hash_key: bytes
    holidays: tuple[date, ...]
    links: StatusLinks | None

    @classmethod
    def from_settings(cls, s: IntakeSettings) -> SubmitPolicy:
        return cls(
            hash_key=s.subject_hash_key.get_secret_value().encode(),
            holidays=tuple(s.business_holidays),
            links=s.status_links(),
        )


@dataclass(frozen=True)
class Submitted:
    job: dict[str, Any]  # the job row: new, the one the idempotency key named, or linked
    created: bool
    duplicate_of: uuid.UUID | None = None  # linked to this open job of the same subject
    link_id: uuid.UUID | None = None


def take_turn(limiter: RateLimiter, who: Caller) -> None:
    """The per-key submission rate (HTTP entry points; upstream services are not limited)."""
    wait = limiter.take(str(who.key_id))
    if wait:
        raise RateLimited(wait)


def plan(
    req: RequestIn,
    who: Caller,
    policy: SubmitPolicy,
    *,
    channel: Literal["http", "kafka", "privacy_centre"],
    results_link: bool = False,
    received_at: datetime | None = None,
) -> NewJob:
    """The job a request becomes (pure). Raises Forbidden / Invalid (the domain's refusal)."""
    try:
        return domain.plan_job(
            req,
            who,
            received_at=received_at or datetime.now(UTC),
            hash_key=policy.hash_key,
            holidays=policy.holidays,
            links=policy.links,
            channel=channel,
            trace=current_trace(),
            results_link=results_link,
        )
    except domain.Refused as exc:
        raise refused(exc) from exc


async def submit(
    uow: UnitOfWork,
    req: RequestIn,
    who: Caller,
    policy: SubmitPolicy,
    *,
    channel: Literal["http", "kafka", "privacy_centre"],
    results_link: bool = False,
    with_job: WithJob | None = None,
    source: str | None = None,
    link_duplicates: bool = True,
) -> Submitted:
    """`source`: the entry point (`domain.approvals.CHANNELS`; by default `api` over HTTP,
    `kafka` from the topic), for the org's approval setting and the link's record.
    `link_duplicates`: False where each request needs a job of its own (OpenDSR: every
    subject_request_id has its own status and callbacks).
    Raises Forbidden / Invalid (the domain's refusal) or DuplicateRequest."""
    source = source or default_channel(channel)
    job = plan(req, who, policy, channel=channel, results_link=results_link)
    async with uow:
        linked = await duplicates.link_if_open(uow, job, source) if link_duplicates else None
        if linked is not None:
            return Submitted(linked.job, False, linked.job["id"], linked.link_id)
        created = await store.insert_job(uow.conn, job)
        if created:
            if with_job is not None:
                await with_job(uow, job)
            if not await approvals.hold_if_asked(uow, job, source):
                await uow.emit(job.topic, job.event, timeline=True)
            for notice in job.notices:  # e.g. the CCPA receipt confirmation, issued on receipt
                await uow.emit(NOTIFICATIONS, notice, timeline=True)
            row = await store.get_job(uow.conn, job.org_id, job.job_id)
        else:
            row = await store.job_by_request(uow.conn, job.org_id, job.request_id)
    assert row is not None
    if not created and row["request_fingerprint"] != job.fingerprint:
        raise DuplicateRequest(req.request_id, row["id"])
    return Submitted(row, created)


async def record_many(
    uow: UnitOfWork, jobs: list[NewJob], source: str = "bulk"
) -> dict[uuid.UUID, uuid.UUID]:
    """What `submit` writes for new jobs, for many planned jobs of one org at once, in the
    open unit of work (a bulk request; its members have no request_id of their own): the
    same duplicate links and approval step, the rows in one round trip, their events and
    notices in one outbox batch. Returns the members linked: planned job id -> job joined."""
    assert all(j.request_id is None for j in jobs)
    joins = await duplicates.joins_of(uow, jobs)
    fresh = [j for j in jobs if j.job_id not in joins.to]
    await store.insert_jobs(uow.conn, fresh)
    held = await approvals.hold_many_if_asked(uow, fresh, source)
    events = [] if held else [(j.topic, j.event) for j in fresh]
    events += [(NOTIFICATIONS, n) for j in fresh for n in j.notices]
    await uow.emit_many(events, timeline=True)
    await duplicates.link_joins(uow, jobs, joins, source, lifecycle.HELD if held else "pending")
    return joins.to


class Rejected(Exception):
    """An upstream request refused: answered on the rejection topic (filed under `org_id`
    once the organisation is known)."""

    def __init__(self, rejection: domain.Rejection, org_id: str | None = None) -> None:
        super().__init__(rejection.reason)
        self.rejection, self.org_id = rejection, org_id


async def submit_upstream(uow: UnitOfWork, raw: bytes, policy: SubmitPolicy) -> Submitted:
    """A message from the request topic: upstream services act as an owner of the org they
    name (Kafka ACLs authenticate them). Raises Rejected with the reason."""
    parsed = domain.parse_upstream(raw)
    if isinstance(parsed, domain.Rejection):
        raise Rejected(parsed)
    msg, req = parsed
    org = await store.get_org(uow.pool, msg.org_id)
    if org is None:
        raise Rejected(
            domain.Rejection(
                f"org_id: unknown organisation {msg.org_id!r}",
                ["org_id: unknown organisation"],
                req.request_id,
            )
        )
    who = domain.upstream_caller(org["id"], org["name"], org["recovery_window_days"], msg.source)
    try:
        return await submit(uow, req, who, policy, channel="kafka")
    except DuplicateRequest as exc:
        why = domain.Rejection(
            f"request_id: {req.request_id!r} was already used for a different request",
            ["request_id: already used for a different request"],
            req.request_id,
        )
        raise Rejected(why, org["id"]) from exc
    except ServiceError as exc:
        why = domain.Rejection(exc.message, [exc.message], req.request_id)
        raise Rejected(why, org["id"]) from exc
