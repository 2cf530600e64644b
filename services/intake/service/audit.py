"""Refusals in the audit trail: a missing, unknown or revoked key, a role too low, another
organisation's data asked for. Recorded by every HTTP entry point, refused or not by it."""

from __future__ import annotations

from services.intake.domain import Caller
from services.intake.service.uow import UnitOfWork
from shared.events import Actor, make_event
from shared.events.requests import AuthFailed
from shared.events.topics import AUDIT


async def refusal(
    uow: UnitOfWork,
    reason: str,
    *,
    method: str,
    path: str,
    client: str | None,
    who: Caller | None = None,
) -> None:
    env = make_event(
        AuthFailed(reason=reason, method=method, path=path, client=client),
        actor=who.actor if who else Actor(kind="anonymous", id="-"),
        org_id=who.org_id if who else None,
    )
    async with uow:
        await uow.emit(AUDIT, env, timeline=False)
