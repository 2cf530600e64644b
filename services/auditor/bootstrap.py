"""The auditor's wiring, once: the checkpoint signer and the pool the app appends with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from services.auditor import maintenance
from services.auditor.keys import key_id, public_raw, signing_key, trusted_public_keys
from services.auditor.settings import AuditorSettings
from services.auditor.store import Signer
from shared.db import create_pool


@dataclass(frozen=True)
class AuditorDeps:
    pool: asyncpg.Pool
    signer: Signer
    dev_key: bool


def load_signer(settings: AuditorSettings) -> tuple[Signer, bool]:
    """(the checkpoint signer, whether its key is the dev key); raises `SigningKeyMissing`
    when a production deployment has no signing key."""
    key, dev = signing_key(settings)
    return Signer(key, settings.audit_checkpoint_every_rows), dev


@asynccontextmanager
async def open_deps(
    settings: AuditorSettings, *, signer: tuple[Signer, bool] | None = None
) -> AsyncIterator[AuditorDeps]:
    """Open the pool and record a change of signing key (or of the trusted keys) in the
    chain; yield the deps, close the pool after. `signer` when the caller loaded it already
    (the app does when it is created, so a missing production key stops it before it
    connects)."""
    sign, dev = signer if signer is not None else load_signer(settings)
    pool = await create_pool(settings.database_url)
    try:
        await maintenance.record_key(pool, sign, dev=dev)
        own = key_id(public_raw(sign.key.public_key()))
        trusted = sorted({own, *trusted_public_keys(settings)})
        await maintenance.record_trusted_keys(pool, sign, trusted)
        yield AuditorDeps(pool=pool, signer=sign, dev_key=dev)
    finally:
        await pool.close()


__all__ = ["AuditorDeps", "load_signer", "open_deps"]
