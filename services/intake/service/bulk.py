"""Bulk requests: submit many subjects at once, follow their outcomes, and send the one
summary notice when the last is known.

Every valid row is planned by the submit use case (`requests.plan`, the rules of a single
request) and written with the others in one unit of work (`requests.record_many`: one round
trip for the rows, one outbox batch), which keeps the single request's guarantees: a member
whose subject has an open job is linked to it (its row follows that job's outcome), and an
org that asks approval on the `bulk` channel gets every member held. The bulk job and its
rows go in the same transaction, so a request is accepted whole or not at all. `request_id`
is the idempotency key, as for a single request.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from services.intake import domain
from services.intake import store as intake_store
from services.intake.domain import Caller, NewJob, RequestIn, SubjectIn
from services.intake.domain import bulk as rules
from services.intake.service import requests
from services.intake.service.errors import Conflict, ServiceError, refused
from services.intake.service.requests import SubmitPolicy
from services.intake.service.uow import UnitOfWork
from services.intake.store import bulk as store
from shared.events import Envelope
from shared.events.requests import SubmitRequest
from shared.events.topics import NOTIFICATIONS


@dataclass(frozen=True)
class BulkSubmitted:
    bulk: dict[str, Any]  # the bulk job row: new, or the one the idempotency key named
    created: bool


def _authorise(body: rules.BulkRequestIn, who: Caller) -> None:
    """The caller's right to ask, once for the whole list (the same for every row)."""
    probe = RequestIn(
        type=body.type,
        subject=SubjectIn(user_id="bulk"),
        recovery_window_days=body.recovery_window_days,
    )
    try:
        domain.authorise(probe, who)
    except domain.Refused as exc:
        raise refused(exc) from exc


Row = tuple[int, uuid.UUID | None, str | None, str, str | None]  # as store.insert_subjects


async def _plan_rows(
    body: rules.BulkRequestIn,
    who: Caller,
    policy: SubmitPolicy,
    channel: Literal["http", "kafka"],
    received_at: datetime,
) -> tuple[list[NewJob], list[Row]]:
    """Each valid row's job, planned by the submit use case; each row's first outcome."""
    rows: list[Row] = []
    jobs = []
    for row_no, row in enumerate(body.subjects, start=1):
        if row_no % 250 == 0:
            await asyncio.sleep(0)  # planning is CPU work: let the other requests through
        member = body.member(row)
        if isinstance(member, str):
            rows.append((row_no, None, None, "rejected", member))
            continue
        # Exports get the controller's link: the subjects' download links are read from
        # the bulk job, not mailed one by one.
        job = requests.plan(
            member,
            who,
            policy,
            channel=channel,
            results_link=body.type == "export",
            received_at=received_at,
        )
        jobs.append(job)
        rows.append((row_no, job.job_id, job.subject_hash, "pending", None))
    return jobs, rows


async def submit_bulk(
    uow: UnitOfWork,
    body: rules.BulkRequestIn,
    who: Caller,
    policy: SubmitPolicy,
    *,
    channel: Literal["http", "kafka"],
) -> BulkSubmitted:
    """Raises Forbidden (the caller may not ask this) or Conflict (request_id reused)."""
    _authorise(body, who)
    bulk_id = uuid.uuid4()
    received_at = datetime.now(UTC)  # the bulk's and its members' (the report tells them so)
    jobs, rows = await _plan_rows(body, who, policy, channel, received_at)
    fingerprint = rules.fingerprint(body, policy.hash_key, who.org_id)
    async with uow:
        created = await store.insert_bulk(
            uow.conn,
            bulk_id=bulk_id,
            org_id=who.org_id,
            job_type=body.type,
            request_id=body.request_id,
            fingerprint=fingerprint,
            channel=channel,
            actor=f"{who.actor.kind}:{who.actor.id}",
            requester_email=body.notify_email,
            total=len(rows),
            pending=len(jobs),
            created_at=received_at,
        )
        if created:
            joined = await requests.record_many(uow, jobs, "bulk")
            # A linked member's row names the job it joined: that job's end is its outcome.
            rows = [(n, joined.get(j, j) if j else j, h, o, r) for n, j, h, o, r in rows]
            await store.insert_subjects(uow.conn, bulk_id, rows)
            if not jobs:  # every row rejected: the summary goes at once
                bulk = await store.get_bulk(uow.conn, who.org_id, bulk_id)
                assert bulk is not None
                await _summarise(uow, bulk)
            found = await store.get_bulk(uow.conn, who.org_id, bulk_id)
        else:
            found = await store.bulk_by_request(uow.conn, who.org_id, body.request_id)
    assert found is not None
    if not created and found["request_fingerprint"] != fingerprint:
        raise Conflict(
            f"request_id {body.request_id!r} was already used for a different bulk request "
            f"({found['id']})"
        )
    return BulkSubmitted(found, created)


async def _summarise(uow: UnitOfWork, bulk: dict[str, Any]) -> None:
    """The one summary notice, written with the last outcome (the row lock on the bulk job
    makes it one)."""
    summary = rules.Summary.of(await store.outcome_counts(uow.conn, bulk["id"]))
    await uow.emit(NOTIFICATIONS, rules.summary_notice(bulk, summary), timeline=False)
    await store.finish(uow.conn, bulk["id"])


async def on_job_event(uow: UnitOfWork, env: Envelope) -> None:
    """A member job's terminal event decides its outcome; the last one sends the summary.
    Idempotent: an outcome is decided once."""
    erasure, export = rules.outcome_of(env.type, "erasure"), rules.outcome_of(env.type, "export")
    if env.job_id is None or erasure is None or export is None:
        return
    reason = env.payload.get("reason") if env.type != "JobCancelled" else "cancelled"
    async with uow:
        bulks = await store.decide(
            uow.conn,
            env.job_id,
            {"erasure": erasure, "export": export},
            str(reason)[:500] if reason else None,
        )
        for bulk in bulks:  # a linked job may end rows of several bulks
            if bulk["pending"] == 0 and bulk["finished_at"] is None:
                await _summarise(uow, bulk)


async def summary(uow: UnitOfWork, bulk: dict[str, Any]) -> rules.Summary:
    return rules.Summary.of(await store.outcome_counts(uow.pool, bulk["id"]))


def is_bulk_message(raw: bytes) -> bool:
    """A message on the request topic whose `request` carries a list of subjects."""
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested too deep: the single path
        return False  # rejects it with its reason
    request = msg.get("request") if isinstance(msg, dict) else None
    return isinstance(request, dict) and "subjects" in request


async def submit_upstream(uow: UnitOfWork, raw: bytes, policy: SubmitPolicy) -> BulkSubmitted:
    """A bulk request from the request topic (the body of `POST /v1/bulk-requests` as its
    `request`); refused whole with the reason (more than 5,000 subjects: naming the limit)."""
    try:
        msg = SubmitRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = domain.field_errors(exc)
        why = domain.Rejection(f"invalid message: {'; '.join(errors)}", errors)
        raise requests.Rejected(why) from exc
    request_id = msg.request.get("request_id")
    request_id = request_id if isinstance(request_id, str) else None
    org = await intake_store.get_org(uow.pool, msg.org_id)
    org_id = org["id"] if org else None
    try:
        body = rules.BulkRequestIn.model_validate(msg.request)
    except ValidationError as exc:
        too_many = rules.is_too_many(exc)
        errors = [too_many] if too_many else [f"request.{e}" for e in domain.field_errors(exc)]
        reason = too_many or f"invalid bulk request: {'; '.join(errors)}"
        raise requests.Rejected(domain.Rejection(reason, errors, request_id), org_id) from exc
    if org is None:
        unknown = f"org_id: unknown organisation {msg.org_id!r}"
        raise requests.Rejected(domain.Rejection(unknown, [unknown], request_id))
    who = domain.upstream_caller(org["id"], org["name"], org["recovery_window_days"], msg.source)
    try:
        return await submit_bulk(uow, body, who, policy, channel="kafka")
    except ServiceError as exc:
        why = domain.Rejection(exc.message, [exc.message], request_id)
        raise requests.Rejected(why, org["id"]) from exc
