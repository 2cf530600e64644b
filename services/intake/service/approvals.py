"""The approval step, written once for the API, the web UI and the CLI (which calls the API).

An owner names the channels whose new jobs wait for approval (none by default). A job from
such a channel is written `awaiting_approval`: its request event is held, not sent to the
worker; its legal deadline runs. An admin approves (the event goes to the worker) or denies
(the job ends `denied`, nothing done) with a reason; each decision is audited with who and
why, and mailed to the requester. Each decision is checked and written under the job's row
lock: a job not awaiting approval is a 409 and nothing is written.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.intake.domain import Caller, NewJob
from services.intake.domain import approvals as rules
from services.intake.links import StatusLinks
from services.intake.service.errors import Forbidden, Invalid, NotAllowedNow
from services.intake.service.jobs import _locked
from services.intake.service.orgs import own_org
from services.intake.service.uow import UnitOfWork
from services.intake.store import approvals as store
from services.intake.store import requester_email
from shared import lifecycle
from shared.events import make_event
from shared.events.requests import OrgApprovalChanged
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS

DECIDERS = ("admin", "owner")
DECIDE_RULE = "approving or denying a request needs the admin or owner role"


async def channels(uow: UnitOfWork, who: Caller, org: str) -> list[str]:
    """The org's channels whose new jobs wait for approval."""
    own_org(who, org, "approval setting")
    return await store.approval_channels(uow.pool, org)


async def set_channels(uow: UnitOfWork, who: Caller, org: str, given: list[str]) -> list[str]:
    """An owner's choice (the route checks the role); a change is audited with old and new."""
    own_org(who, org, "approval setting")
    try:
        chosen = rules.channels_setting(given)
    except rules.BadChannels as exc:
        raise Invalid(str(exc)) from exc
    async with uow:
        old = await store.set_approval_channels(uow.conn, org, chosen)
        if old != chosen:
            env = make_event(OrgApprovalChanged(old=old, new=chosen), actor=who.actor, org_id=org)
            await uow.emit(AUDIT, env, timeline=False)
    return chosen


async def hold_if_asked(uow: UnitOfWork, job: NewJob, channel: str) -> bool:
    """In the new job's unit of work: hold its request event when its org asks for approval
    on this channel (True), else leave it to be sent (False)."""
    return await hold_many_if_asked(uow, [job], channel)


async def hold_many_if_asked(uow: UnitOfWork, jobs: list[NewJob], channel: str) -> bool:
    """`hold_if_asked` for many new jobs of one org (a bulk request's members): the setting
    read once, the held events and moves written in batches. True: all held."""
    if not jobs or channel not in await store.approval_channels(uow.conn, jobs[0].org_id):
        return False
    assert all(j.org_id == jobs[0].org_id for j in jobs)
    held = [rules.held_event(job, channel) for job in jobs]
    await store.hold_many(uow.conn, [(job.job_id, job.topic, job.event) for job in jobs])
    await store.move_many(uow.conn, held)
    await uow.emit_many([(AUDIT, env) for env in held], timeline=True)
    return True


async def awaiting(uow: UnitOfWork, who: Caller) -> list[dict[str, Any]]:
    """The caller's org's jobs awaiting approval, the nearest deadline first."""
    return await store.awaiting(uow.pool, who.org_id)


async def decide(
    uow: UnitOfWork,
    who: Caller,
    job_id: uuid.UUID,
    *,
    approve: bool,
    reason: str | None,
    links: StatusLinks | None = None,
) -> dict[str, Any]:
    """Approve or deny a held job. Raises Forbidden (a viewer), NotFound, NotAllowedNow (409:
    not awaiting approval) or Invalid (a denial without a reason). Returns the job after."""
    if who.role not in DECIDERS:
        raise Forbidden(f"{DECIDE_RULE}; your key is {who.role}", audit_reason=DECIDE_RULE)
    if not approve and not (reason or "").strip():
        raise Invalid("reason: say why the request is denied (the requester is told)")
    async with uow:
        row = await _locked(uow, who, job_id)
        try:
            lifecycle.check_command("approve" if approve else "deny", row["status"], row["type"])
        except lifecycle.IllegalTransition as exc:
            raise NotAllowedNow(exc) from exc
        decision = rules.decide(
            row,
            who,
            approve=approve,
            reason=reason,
            to=await requester_email(uow.conn, job_id),
            status_link=links.url(job_id) if links is not None else None,
        )
        held = await store.take_held(uow.conn, job_id)
        await store.move(uow.conn, decision.event, decision.error)
        # A denial goes on the progress topic: an OpenDSR controller hears `cancelled`.
        await uow.emit(AUDIT if approve else PROGRESS, decision.event, timeline=True)
        if approve and held is not None:
            await uow.emit(held[0], held[1], timeline=True)
        await uow.emit(NOTIFICATIONS, decision.notice, timeline=True)
        updated = await _locked(uow, who, job_id)
    return updated
