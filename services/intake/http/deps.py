"""What routes depend on, in one place: the runtime (pool, settings, relay), a unit of work,
the caller behind the API key and their role, and the mapping of service errors to HTTP.

Roles: viewers read; admins also cancel and extend; owners also submit erasure and export
requests (admins too where an owner delegated subject-level ones: `domain.authorise`), erase
a whole organisation, restore, manage keys, set retention and read the audit trail. A
refused key or role is recorded in the audit trail. No key ever sees another organisation's jobs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn

from fastapi import Depends, Header, HTTPException, Request

from services.intake import store
from services.intake.auth import RANK
from services.intake.domain import Caller
from services.intake.runtime import Runtime
from services.intake.service import audit
from services.intake.service.errors import Forbidden, RateLimited, ServiceError
from services.intake.service.uow import UnitOfWork


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def uow(request: Request) -> UnitOfWork:
    """A unit of work that wakes the relay when it commits."""
    rt = runtime(request)
    return UnitOfWork(rt.pool, rt.relay.wake)


Rt = Annotated[Runtime, Depends(runtime)]
Uow = Annotated[UnitOfWork, Depends(uow)]


async def audit_refusal(request: Request, reason: str, who: Caller | None = None) -> None:
    """A refusal into the audit trail; one without a known caller (no key, a wrong one) is
    counted per source and window instead of being an event of its own."""
    client = request.client.host if request.client else None
    if who is None:
        runtime(request).auth_failures.note(client, reason)
        return
    await audit.refusal(
        uow(request),
        reason,
        method=request.method,
        path=request.url.path,
        client=client,
        who=who,
    )


async def fail(request: Request, exc: ServiceError, who: Caller | None = None) -> NoReturn:
    """A service's refusal as the HTTP answer (a Forbidden one audited first)."""
    if isinstance(exc, Forbidden):
        await audit_refusal(request, exc.audit_reason, who)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    raise HTTPException(exc.status, exc.message, headers=headers) from exc


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


Viewer = Annotated[Caller, Depends(role("viewer"))]
Admin = Annotated[Caller, Depends(role("admin"))]
Owner = Annotated[Caller, Depends(role("owner"))]
