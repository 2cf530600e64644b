"""Who is calling: API keys (stored hashed) resolve to an org and a role."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Header, HTTPException, Request

from services.intake import store
from services.intake.domain import Caller

if TYPE_CHECKING:
    from services.intake.app import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "send an API key as 'Authorization: Bearer <key>'")
    found = await store.caller_for_key(runtime(request).pool, authorization[7:].strip())
    if found is None:
        raise HTTPException(401, "unknown or revoked API key")
    return found
