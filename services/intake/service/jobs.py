"""Commands on a job (cancel, restore, extend), written once for the API and the web UI.

Each reads the job under its row lock, checks the lifecycle and writes the command (or the
extension) in the same unit of work: a job that moved on meanwhile cannot slip through.
Another organisation's job is `NotFound`, never `Forbidden`: its existence is not leaked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.intake import deadlines, domain, store
from services.intake.domain import Caller
from services.intake.links import StatusLinks
from services.intake.service.errors import DeadlineBroken, NotAllowedNow, NotFound
from services.intake.service.uow import UnitOfWork
from shared import lifecycle
from shared.events import Payload, make_event
from shared.events.jobs import Item, RestoreErasure
from shared.events.requests import DeadlineExtended
from shared.events.topics import AUDIT, NOTIFICATIONS


def no_job(who: Caller, job_id: uuid.UUID) -> NotFound:
    return NotFound(f"no job {job_id} in organisation {who.org_id}")


async def get(uow: UnitOfWork, who: Caller, job_id: uuid.UUID) -> dict[str, Any]:
    """The caller's organisation's job, or NotFound."""
    row = await store.get_job(uow.pool, who.org_id, job_id)
    if row is None:
        raise no_job(who, job_id)
    return row


async def _locked(uow: UnitOfWork, who: Caller, job_id: uuid.UUID) -> dict[str, Any]:
    row = await store.get_job(uow.conn, who.org_id, job_id, lock=True)
    if row is None:
        raise no_job(who, job_id)
    return row


async def command(
    uow: UnitOfWork,
    who: Caller,
    job_id: uuid.UUID,
    name: str,
    payload: Callable[[dict[str, Any]], Payload],
) -> dict[str, Any]:
    """Send a command (`lifecycle.COMMANDS`) to the job's worker if its state allows it.
    `payload` builds the command from the job row. Returns the row as it was."""
    async with uow:
        row = await _locked(uow, who, job_id)
        try:
            lifecycle.check_command(name, row["status"], row["type"])
        except lifecycle.IllegalTransition as exc:
            raise NotAllowedNow(exc) from exc
        env = make_event(
            payload(row),
            actor=who.actor,
            job_id=job_id,
            org_id=who.org_id,
            subject_hash=row["subject_hash"],
        )
        await uow.emit(domain.command_topic(row["type"]), env, timeline=True)
    return row


async def cancel(
    uow: UnitOfWork, who: Caller, job_id: uuid.UUID, reason: str | None
) -> dict[str, Any]:
    """Stop a running job between batches: an erasure or retention run (its erased rows stay
    restorable), or an export (its partial file deleted; one built or expired is refused)."""
    return await command(
        uow, who, job_id, "cancel", lambda row: domain.cancel_command(row["type"], reason)[0]
    )


async def restore(
    uow: UnitOfWork,
    who: Caller,
    job_id: uuid.UUID,
    items: list[Item] | None,
    reason: str | None,
) -> dict[str, Any]:
    """Restore an erasure within its recovery window: all of it, or the given items."""
    payload = RestoreErasure(items=items, reason=reason)
    return await command(uow, who, job_id, "restore", lambda _: payload)


async def extend(
    uow: UnitOfWork,
    who: Caller,
    job_id: uuid.UUID,
    ask: deadlines.Extension,
    now: datetime,
    links: StatusLinks | None = None,
) -> dict[str, Any]:
    """Extend the legal deadline once, as `deadlines.extended_due` allows; the extension, its
    audit event and its notice to the requester (or the org's owner contacts) are written
    together. Returns the job as extended; raises NotAllowedNow or DeadlineBroken."""
    async with uow:
        row = await _locked(uow, who, job_id)
        try:
            lifecycle.check_command("extend", row["status"], row["type"])
            new_due = deadlines.extended_due(
                row["regulation"], row["due_at"], row["extended_due_at"], ask, now
            )
        except lifecycle.IllegalTransition as exc:
            raise NotAllowedNow(exc) from exc
        except deadlines.DeadlineRuleBroken as exc:
            raise DeadlineBroken(exc) from exc
        reason = (ask.reason or "").strip()[:2000]
        env = make_event(
            DeadlineExtended(
                regulation=row["regulation"],
                due_at=row["due_at"],
                extended_due_at=new_due,
                reason=reason,
            ),
            actor=who.actor,
            job_id=job_id,
            org_id=who.org_id,
            subject_hash=row["subject_hash"],
        )
        notice = domain.extension_notice(
            row,
            who,
            to=await store.requester_email(uow.conn, job_id),
            extended_due_at=new_due,
            reason=reason,
            status_link=links.url(job_id) if links is not None else None,
        )
        await store.extend_job(uow.conn, job_id, new_due, reason)
        await uow.emit(AUDIT, env, timeline=True)
        await uow.emit(NOTIFICATIONS, notice, timeline=True)
        updated = await _locked(uow, who, job_id)
    return updated
