"""Refusals in the audit trail: a role too low, another organisation's data asked for, one
event each; a missing, unknown or revoked key, counted per source and window
(`limits.AuthFailureTally`) and recorded as one event per count. Recorded by every HTTP
entry point."""

from __future__ import annotations

import hashlib
import hmac

from services.intake.domain import Caller
from services.intake.limits import Tally
from services.intake.service.uow import UnitOfWork
from shared.events import Actor, make_event
from shared.events.requests import AuthFailed, AuthFailuresCounted
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


async def failures_counted(
    uow: UnitOfWork, tallies: list[Tally], window_seconds: int, key: bytes
) -> None:
    """One AuthFailuresCounted per (source, window), in one transaction."""
    if not tallies:
        return
    async with uow:
        for t in tallies:
            digest = hmac.new(key, b"lethe-auth-source:" + t.source.encode(), hashlib.sha256)
            counted = AuthFailuresCounted(
                source=t.source,
                source_hash=digest.hexdigest()[:32],
                window_start=t.window_start,
                window_seconds=window_seconds,
                count=t.count,
                reasons=dict(t.reasons),
            )
            env = make_event(counted, actor=Actor(kind="anonymous", id="-"))
            await uow.emit(AUDIT, env, timeline=False)
