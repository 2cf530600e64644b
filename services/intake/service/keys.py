"""API keys: made and withdrawn here, for every entry point (web admin page, `lethe keys`,
`lethe orgs create`), each with its audit event in the same transaction. The event names the
actor, the key id and its role, never the key."""

from __future__ import annotations

import uuid

from services.intake.service.errors import Invalid, NotFound
from services.intake.service.uow import UnitOfWork
from services.intake.store import keys as store_keys
from shared.events import Actor, make_event
from shared.events.keys import ApiKeyCreated, ApiKeyRevoked
from shared.events.topics import AUDIT

ROLES = ("owner", "admin", "viewer")


async def create_key(
    uow: UnitOfWork, actor: Actor, org_id: str, role: str, name: str
) -> tuple[uuid.UUID, str]:
    """(key id, the key): the key is shown once by the entry point and stored only hashed."""
    if role not in ROLES:
        raise Invalid(f"role: one of {', '.join(ROLES)}")
    async with uow:
        key_id, key = await store_keys.insert_api_key(uow.conn, org_id, role, name)
        created = ApiKeyCreated(key_id=str(key_id), role=role, name=name)
        await uow.emit(AUDIT, make_event(created, actor=actor, org_id=org_id), timeline=False)
    return key_id, key


async def revoke_key(uow: UnitOfWork, actor: Actor, org_id: str, key_id: uuid.UUID) -> None:
    """Raises NotFound when the org has no such active key (nothing is then audited)."""
    async with uow:
        found = await store_keys.revoke_api_key(uow.conn, org_id, key_id)
        if found is None:
            raise NotFound(f"no active key {key_id} in organisation {org_id}")
        role, name = found
        revoked = ApiKeyRevoked(key_id=str(key_id), role=role, name=name)
        await uow.emit(AUDIT, make_event(revoked, actor=actor, org_id=org_id), timeline=False)
