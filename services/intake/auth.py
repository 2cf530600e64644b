"""Who is calling: API keys (stored hashed) resolve to an org and a role.

Roles: viewers read; admins also cancel and extend; owners also submit erasure and export
requests (admins too where an owner delegated subject-level ones: `domain.authorise`), erase
a whole organisation, restore, manage keys, set retention and read the audit trail. A
refused key or role is recorded in the audit trail. No key ever sees another organisation's jobs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, HTTPException, Request

from services.intake import store
from services.intake.domain import Caller
from shared.events import Actor, make_event
from shared.events.requests import AuthFailed
from shared.events.topics import AUDIT

if TYPE_CHECKING:
    from services.intake.app import Runtime

RANK = {"viewer": 0, "service": 1, "admin": 1, "owner": 2}


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def audit_refusal(request: Request, reason: str, who: Caller | None = None) -> None:
    env = make_event(
        AuthFailed(
            reason=reason,
            method=request.method,
            path=request.url.path,
            client=request.client.host if request.client else None,
        ),
        actor=who.actor if who else Actor(kind="anonymous", id="-"),
        org_id=who.org_id if who else None,
    )
    rt = runtime(request)
    async with rt.pool.acquire() as conn:
        await store.add_outbox(conn, AUDIT, env)
    rt.relay.wake()


async def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    if not authorization or not authorization.lower().startswith("bearer "):
        await audit_refusal(request, "no API key")
        raise HTTPException(401, "send an API key as 'Authorization: Bearer <key>'")
    found = await store.caller_for_key(runtime(request).pool, authorization[7:].strip())
    if found is None:
        await audit_refusal(request, "unknown or revoked API key")
        raise HTTPException(401, "unknown or revoked API key")
    return found


def role(minimum: str) -> Callable[..., Awaitable[Caller]]:
    """Dependency: the caller, if their role is at least `minimum` (else 403, audited)."""

    async def check(request: Request, who: Annotated[Caller, Depends(caller)]) -> Caller:
        if RANK.get(who.role, -1) < RANK[minimum]:
            await audit_refusal(request, f"role {who.role} below {minimum}", who)
            raise HTTPException(403, f"this needs the {minimum} role; your key is {who.role}")
        return who

    return check


class RateLimiter:
    """Token bucket per API key (per intake replica: N replicas allow N times the rate)."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = per_minute / 60.0, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when allowed; else the seconds to wait."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate if self.rate > 0 else 60.0
