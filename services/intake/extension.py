"""Extend a job's legal deadline: the one use case the API, the web form and the CLI (through
the API) share. The rule is `deadlines.extended_due`; this records the extension, its audit
event and its notice to the requester (or the org's owner contacts) in one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.intake import deadlines, domain, store
from services.intake.domain import Caller
from services.intake.links import StatusLinks
from shared import lifecycle
from shared.events import make_event
from shared.events.requests import DeadlineExtended


async def extend(
    pool: asyncpg.Pool,
    who: Caller,
    row: dict[str, Any],
    ask: deadlines.Extension,
    now: datetime,
    links: StatusLinks | None = None,
) -> datetime:
    """The new due date. Raises lifecycle.IllegalTransition (409) or
    deadlines.DeadlineRuleBroken (409/422, naming the rule)."""
    lifecycle.check_command("extend", row["status"], row["type"])
    new_due = deadlines.extended_due(
        row["regulation"], row["due_at"], row["extended_due_at"], ask, now
    )
    reason = (ask.reason or "").strip()[:2000]
    env = make_event(
        DeadlineExtended(
            regulation=row["regulation"],
            due_at=row["due_at"],
            extended_due_at=new_due,
            reason=reason,
        ),
        actor=who.actor,
        job_id=row["id"],
        org_id=who.org_id,
        subject_hash=row["subject_hash"],
    )
    notice = domain.extension_notice(
        row,
        who,
        to=await store.requester_email(pool, row["id"]),
        extended_due_at=new_due,
        reason=reason,
        status_link=links.url(row["id"]) if links is not None else None,
    )
    if not await store.extend_job(pool, row["id"], new_due, reason, env, notice):
        raise deadlines.DeadlineRuleBroken(
            409, deadlines.source(row["regulation"]), "one extension only: already extended"
        )
    return new_due
