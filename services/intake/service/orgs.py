"""An organisation's settings: who besides owners may submit privacy requests (delegation)."""

from __future__ import annotations

from services.intake import store
from services.intake.domain import Caller
from services.intake.service.errors import Forbidden
from services.intake.service.uow import UnitOfWork
from shared.events import make_event
from shared.events.requests import OrgDelegationChanged
from shared.events.topics import AUDIT


def own_org(who: Caller, org: str, what: str) -> None:
    """A key acts for its own organisation only; asking for another's `what` is refused
    (and audited by the entry point, with `audit_reason`)."""
    if org != who.org_id:
        raise Forbidden(
            f"your key belongs to organisation {who.org_id}, not {org}",
            audit_reason=f"{what} of another organisation",
        )


async def delegation(uow: UnitOfWork, who: Caller, org: str) -> bool:
    """Whether the org's admins may submit subject-level requests."""
    own_org(who, org, "delegation")
    found = await store.get_org(uow.pool, org)
    assert found is not None  # the caller's own org
    return bool(found["admins_submit_subject_requests"])


async def set_delegation(uow: UnitOfWork, who: Caller, org: str, on: bool) -> None:
    """An owner's choice; a change is audited (OrgDelegationChanged, old and new) with it."""
    own_org(who, org, "delegation")
    async with uow:
        old = await store.set_delegation(uow.conn, org, on)
        if old != on:
            env = make_event(OrgDelegationChanged(old=old, new=on), actor=who.actor, org_id=org)
            await uow.emit(AUDIT, env, timeline=False)
