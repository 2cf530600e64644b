"""The auditor's timers: a signed checkpoint every M seconds while rows come in, and the
audit retention run. Both take the chain lock, so replicas may all run them."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import asyncpg

from services.auditor import store
from services.auditor.keys import key_id, public_raw
from services.auditor.settings import AuditorSettings
from services.auditor.store import Signer
from shared.events import Actor, make_event
from shared.events.audit import AuditPruned, SigningKeyChanged
from shared.events.keys import AuditTrustedKeysChanged

log = logging.getLogger(__name__)
ACTOR = Actor(kind="service", id="auditor")


async def record_key(pool: asyncpg.Pool, signer: Signer, *, dev: bool) -> None:
    """An audit row when checkpoints start being signed by a key other than the last one."""
    kid = key_id(public_raw(signer.key.public_key()))
    last = await store.last_checkpoint(pool)
    if last is not None and last.key_id == kid:
        return
    previous = last.key_id if last else None
    await store.append(
        pool,
        make_event(
            SigningKeyChanged(previous_key_id=previous, key_id=kid, dev_key=dev), actor=ACTOR
        ),
        signer=signer,
    )


async def record_trusted_keys(pool: asyncpg.Pool, signer: Signer, trusted: list[str]) -> None:
    """An audit row when the public keys trusted for checkpoints differ from the last start's:
    adding a key and withdrawing one (a revocation) are both key management."""
    last = await pool.fetchval(
        "SELECT details->'trusted' FROM lethe.audit_log WHERE action = $1 "
        "ORDER BY seq DESC LIMIT 1",
        AuditTrustedKeysChanged.event_type,
    )
    if isinstance(last, str):  # a pool without Lethe's jsonb codec
        last = json.loads(last)
    before = set(last) if last is not None else set()
    now = set(trusted)
    if last is not None and before == now:
        return
    changed = AuditTrustedKeysChanged(
        added=sorted(now - before), removed=sorted(before - now), trusted=sorted(now)
    )
    await store.append(pool, make_event(changed, actor=ACTOR), signer=signer)


async def prune(pool: asyncpg.Pool, signer: Signer | None, retention_days: int) -> int:
    deleted = await store.prune(pool, retention_days)
    if deleted:
        first = await store.first_seq(pool)
        await store.append(
            pool,
            make_event(
                AuditPruned(
                    rows_deleted=deleted, retention_days=retention_days, first_seq_kept=first
                ),
                actor=ACTOR,
            ),
            signer=signer,
        )
    return deleted


async def run(pool: asyncpg.Pool, signer: Signer, settings: AuditorSettings) -> None:
    every = max(settings.audit_checkpoint_every_seconds, 0.1)
    prune_every = settings.audit_prune_every_hours * 3600
    next_prune = time.monotonic() + min(60.0, prune_every) if prune_every > 0 else None
    while True:
        await asyncio.sleep(every)
        try:
            await store.checkpoint_head(pool, signer.key)
            if next_prune is not None and time.monotonic() >= next_prune:
                next_prune = time.monotonic() + prune_every
                deleted = await prune(pool, signer, settings.audit_retention_days)
                log.info(
                    "audit retention: %d rows older than %d days pruned",
                    deleted,
                    settings.audit_retention_days,
                )
        except Exception:  # the next tick tries again; appends go on meanwhile
            log.exception("audit maintenance failed")
